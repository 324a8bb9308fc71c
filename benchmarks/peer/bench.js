'use strict'
// Segment's own Braze cloud destination (@segment/action-destinations, "Braze Cloud
// Mode (Actions)") timed on the segment_braze benchmark corpus.
//
// Usage: node bench.js CORPUS.jsonl[.gz] [--repeat N] [--warmup N] [--json]
//
// Every event goes through Destination.onEvent() with the destination's default
// ("automatic") presets as subscriptions: Segment's production entry point, which
// parses each subscription, matches the event, maps it, validates the payload and
// builds the request. HTTP is intercepted in-process: actions-core's fetch is
// replaced by a stub that answers 201 without touching a socket, so nothing leaves
// the machine and no mock library adds per-request work. The stub counts its calls,
// so an event counts as "sent" only when a request was really built for it.

const fs = require('fs')
const path = require('path')
const zlib = require('zlib')
const { performance } = require('perf_hooks')

function parseArgs(argv) {
  const args = { corpus: null, repeat: 1, warmup: 5000, json: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--repeat') args.repeat = Number(argv[++i])
    else if (arg === '--warmup') args.warmup = Number(argv[++i])
    else if (arg === '--json') args.json = true
    else if (arg === '-h' || arg === '--help') {
      console.log('usage: node bench.js CORPUS.jsonl[.gz] [--repeat N] [--warmup N] [--json]')
      process.exit(0)
    } else if (args.corpus === null) args.corpus = arg
    else throw new Error(`unexpected argument ${arg}`)
  }
  if (args.corpus === null) throw new Error('usage: node bench.js CORPUS.jsonl[.gz]')
  return args
}

// Replace actions-core's fetch before any destination code runs. request-client.js
// calls `(0, fetch_1.default)(request)` on the module object of ./fetch at request
// time, so reassigning that export reaches every request the destination makes.
const coreDir = path.dirname(require.resolve('@segment/actions-core'))
// The destination must load this very copy of actions-core, or the stub would not
// reach it and requests could leave the machine: refuse to run otherwise.
const destinationsDir = path.dirname(require.resolve('@segment/action-destinations'))
const theirCore = require.resolve('@segment/actions-core', { paths: [destinationsDir] })
if (path.dirname(theirCore) !== coreDir) {
  throw new Error(`two copies of @segment/actions-core: ${coreDir} and ${path.dirname(theirCore)}`)
}
const fetchModule = require(path.join(coreDir, 'fetch.js'))
const { Response } = fetchModule
const stub = { calls: 0, paths: {}, samples: [] }
fetchModule.default = async function stubFetch(request) {
  stub.calls += 1
  const route = request.url.slice(request.url.indexOf('/', 'https://'.length))
  stub.paths[route] = (stub.paths[route] || 0) + 1
  if (stub.samples.length < 3) {
    stub.samples.push({ method: request.method, path: route, body: JSON.parse(await request.text()) })
  }
  return new Response('{"message":"success"}', {
    status: 201,
    headers: { 'content-type': 'application/json' }
  })
}

// Belt and braces: Node's own fetch is not used by the Braze code; make sure of it.
globalThis.fetch = async () => {
  throw new Error('network access is disabled in this benchmark')
}

const { Destination } = require('@segment/actions-core')
const braze = require('@segment/action-destinations/dist/destinations/braze').default
// Read package.json from node_modules directly: actions-core's "exports" hides it.
const version = (name) =>
  JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'))).version

function readEvents(file) {
  let data = fs.readFileSync(file)
  if (data[0] === 0x1f && data[1] === 0x8b) data = zlib.gunzipSync(data)
  return data.toString('utf8').split('\n').filter((line) => line.trim() !== '')
}

