'use strict'
// Segment's own Braze cloud destination (@segment/action-destinations, "Braze Cloud
// Mode (Actions)") timed on the segment_braze benchmark corpus.
//
// Usage: node bench.js CORPUS.jsonl[.gz] [--repeat N] [--warmup N] [--batch N [--group]] [--json]
//
// The destination's default ("automatic") presets are the subscriptions. Two paths:
//
// - per event (--batch 0, the default): every event goes through
//   Destination.onEvent(), which parses each subscription, matches the event, maps
//   it, validates the payload and builds one request per matching subscription.
// - batched (--batch N): Segment's production default for Braze. Each preset whose
//   action has performBatch gets `enable_batching: true` and `batch_size` in its
//   mapping (the action's own fields), and consecutive chunks of N events go
//   through Destination.onBatch(): actions-core matches every subscription against
//   the chunk and hands the matching events to the action's performBatch, which
//   builds one request per subscription per chunk. Presets whose action cannot
//   batch (none among Braze's automatic ones today) still take onEvent() for each
//   event. Per-event outcomes come from the multistatus answers.
// - batched and grouped (--batch N --group): as Segment's pipeline batches, per
//   subscription: the events are routed to each subscription with Segment's own FQL
//   matcher before the clock starts, then each subscription's events go through
//   onBatch() (with that subscription only) in chunks of N, so batches are full.
//   Events no subscription matches never reach the destination in this mode.
//
// HTTP is intercepted in-process: actions-core's fetch is
// replaced by a stub that answers 201 without touching a socket, so nothing leaves
// the machine and no mock library adds per-request work. The stub counts its calls,
// so an event counts as "sent" only when a request was really built for it.

const fs = require('fs')
const path = require('path')
const zlib = require('zlib')
const { performance } = require('perf_hooks')

