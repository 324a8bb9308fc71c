"""Segment's own Braze destination beside ours, on the same corpus, in one run.

Installs ``benchmarks/peer/`` (Segment's ``@segment/action-destinations`` from the
npm registry) into a scratch folder on first use, then alternates rounds of our
translate benchmark with rounds of ``node bench.js`` on the same JSON Lines file
and reports the best of each, with the ratio Segment µs/event / ours, and the
median and range of every measurement over the rounds.

Segment's destination is timed on both of its paths, each round:

* per event: ``Destination.onEvent()`` for every event (``bench.js``);
* batched, Segment's production default for Braze: the presets' batching mapping
  fields on (``enable_batching``, ``batch_size``) and ``Destination.onBatch()`` on
  consecutive chunks of ``--batch`` events (``bench.js --batch N``, 75 by default,
  Braze's batch size; ``--batch 0`` leaves this row out);
* with ``--group``, batched as Segment's pipeline batches, per subscription: the
  events routed to each subscription with Segment's own matcher before the clock
  starts, then ``onBatch()`` on full chunks of one subscription's events
  (``bench.js --batch N --group``): a lower bound, routing and unmatched events
  cost nothing in this row.

Usage::

    python benchmarks/bench_peer.py [--count 100000] [--seed 1] [--rounds 3] [--batch 75]
                                    [--group] [--json OUT]

Exits 0 with a message when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_translate as ours
import corpus

HERE = Path(__file__).resolve().parent
PEER_SOURCE = HERE / "peer"
DEFAULT_SCRATCH = HERE / "out" / "peer"
_PEER_FILES = ("package.json", "bench.js")
_STAMP = ".installed-package-json-sha256"


def _tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    return node, npm


def install(scratch: Path, npm: str, *, force: bool = False) -> None:
    """Copy the peer files into ``scratch`` and ``npm install`` them when needed.

    The install is redone only when ``package.json`` changed (or ``force``):
    a stamp file keeps the hash of the one installed.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    for name in _PEER_FILES:
        shutil.copyfile(PEER_SOURCE / name, scratch / name)
    digest = hashlib.sha256((PEER_SOURCE / "package.json").read_bytes()).hexdigest()
    stamp = scratch / _STAMP
    installed = (scratch / "node_modules").is_dir() and stamp.is_file()
    if installed and stamp.read_text().strip() == digest and not force:
        return
    print(f"installing the peer into {scratch} (npm install, once) ...", file=sys.stderr)
    started = time.perf_counter()
    # --ignore-scripts: no package's install script runs (some would build native
    # add-ons or fetch binaries); the Braze destination needs none of them.
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    result = subprocess.run(
        command, cwd=scratch, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"npm install failed in {scratch} (exit {result.returncode})")
    stamp.write_text(digest + "\n")
    print(f"installed in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def run_peer(
    node: str,
    scratch: Path,
    corpus_file: Path,
    *,
    warmup: int,
    batch: int = 0,
    group: bool = False,
) -> dict[str, Any]:
    """Run ``bench.js`` once (a warm-up, then one timed pass) and return its report.

    ``batch`` > 0 drives the batched path (``onBatch`` on chunks of that many events),
    ``group`` batches each subscription's own events.
    """
    command = [node, "bench.js", str(corpus_file), "--warmup", str(warmup), "--json"]
    if batch:
        command += ["--batch", str(batch)]
    if group:
        command.append("--group")
    result = subprocess.run(
        command, cwd=scratch, capture_output=True, text=True, check=False, timeout=3600
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"the peer benchmark failed (exit {result.returncode})")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if report["counts"]["requests"] == 0:
        raise SystemExit("the peer sent no request: the stub or the presets are wrong")
    return report


# The peer's rows, by their name in the results.
PEER_ROWS = ("peer", "peer_batch", "peer_grouped")


