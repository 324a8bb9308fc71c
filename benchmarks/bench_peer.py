"""Segment's own Braze destination beside ours, on the same corpus, in one run.

Installs ``benchmarks/peer/`` (Segment's ``@segment/action-destinations`` from the
npm registry) into a scratch folder on first use, then alternates rounds of our
translate benchmark with rounds of ``node bench.js`` on the same JSON Lines file
and reports the best of each, with the ratio Segment µs/event / ours.

Usage::

    python benchmarks/bench_peer.py [--count 100000] [--seed 1] [--rounds 3] [--json OUT]

Exits 0 with a message when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import time
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


def run_peer(node: str, scratch: Path, corpus_file: Path, *, warmup: int) -> dict[str, Any]:
    """Run ``bench.js`` once (a warm-up, then one timed pass) and return its report."""
    command = [node, "bench.js", str(corpus_file), "--warmup", str(warmup), "--json"]
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

    peer_reports: list[dict[str, Any]] = []

    def peer() -> tuple[float, float]:
        report = run_peer(node, scratch, corpus_file, warmup=args.warmup)
        peer_reports.append(report)
        return report["seconds"], report["cpu_seconds"]

    measures["peer"] = peer
    best = ours.best_of(measures, args.rounds)
    fastest = min(peer_reports, key=lambda report: report["seconds"])
    if fastest["events"] != len(lines):
        raise SystemExit(f"the peer read {fastest['events']} events, we read {len(lines)}")

    results = {name: ours.rates(passes, len(lines)) for name, passes in best.items()}
    # Node's CPU time includes V8's GC threads: not a sign of a busy machine.
    results["peer"]["single_threaded"] = False
    by_outcome = fastest["us_per_event_by_outcome"]
    return {
        "benchmark": "peer",
        "machine": ours.machine(),
        "node": fastest["node"],
        "packages": fastest["packages"],
        "peer_presets": fastest["presets"],
        "corpus": {"count": len(lines), "seed": None if args.corpus else args.seed},
        "rounds": args.rounds,
        "json_lib": lib.name,
        "stats": prepared.stats,
        "peer_counts": fastest["counts"],
        "peer_us_per_event_by_outcome": by_outcome,
        "peer_errors": fastest["errors"],
        "results": results,
        "ratios": _ratios(best, 0),
        "cpu_ratios": _ratios(best, 1),
        "busy": ours.busy(results),
    }


def _ratios(best: dict[str, tuple[float, float]], index: int) -> dict[str, float]:
    # index 0: wall time, 1: CPU time.
    return {
        "peer_vs_translate": best["peer"][index] / best["translate"][index],
        "peer_vs_end_to_end": best["peer"][index] / best["end_to_end"][index],
        "translate_vs_floor": best["translate"][index] / best["floor"][index],
        "end_to_end_vs_floor": best["end_to_end"][index] / best["floor"][index],
    }


def table(report: dict[str, Any]) -> str:
    """Format the report as the small table the CLI prints."""
    lib = report["json_lib"].split(" (")[0]
    packages = report["packages"]
    labels = {
        "translate": "ours: translate + request bodies (no JSON)",
        "end_to_end": f"ours: loads + translate + dumps [{lib}]",
        "floor": "floor: loads + dumps, same sizes [stdlib json]",
        "peer": (
            f"Segment action-destinations {packages['@segment/action-destinations']} "
            f"(Node {report['node']})"
        ),
    }
    translate_us = report["results"]["translate"]["us_per_event"]
    floor_us = report["results"]["floor"]["us_per_event"]
    rows = [
        f"{'measurement':<56} {'events/s':>10} {'µs/event':>9} {'x floor':>8} {'x ours':>7} "
        f"{'CPU µs':>8}"
    ]
    for name in ("translate", "end_to_end", "floor", "peer"):
        numbers = report["results"][name]
        us = numbers["us_per_event"]
        rows.append(
            f"{labels[name]:<56} {numbers['events_per_s']:>10,.0f} {us:>9.2f} "
            f"{us / floor_us:>8.2f} {us / translate_us:>7.2f} {numbers['cpu_us_per_event']:>8.2f}"
        )
    return "\n".join(rows)


def peer_summary(report: dict[str, Any]) -> str:
    """Say what the peer did with the corpus: sent, skipped, rejected, and why."""
    counts = report["peer_counts"]
    per = report["peer_us_per_event_by_outcome"]

    def cost(outcome: str) -> str:
        value = per.get(outcome)
        return "-" if value is None else f"{value:.1f} µs each"

    presets = textwrap.fill(
        ", ".join(report["peer_presets"]),
        width=96,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    lines = [
        "Segment peer, through Destination.onEvent() with the default presets:",
        presets,
        f"  sent (a request built)      {counts['sent']:>8,}  ({cost('sent')})",
        f"  skipped (no preset matches) {counts['skipped']:>8,}  ({cost('skipped')})",
        f"  rejected (error thrown)     {counts['rejected']:>8,}  ({cost('rejected')})",
        f"  requests seen by the stub   {counts['requests']:>8,}",
    ]
    for message, number in sorted(report["peer_errors"].items(), key=lambda item: -item[1])[:6]:
        lines.append(f"    {number:>6,} x {message}")
    return "\n".join(lines)


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
    parser.add_argument("--scratch", default=str(DEFAULT_SCRATCH), help="npm install folder")
    parser.add_argument("--reinstall", action="store_true", help="run npm install again")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    args = parser.parse_args(argv)
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be >= 1")
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
    print(peer_summary(report))
    ratios = report["ratios"]
    print()
    print(
        f"ratios: Segment / ours translate = {ratios['peer_vs_translate']:.2f}, "
        f"Segment / ours end to end = {ratios['peer_vs_end_to_end']:.2f}, "
        f"translate / floor = {ratios['translate_vs_floor']:.2f}, "
        f"end to end / floor = {ratios['end_to_end_vs_floor']:.2f}"
    )
    cpu = report["cpu_ratios"]
    print(
        f"by CPU time: Segment / ours translate = {cpu['peer_vs_translate']:.2f}, "
        f"translate / floor = {cpu['translate_vs_floor']:.2f} "
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