function parseArgs(argv) {
  const args = { corpus: null, repeat: 1, warmup: 5000, batch: 0, group: false, json: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--repeat') args.repeat = Number(argv[++i])
    else if (arg === '--warmup') args.warmup = Number(argv[++i])
    else if (arg === '--batch') args.batch = Number(argv[++i])
    else if (arg === '--group') args.group = true
    else if (arg === '--json') args.json = true
    else if (arg === '-h' || arg === '--help') {
      console.log('usage: node bench.js CORPUS.jsonl[.gz] [--repeat N] [--warmup N] [--batch N [--group]] [--json]')
      process.exit(0)
    } else if (args.corpus === null) args.corpus = arg
    else throw new Error(`unexpected argument ${arg}`)
  }
  if (args.corpus === null) throw new Error('usage: node bench.js CORPUS.jsonl[.gz]')
  if (!Number.isInteger(args.batch) || args.batch < 0) throw new Error('--batch takes an integer >= 0')
  if (args.group && args.batch === 0) throw new Error('--group needs --batch N')
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
// Segment's FQL matcher, for --group only (routing outside the timed loop).
const { parseFql, validate } = require(
  require.resolve('@segment/destination-subscriptions', { paths: [coreDir] })
)
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

// What onSubscription() puts in a batch's multistatus for an event that the
// subscription does not match: not a rejection, the event is just not for it.
const NOT_SUBSCRIBED = 'Payload is either invalid or does not match the subscription'
const SKIPPED = 0
const REJECTED = 1
const SENT = 2
const OUTCOMES = ['skipped', 'rejected', 'sent']

function batchJobs(events, plan, size) {
  // The onBatch() calls of one pass, built before the clock starts: consecutive
  // chunks of `size` events with every batched subscription, or with --group one
  // subscription's own events in chunks of `size`, routed here with Segment's own
  // FQL matcher outside the timed loop (Segment routes events to a subscription's
  // batch before the destination sees them, so every batch is full).
  const jobs = []
  const chunks = (indices, settings) => {
    for (let from = 0; from < indices.length; from += size) {
      const slice = indices.slice(from, from + size)
      jobs.push({ settings, indices: slice, events: slice.map((i) => events[i]) })
    }
  }
  if (plan.batchSettings === null) return jobs
  if (!plan.group) {
    chunks(events.map((_, i) => i), plan.batchSettings)
    return jobs
  }
  for (const sub of plan.batchSettings.subscriptions) {
    const parsed = parseFql(sub.subscribe)
    if (parsed.error) throw new Error(`${sub.name}: ${parsed.error.message}`)
    const indices = []
    for (let i = 0; i < events.length; i++) if (validate(parsed, events[i])) indices.push(i)
    chunks(indices, { ...plan.batchSettings, subscriptions: [sub] })
  }
  return jobs
}

async function passBatch(destination, plan, lines, limit, size) {
  // Like pass(), but the events go through onBatch() in chunks (see batchJobs()).
  // The outcome of each event comes from the multistatus answers of the
  // subscriptions: sent if one of them answered 2xx for it (a request was built),
  // rejected if one matched it but refused it, skipped if none matched it. The
  // bookkeeping is inside the timed loop, as pass()'s is: a few array reads per
  // event and subscription, well under a microsecond.
  const events = lines.slice(0, limit).map((line) => JSON.parse(line))
  const jobs = batchJobs(events, plan, size)
  const counts = { sent: 0, skipped: 0, rejected: 0, requests: 0 }
  const errors = {}
  const batchSizes = {}
  const outcome = new Array(events.length).fill(SKIPPED)
  const firstError = new Array(events.length).fill(null)
  const reject = (i, key) => {
    if (outcome[i] === SKIPPED) outcome[i] = REJECTED
    if (firstError[i] === null) firstError[i] = key.slice(0, 100)
  }
  const callsBefore = stub.calls
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  for (const job of jobs) {
    const { indices } = job
    try {
      const results = await destination.onBatch(job.events, job.settings)
      for (const result of results) {
        const statuses = result.multistatus
        if (statuses === undefined) continue // { output: 'not subscribed' }
        let sentHere = 0
        for (let k = 0; k < indices.length; k++) {
          const status = statuses[k]
          if (status === undefined) reject(indices[k], 'MultiStatus: no answer for this event')
          else if (status.status >= 200 && status.status < 300) {
            outcome[indices[k]] = SENT
            sentHere += 1
          } else if (status.errormessage !== NOT_SUBSCRIBED) {
            reject(indices[k], `${status.errortype || status.status}: ${status.errormessage}`)
          }
        }
        if (sentHere > 0) batchSizes[sentHere] = (batchSizes[sentHere] || 0) + 1
      }
    } catch (error) {
      for (const i of indices) reject(i, `${error.name}: ${error.message}`)
    }
  }
  if (plan.eventSettings !== null) {
    for (let i = 0; i < events.length; i++) {
      const before = stub.calls
      try {
        await destination.onEvent(events[i], plan.eventSettings)
        if (stub.calls > before) outcome[i] = SENT
      } catch (error) {
        reject(i, `${error.name}: ${error.message}`)
      }
    }
  }
  for (let i = 0; i < events.length; i++) {
    counts[OUTCOMES[outcome[i]]] += 1
    if (outcome[i] === REJECTED) errors[firstError[i]] = (errors[firstError[i]] || 0) + 1
  }
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  counts.requests = stub.calls - callsBefore
  // Per outcome costs cannot be told apart inside a batch.
  const usPer = { sent: null, skipped: null, rejected: null }
  return { seconds, cpuSeconds, events: events.length, counts, usPer, errors, batchSizes }
}

function subscription(preset, mapping) {
  return { name: preset.name, subscribe: preset.subscribe, partnerAction: preset.partnerAction, mapping }
}

function batchPlan(presets, destinationSettings, size, group) {
  // Turn batching on where the preset's action supports it, through the action's
  // own mapping fields (Braze's: enable_batching, batch_size, the latter capped at
  // the field's maximum); the other presets stay on the per-event path.
  const batched = []
  const single = []
  for (const preset of presets) {
    const action = braze.actions[preset.partnerAction]
    if (typeof action.performBatch !== 'function') {
      single.push(subscription(preset, preset.mapping))
      continue
    }
    const mapping = { ...preset.mapping }
    const fields = action.fields || {}
    if (fields.enable_batching) mapping.enable_batching = true
    if (fields.batch_size) mapping.batch_size = Math.min(size, fields.batch_size.maximum ?? size)
    batched.push(subscription(preset, mapping))
  }
  const settingsWith = (subscriptions) =>
    subscriptions.length ? { ...destinationSettings, subscriptions } : null
  return {
    group,
    batchSettings: settingsWith(batched),
    eventSettings: settingsWith(single),
    batched: batched.map((sub) => `${sub.name} -> ${sub.partnerAction} (enable_batching ${sub.mapping.enable_batching}, batch_size ${sub.mapping.batch_size})`),
    single: single.map((sub) => `${sub.name} -> ${sub.partnerAction}`)
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const lines = readEvents(args.corpus)
  const presets = braze.presets.filter((preset) => preset.type === 'automatic')
  const destinationSettings = {
    api_key: 'bench-api-key',
    app_id: 'bench-app',
    endpoint: 'https://rest.iad-01.braze.com'
  }
  const settings = {
    ...destinationSettings,
    subscriptions: presets.map((preset) => subscription(preset, preset.mapping))
  }
  const destination = new Destination(braze)
  const plan = args.batch > 0 ? batchPlan(presets, destinationSettings, args.batch, args.group) : null
  const once = (limit) =>
    plan === null
      ? pass(destination, settings, lines, limit)
      : passBatch(destination, plan, lines, limit, args.batch)

  if (args.warmup > 0) await once(args.warmup)
  let best = null
  for (let i = 0; i < args.repeat; i++) {
    const result = await once(lines.length)
    if (best === null || result.seconds < best.seconds) best = result
  }
  const report = {
    benchmark: 'peer',
    destination: braze.name,
    mode: plan === null ? 'event' : 'batch',
    batch: args.batch,
    group: plan !== null && plan.group,
    entry_point: plan === null ? 'Destination.onEvent' : 'Destination.onBatch',
    packages: {
      '@segment/action-destinations': version('@segment/action-destinations'),
      '@segment/actions-core': version('@segment/actions-core')
    },
    node: process.version,
    presets: presets.map((preset) => `${preset.name} -> ${preset.partnerAction}`),
    batched_presets: plan === null ? [] : plan.batched,
    per_event_presets: plan === null ? presets.map((preset) => `${preset.name} -> ${preset.partnerAction}`) : plan.single,
    events: best.events,
    seconds: best.seconds,
    cpu_seconds: best.cpuSeconds,
    events_per_s: best.events / best.seconds,
    us_per_event: (best.seconds / best.events) * 1e6,
    counts: best.counts,
    // Batch mode: how many requests carried how many events (sent ones), from
    // the multistatus answers; sent / requests is the mean batch.
    batch_sizes: best.batchSizes || null,
    events_per_request: best.counts.requests ? best.counts.sent / best.counts.requests : null,
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
  console.log(`events: ${report.events}, best of ${args.repeat} after ${args.warmup} warm-up events, through ${report.entry_point}${args.batch ? ` in chunks of ${args.batch}${args.group ? ' per subscription' : ''}` : ''}`)
  const per = (outcome) => {
    const value = report.us_per_event_by_outcome[outcome]
    return value === null ? '- µs' : `${value.toFixed(1)} µs`
  }
  console.log(`sent ${counts.sent} (${per('sent')} each), skipped (no preset matches) ${counts.skipped} (${per('skipped')}), rejected ${counts.rejected} (${per('rejected')}), requests ${counts.requests}`)
  if (args.batch) console.log(`${(report.events_per_request ?? 0).toFixed(1)} sent events per request; paths: ${JSON.stringify(report.stub_paths)}`)
  console.log(`${report.events_per_s.toFixed(0)} events/s, ${report.us_per_event.toFixed(2)} µs/event`)
  for (const [message, n] of Object.entries(report.errors)) console.log(`  rejected ${n}: ${message}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