def _peer_details(fastest: dict[str, Any]) -> dict[str, Any]:
    """What one peer mode did with the corpus, from its fastest pass."""
    return {
        "mode": fastest["mode"],
        "batch": fastest["batch"],
        "group": fastest["group"],
        "entry_point": fastest["entry_point"],
        "batched_presets": fastest["batched_presets"],
        "per_event_presets": fastest["per_event_presets"],
        "counts": fastest["counts"],
        "us_per_event_by_outcome": fastest["us_per_event_by_outcome"],
        "errors": fastest["errors"],
        "events_per_request": fastest["events_per_request"],
        "batch_sizes": fastest["batch_sizes"],
        "stub_paths": fastest["stub_paths"],
    }


def _spread(passes: list[tuple[float, float]], events: int) -> dict[str, float]:
    """Median, min and max µs/event (wall) over one measurement's rounds."""
    us = [wall / events * 1e6 for wall, _ in passes]
    return {"median": statistics.median(us), "min": min(us), "max": max(us), "rounds": len(us)}


def _corpus_file(args: argparse.Namespace) -> Path:
    if args.corpus is not None:
        return Path(args.corpus).resolve()
    return corpus.cached(args.count, args.seed, ours.OUT)


def run(args: argparse.Namespace, node: str, npm: str) -> dict[str, Any]:
    """Install the peer if needed, then measure both sides; return the numbers."""
    scratch = Path(args.scratch).resolve()
    install(scratch, npm, force=args.reinstall)
    corpus_file = _corpus_file(args)
    with ours.no_gc():
        lines = corpus.read_lines(corpus_file)
    settings = ours.bench_settings()
    lib = ours.json_lib(args.json_lib)
    prepared = ours.prepare(lines, settings)
    measures = ours.timings(prepared, settings, lib)
    measures.pop("floor_fast", None)

    peer_reports: dict[str, list[dict[str, Any]]] = {}
    # bench.js --batch and --group of each row: 0 is the per-event path.
    modes = {"peer": (0, False), "peer_batch": (args.batch, False)}
    if args.group:
        modes["peer_grouped"] = (args.batch, True)

    def peer(name: str) -> Callable[[], tuple[float, float]]:
        def measure() -> tuple[float, float]:
            batch, group = modes[name]
            report = run_peer(
                node, scratch, corpus_file, warmup=args.warmup, batch=batch, group=group
            )
            peer_reports.setdefault(name, []).append(report)
            return report["seconds"], report["cpu_seconds"]

        return measure

    for name, (batch, _) in modes.items():
        if name == "peer" or batch > 0:
            measures[name] = peer(name)
    # Every pass of every measurement, for the median and range over the rounds.
    passes: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}

    def recorded(
        name: str, measure: Callable[[], tuple[float, float]]
    ) -> Callable[[], tuple[float, float]]:
        def wrapper() -> tuple[float, float]:
            result = measure()
            passes[name].append(result)
            return result

        return wrapper

    best = ours.best_of(
        {name: recorded(name, measure) for name, measure in measures.items()}, args.rounds
    )
    fastest = {
        name: min(reports, key=lambda report: report["seconds"])
        for name, reports in peer_reports.items()
    }
    for report in fastest.values():
        if report["events"] != len(lines):
            raise SystemExit(f"the peer read {report['events']} events, we read {len(lines)}")

    results = {name: ours.rates(pair, len(lines)) for name, pair in best.items()}
    for name in fastest:
        # Node's CPU time includes V8's GC threads: not a sign of a busy machine.
        results[name]["single_threaded"] = False
    by_outcome = fastest["peer"]["us_per_event_by_outcome"]
    return {
        "benchmark": "peer",
        "machine": ours.machine(),
        "node": fastest["peer"]["node"],
        "packages": fastest["peer"]["packages"],
        "peer_presets": fastest["peer"]["presets"],
        "corpus": {"count": len(lines), "seed": None if args.corpus else args.seed},
        "rounds": args.rounds,
        "json_lib": lib.name,
        "stats": prepared.stats,
        "peer_counts": fastest["peer"]["counts"],
        "peer_us_per_event_by_outcome": by_outcome,
        "peer_errors": fastest["peer"]["errors"],
        "peer_modes": {name: _peer_details(report) for name, report in fastest.items()},
        "results": results,
        "spread": {name: _spread(runs, len(lines)) for name, runs in passes.items()},
        "ratios": _ratios(best, 0),
        "cpu_ratios": _ratios(best, 1),
        "busy": ours.busy(results),
    }


