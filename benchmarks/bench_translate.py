"""Translation speed beside the JSON floor, measured side by side in one run.

On one corpus (pre-serialised as JSON lines in memory) this times, interleaved
and best of ``--repeat`` passes each:

* translate: ``translate()`` + ``.requests()`` per message, from parsed dicts, no JSON;
* end to end: parse the line, translate, build the requests, serialise every body
  (orjson when installed, else the standard library; ``--json-lib`` chooses);
* floor: the standard library's ``json.loads`` of each line plus ``json.dumps`` of
  the very bodies that message produces (pre-computed, so the sizes match);
  with orjson installed, the orjson floor too.

Usage::

    python benchmarks/bench_translate.py [--count 100000] [--seed 1] [--json OUT]
    python benchmarks/bench_translate.py --corpus corpus.jsonl.gz
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import corpus

from segment_braze import InvalidMessage, Settings, translate

__all__ = [
    "JsonLib",
    "Prepared",
    "bench_settings",
    "best_of",
    "busy",
    "busy_note",
    "json_lib",
    "load_lines",
    "machine",
    "no_gc",
    "prepare",
    "rates",
    "run",
    "stdlib_json",
    "time_end_to_end",
    "time_floor",
    "time_translate",
    "timings",
]

# Generated corpora are cached here (git ignores it).
OUT = Path(__file__).resolve().parent / "out"

# Every call type in the corpus produces output with these settings: pages and
# screens are tracked, anonymous users become aliases.
BENCH_SETTINGS = {"app_id": "bench-app", "track_all_pages": True, "anonymous_users": "alias"}


def bench_settings() -> Settings:
    return Settings(**BENCH_SETTINGS)


class JsonLib:
    """A JSON implementation: its name, ``loads`` and ``dumps``."""

    def __init__(self, name: str, loads: Callable[[str], Any], dumps: Callable[[Any], Any]) -> None:
        self.name = name
        self.loads = loads
        self.dumps = dumps


def stdlib_json() -> JsonLib:
    # Compact separators: what a sender puts on the wire.
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    return JsonLib(f"stdlib json (Python {platform.python_version()})", json.loads, encoder.encode)


def _orjson() -> JsonLib | None:
    try:
        import orjson  # noqa: PLC0415 - optional, like the package's `fast` extra
    except ImportError:
        return None
    return JsonLib(f"orjson {orjson.__version__}", orjson.loads, orjson.dumps)


def json_lib(choice: str) -> JsonLib:
    """Return the JSON library for ``auto`` (orjson if installed), ``json`` or ``orjson``."""
    if choice == "json":
        return stdlib_json()
    fast = _orjson()
    if fast is None:
        if choice == "orjson":
            raise SystemExit("--json-lib orjson: orjson is not installed (pip install orjson)")
        return stdlib_json()
    return fast


def machine() -> dict[str, Any]:
    """Describe the machine: cores, CPU model, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic collector while building the long-lived corpus.

    Building 100,000 parsed messages would otherwise trigger full collections
    over an ever larger heap: set-up time, not the cost being measured.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_lines(
    count: int | None, seed: int, path: str | None, cache_dir: str | Path = OUT
) -> list[str]:
    """Return the corpus as JSON lines: read from ``path``, or generated (and cached)."""
    with no_gc():
        if path is not None:
            lines = corpus.read_lines(path)
            return lines[:count] if count is not None else lines
        return corpus.read_lines(corpus.cached(count or 100_000, seed, cache_dir))


# One pass: (wall seconds, CPU seconds of this process). Wall time is what is
# reported; CPU time shows how much a busy machine took from the wall time.
Pass = tuple[float, float]


def time_translate(messages: Sequence[Any], settings: Settings) -> Pass:
    wall, cpu = time.perf_counter(), time.process_time()
    for message in messages:
        translate(message, settings).requests()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_end_to_end(lines: Sequence[str], settings: Settings, lib: JsonLib) -> Pass:
    loads, dumps = lib.loads, lib.dumps
    wall, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        for request in translate(loads(line), settings).requests():
            dumps(request.body)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_floor(lines: Sequence[str], bodies: Sequence[Sequence[Any]], lib: JsonLib) -> Pass:
    loads, dumps = lib.loads, lib.dumps
    wall, cpu = time.perf_counter(), time.process_time()
    for line, outputs in zip(lines, bodies, strict=True):
        loads(line)
        for body in outputs:
            dumps(body)
    return time.perf_counter() - wall, time.process_time() - cpu