async function pass(destination, settings, lines, limit) {
  // Parsing is outside the timed loop: like the Python translate row, this times
  // the destination from parsed events to built (and here also serialised) requests.
  const events = lines.slice(0, limit).map((line) => JSON.parse(line))
  const counts = { sent: 0, skipped: 0, rejected: 0, requests: 0 }
  // Milliseconds spent on the events of each outcome (a clock read per event is
  // well under a microsecond, noise beside the destination's own cost).
  const spent = { sent: 0, skipped: 0, rejected: 0 }
  const errors = {}
  const callsBefore = stub.calls
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  let last = start
  for (const event of events) {
    const before = stub.calls
    let outcome
    try {
      await destination.onEvent(event, settings)
      outcome = stub.calls > before ? 'sent' : 'skipped'
    } catch (error) {
      outcome = 'rejected'
      const key = `${error.name}: ${error.message}`.slice(0, 100)
      errors[key] = (errors[key] || 0) + 1
    }
    const now = performance.now()
    counts[outcome] += 1
    spent[outcome] += now - last
    last = now
  }
  const seconds = (last - start) / 1000
  // CPU of the whole process (user + system): includes V8's helper threads
  // (parallel and concurrent GC), so it can exceed the wall time.
  const cpu = process.cpuUsage(cpuBefore)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  counts.requests = stub.calls - callsBefore
  const usPer = {}
  for (const outcome of Object.keys(spent)) {
    usPer[outcome] = counts[outcome] ? (spent[outcome] * 1000) / counts[outcome] : null
  }
  return { seconds, cpuSeconds, events: events.length, counts, usPer, errors }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const lines = readEvents(args.corpus)
  const presets = braze.presets.filter((preset) => preset.type === 'automatic')
  const settings = {
    api_key: 'bench-api-key',
    app_id: 'bench-app',
    endpoint: 'https://rest.iad-01.braze.com',
    subscriptions: presets.map((preset) => ({
      name: preset.name,
      subscribe: preset.subscribe,
      partnerAction: preset.partnerAction,
      mapping: preset.mapping
    }))
  }
  const destination = new Destination(braze)

  if (args.warmup > 0) await pass(destination, settings, lines, args.warmup)
  let best = null
  for (let i = 0; i < args.repeat; i++) {
    const result = await pass(destination, settings, lines, lines.length)
    if (best === null || result.seconds < best.seconds) best = result
  }
  const report = {
    benchmark: 'peer',
    destination: braze.name,
    packages: {
      '@segment/action-destinations': version('@segment/action-destinations'),
      '@segment/actions-core': version('@segment/actions-core')
    },
    node: process.version,
    presets: presets.map((preset) => `${preset.name} -> ${preset.partnerAction}`),
    events: best.events,
    seconds: best.seconds,
    cpu_seconds: best.cpuSeconds,
    events_per_s: best.events / best.seconds,
    us_per_event: (best.seconds / best.events) * 1e6,
    counts: best.counts,
    us_per_event_by_outcome: best.usPer,
    errors: best.errors,
    stub_calls_total: stub.calls,
    stub_paths: stub.paths,
    samples: stub.samples
  }
  if (args.json) {
    process.stdout.write(JSON.stringify(report) + '\n')
    return
  }
  const { counts } = report
  console.log(`${report.destination} (@segment/action-destinations ${report.packages['@segment/action-destinations']}), Node ${report.node}`)
  console.log(`events: ${report.events}, best of ${args.repeat} after ${args.warmup} warm-up events`)
  const per = (outcome) => (report.us_per_event_by_outcome[outcome] ?? 0).toFixed(1)
  console.log(`sent ${counts.sent} (${per('sent')} µs each), skipped (no preset matches) ${counts.skipped} (${per('skipped')} µs), rejected ${counts.rejected} (${per('rejected')} µs), requests ${counts.requests}`)
  console.log(`${report.events_per_s.toFixed(0)} events/s, ${report.us_per_event.toFixed(2)} µs/event`)
  for (const [message, n] of Object.entries(report.errors)) console.log(`  rejected ${n}: ${message}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