def _ratios(best: dict[str, tuple[float, float]], index: int) -> dict[str, float]:
    # index 0: wall time, 1: CPU time.
    ratios = {
        "peer_vs_translate": best["peer"][index] / best["translate"][index],
        "peer_vs_end_to_end": best["peer"][index] / best["end_to_end"][index],
        "translate_vs_floor": best["translate"][index] / best["floor"][index],
        "end_to_end_vs_floor": best["end_to_end"][index] / best["floor"][index],
    }
    for name in ("peer_batch", "peer_grouped"):
        if name in best:
            ratios[f"{name}_vs_translate"] = best[name][index] / best["translate"][index]
            ratios[f"{name}_vs_end_to_end"] = best[name][index] / best["end_to_end"][index]
            ratios[f"{name}_vs_peer"] = best[name][index] / best["peer"][index]
    return ratios


def table(report: dict[str, Any]) -> str:
    """Format the report as the small table the CLI prints."""
    lib = report["json_lib"].split(" (")[0]
    packages = report["packages"]
    segment = f"Segment {packages['@segment/action-destinations']}"
    batch = report["peer_modes"].get("peer_batch", {}).get("batch")
    labels = {
        "translate": "ours: translate + request bodies (no JSON)",
        "end_to_end": f"ours: loads + translate + dumps [{lib}]",
        "floor": "floor: loads + dumps, same sizes [stdlib json]",
        "peer": f"{segment}: per event, onEvent (Node {report['node']})",
        "peer_batch": f"{segment}: batched, onBatch x {batch} (Node {report['node']})",
        "peer_grouped": f"{segment}: per subscription, onBatch x {batch}",
    }
    translate_us = report["results"]["translate"]["us_per_event"]
    floor_us = report["results"]["floor"]["us_per_event"]
    rows = [
        f"{'measurement':<56} {'events/s':>10} {'µs/event':>9} {'x floor':>8} {'x ours':>7} "
        f"{'CPU µs':>8}"
    ]
    for name in ("translate", "end_to_end", "floor", *PEER_ROWS):
        if name not in report["results"]:
            continue
        numbers = report["results"][name]
        us = numbers["us_per_event"]
        rows.append(
            f"{labels[name]:<56} {numbers['events_per_s']:>10,.0f} {us:>9.2f} "
            f"{us / floor_us:>8.2f} {us / translate_us:>7.2f} {numbers['cpu_us_per_event']:>8.2f}"
        )
    return "\n".join(rows)


def spread_table(report: dict[str, Any]) -> str:
    """The median and range of µs/event over the rounds, per measurement."""
    rows = [f"µs/event over {report['rounds']} rounds: median (min - max)"]
    for name, spread in report["spread"].items():
        rows.append(
            f"  {name:<12} {spread['median']:>9.2f} ({spread['min']:.2f} - {spread['max']:.2f})"
        )
    return "\n".join(rows)


def peer_summary(report: dict[str, Any]) -> str:
    """Say what the peer did with the corpus, per mode: sent, skipped, rejected, and why."""
    lines = [
        "Segment peer, the default (automatic) presets as subscriptions:",
        textwrap.fill(
            ", ".join(report["peer_presets"]),
            width=96,
            initial_indent="  ",
            subsequent_indent="  ",
        ),
    ]
    for mode in report["peer_modes"].values():
        lines += ["", *_mode_summary(mode)]
    return "\n".join(lines)