@dataclasses.dataclass
class Prepared:
    """The corpus, ready for timing: valid lines, parsed messages, their bodies."""

    lines: list[str]
    messages: list[Any]
    bodies: list[list[Any]]
    stats: dict[str, int]


def prepare(lines: list[str], settings: Settings) -> Prepared:
    """Parse and translate every line once (also the warm-up); keep what is valid."""
    prepared = Prepared(lines=[], messages=[], bodies=[], stats={})
    stats = dict.fromkeys(
        ("invalid", "dropped", "requests", "track_objects", "warnings", "bytes_in", "bytes_out"),
        0,
    )
    stats["messages"] = len(lines)
    with no_gc():
        _translate_all(lines, settings, prepared, stats)
    if not prepared.lines:
        raise SystemExit("the corpus holds no valid message")
    prepared.stats = stats
    return prepared


def _translate_all(
    lines: list[str], settings: Settings, prepared: Prepared, stats: dict[str, int]
) -> None:
    dumps = json_lib("auto").dumps  # only to count output bytes: the fastest at hand
    for line in lines:
        message = json.loads(line)
        try:
            translation = translate(message, settings)
        except InvalidMessage:
            stats["invalid"] += 1
            continue
        requests = translation.requests()
        prepared.lines.append(line)
        prepared.messages.append(message)
        prepared.bodies.append([request.body for request in requests])
        stats["dropped"] += translation.dropped is not None
        stats["requests"] += len(requests)
        stats["track_objects"] += translation.object_count
        stats["warnings"] += len(translation.warnings)
        stats["bytes_in"] += len(line.encode())
        for request in requests:
            encoded = dumps(request.body)
            stats["bytes_out"] += len(encoded.encode() if isinstance(encoded, str) else encoded)


def timings(prepared: Prepared, settings: Settings, lib: JsonLib) -> dict[str, Callable[[], Pass]]:
    """Return our measurements by name, each a callable giving the seconds of one pass."""
    stdlib = stdlib_json()
    measures: dict[str, Callable[[], Pass]] = {
        "translate": lambda: time_translate(prepared.messages, settings),
        "end_to_end": lambda: time_end_to_end(prepared.lines, settings, lib),
        "floor": lambda: time_floor(prepared.lines, prepared.bodies, stdlib),
    }
    if lib.name != stdlib.name:
        measures["floor_fast"] = lambda: time_floor(prepared.lines, prepared.bodies, lib)
    return measures


def best_of(measures: dict[str, Callable[[], Pass]], repeat: int) -> dict[str, Pass]:
    """Run every measurement ``repeat`` times, interleaved; return the best of each.

    Best wall time and best CPU time are taken separately.
    """
    # The corpus stays alive for the whole run; freezing it keeps the collector
    # from rescanning millions of long-lived objects, which a streaming replay
    # would never hold.
    gc.collect()
    gc.freeze()
    best = dict.fromkeys(measures, (math.inf, math.inf))
    try:
        for _ in range(repeat):
            for name, measure in measures.items():
                gc.collect()
                wall, cpu = measure()
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    finally:
        gc.unfreeze()
    return best


def rates(best: Pass, events: int) -> dict[str, float]:
    """Return seconds, events/s and µs/event (wall), and CPU µs/event, for ``events``."""
    wall, cpu = best
    return {
        "seconds": wall,
        "events_per_s": events / wall,
        "us_per_event": wall / events * 1e6,
        "cpu_seconds": cpu,
        "cpu_us_per_event": cpu / events * 1e6,
    }


def busy(results: dict[str, dict[str, float]]) -> float:
    """How much longer wall time ran than CPU time, at most over single-threaded rows."""
    return max(
        numbers["seconds"] / numbers["cpu_seconds"] - 1
        for numbers in results.values()
        if numbers.get("single_threaded", True) and numbers["cpu_seconds"] > 0
    )


def run(
    *,
    count: int | None = 100_000,
    seed: int = 1,
    corpus_path: str | None = None,
    repeat: int = 3,
    json_choice: str = "auto",
    cache_dir: str | Path = OUT,
) -> dict[str, Any]:
    """Run the benchmark and return its numbers (what ``--json`` writes)."""
    settings = bench_settings()
    lib = json_lib(json_choice)
    lines = load_lines(count, seed, corpus_path, cache_dir)
    prepared = prepare(lines, settings)
    best = best_of(timings(prepared, settings, lib), repeat)
    events = len(prepared.lines)
    results = {name: rates(passes, events) for name, passes in best.items()}
    return {
        "benchmark": "translate",
        "machine": machine(),
        "corpus": {"count": len(lines), "seed": None if corpus_path else seed, "path": corpus_path},
        "settings": BENCH_SETTINGS,
        "repeat": repeat,
        "json_lib": lib.name,
        "floor_json_lib": stdlib_json().name,
        "stats": prepared.stats,
        "results": results,
        "ratios": {
            "translate_vs_floor": best["translate"][0] / best["floor"][0],
            "end_to_end_vs_floor": best["end_to_end"][0] / best["floor"][0],
        },
        "cpu_ratios": {
            "translate_vs_floor": best["translate"][1] / best["floor"][1],
            "end_to_end_vs_floor": best["end_to_end"][1] / best["floor"][1],
        },
        "busy": busy(results),
    }


_LABELS = {
    "translate": "translate + request bodies (no JSON)",
    "end_to_end": "end to end: loads + translate + dumps [{lib}]",
    "floor": "floor: loads + dumps, same sizes [stdlib json]",
    "floor_fast": "floor: loads + dumps, same sizes [{lib}]",
}


def table(report: dict[str, Any]) -> str:
    """Format a report as the small table the CLI prints."""
    lib = report["json_lib"].split(" (")[0]
    floor = report["results"]["floor"]["us_per_event"]
    rows = [f"{'measurement':<56} {'events/s':>10} {'µs/event':>9} {'x floor':>8} {'CPU µs':>8}"]
    for name, numbers in report["results"].items():
        label = _LABELS[name].format(lib=lib)
        ratio = numbers["us_per_event"] / floor
        rows.append(
            f"{label:<56} {numbers['events_per_s']:>10,.0f} "
            f"{numbers['us_per_event']:>9.2f} {ratio:>8.2f} {numbers['cpu_us_per_event']:>8.2f}"
        )
    return "\n".join(rows)


def busy_note(share: float) -> str:
    """Warn when the machine was busy: wall time well above CPU time."""
    if share < 0.05:
        return ""
    return (
        f"note: wall time exceeded CPU time by up to {share:.0%}: the machine was busy "
        "(other processes took the CPU); the CPU µs column is steadier"
    )


def describe(report: dict[str, Any]) -> str:
    """Return the heading lines: machine, corpus, what was measured."""
    info, stats = report["machine"], report["stats"]
    source = report["corpus"]["path"] or f"generated, seed {report['corpus']['seed']}"
    return (
        f"machine: {info['nproc']} x {info['cpu']}, {info['implementation']} {info['python']}\n"
        f"corpus: {stats['messages']:,} messages ({source}), "
        f"{stats['bytes_in'] / stats['messages']:.0f} bytes/message in, "
        f"{stats['bytes_out'] / stats['messages']:.0f} bytes/message out\n"
        f"output: {stats['requests']:,} requests, {stats['track_objects']:,} track objects, "
        f"{stats['dropped']:,} dropped, {stats['invalid']:,} invalid, "
        f"{stats['warnings']:,} warnings\n"
        f"json: {report['json_lib']}; best of {report['repeat']} interleaved passes"
    )


def write_json(path: str, report: dict[str, Any]) -> None:
    """Write a benchmark's numbers as JSON, for comparison between commits."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--count", type=int, help="messages (default 100000; with --corpus, all of it)"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--corpus", help="read this JSONL (or .gz) corpus instead of generating")
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement (best)")
    parser.add_argument(
        "--json-lib",
        choices=("auto", "json", "orjson"),
        default="auto",
        help="JSON for the end-to-end row: auto = orjson when installed",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    parser.add_argument(
        "--cache-dir", default=str(OUT), help="where generated corpora are kept (benchmarks/out)"
    )
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error("--count must be >= 1")
    if args.count is None and args.corpus is None:
        args.count = 100_000
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    started = time.perf_counter()
    report = run(
        count=args.count,
        seed=args.seed,
        corpus_path=args.corpus,
        repeat=args.repeat,
        json_choice=args.json_lib,
        cache_dir=args.cache_dir,
    )
    print(describe(report))
    print()
    print(table(report))
    ratios = report["ratios"]
    print()
    print(
        f"ratios: translate / floor = {ratios['translate_vs_floor']:.2f}, "
        f"end to end / floor = {ratios['end_to_end_vs_floor']:.2f}"
    )
    note = busy_note(report["busy"])
    if note:
        print(note)
    print(f"(the whole run took {time.perf_counter() - started:.0f} s)")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