def _mode_summary(mode: dict[str, Any]) -> list[str]:
    counts = mode["counts"]
    per = mode["us_per_event_by_outcome"]

    def cost(outcome: str) -> str:
        value = per.get(outcome)
        return "" if value is None else f"  ({value:.1f} µs each)"

    if mode["mode"] == "batch":
        chunks = (
            f"each subscription's own events (routed before the clock) in chunks of {mode['batch']}"
            if mode["group"]
            else f"chunks of {mode['batch']} events"
        )
        head = (
            f"batched, through {mode['entry_point']}() on {chunks}; "
            f"batching on in {len(mode['batched_presets'])} presets' mappings, "
            f"{len(mode['per_event_presets'])} left per event:"
        )
        refused = "rejected (refused in batch)"
    else:
        head = f"per event, through {mode['entry_point']}():"
        refused = "rejected (error thrown)    "
    paths = ", ".join(f"{path} {number:,}" for path, number in mode["stub_paths"].items())
    lines = [
        head,
        f"  sent (a request built)      {counts['sent']:>8,}{cost('sent')}",
        f"  skipped (no preset matches) {counts['skipped']:>8,}{cost('skipped')}",
        f"  {refused} {counts['rejected']:>8,}{cost('rejected')}",
        f"  requests seen by the stub   {counts['requests']:>8,}"
        f"  ({mode['events_per_request']:.1f} sent events per request)",
        f"  paths the stub saw (that run, warm-up included): {paths}",
    ]
    for message, number in sorted(mode["errors"].items(), key=lambda item: -item[1])[:6]:
        lines.append(f"    {number:>6,} x {message}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--corpus", help="use this JSONL (or .gz) corpus instead of generating")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best of)")
    parser.add_argument(
        "--warmup", type=int, default=5000, help="untimed peer events before its pass"
    )
    parser.add_argument(
        "--json-lib", choices=("auto", "json", "orjson"), default="auto", help="JSON for ours"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=75,
        help="events per onBatch() chunk for Segment's batched row (default 75; 0: no row)",
    )
    parser.add_argument(
        "--group",
        action="store_true",
        help="also time Segment batched per subscription (full batches, routing untimed)",
    )
    parser.add_argument("--scratch", default=str(DEFAULT_SCRATCH), help="npm install folder")
    parser.add_argument("--reinstall", action="store_true", help="run npm install again")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    args = parser.parse_args(argv)
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be >= 1")
    if args.batch < 0:
        parser.error("--batch must be >= 0")
    if args.group and args.batch == 0:
        parser.error("--group needs --batch N > 0")
    tools = _tools()
    if tools is None:
        print("bench_peer: skipped, node and npm are needed for Segment's destination")
        return 0
    report = run(args, *tools)
    stats = report["stats"]
    info = report["machine"]
    print(
        f"machine: {info['nproc']} x {info['cpu']}, Python {info['python']}, Node {report['node']}"
    )
    print(
        f"corpus: {stats['messages']:,} messages, the same JSON Lines file for both; "
        f"best of {report['rounds']} interleaved rounds"
    )
    print()
    print(table(report))
    print()
    print(spread_table(report))
    print()
    print(peer_summary(report))
    ratios = report["ratios"]
    print()
    print(
        f"ratios: Segment per event / ours translate = {ratios['peer_vs_translate']:.2f}, "
        f"Segment per event / ours end to end = {ratios['peer_vs_end_to_end']:.2f}, "
        f"translate / floor = {ratios['translate_vs_floor']:.2f}, "
        f"end to end / floor = {ratios['end_to_end_vs_floor']:.2f}"
    )
    for name, what in (("peer_batch", "batched"), ("peer_grouped", "batched per subscription")):
        if f"{name}_vs_translate" in ratios:
            print(
                f"        Segment {what} / ours translate = {ratios[f'{name}_vs_translate']:.2f}, "
                f"/ ours end to end = {ratios[f'{name}_vs_end_to_end']:.2f}, "
                f"/ Segment per event = {ratios[f'{name}_vs_peer']:.2f}"
            )
    cpu = report["cpu_ratios"]
    batched = (
        f"Segment batched / ours translate = {cpu['peer_batch_vs_translate']:.2f}, "
        if "peer_batch_vs_translate" in cpu
        else ""
    )
    print(
        f"by CPU time: Segment per event / ours translate = {cpu['peer_vs_translate']:.2f}, "
        f"{batched}translate / floor = {cpu['translate_vs_floor']:.2f} "
        "(Segment's CPU time includes V8's garbage-collector threads)"
    )
    note = ours.busy_note(report["busy"])
    if note:
        print(note)
    if args.json:
        ours.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
