"""Sending through BrazeClient beside the translate-only rate, measured in one run.

On one corpus (20,000 messages by default, parsed before any timer starts) this
times, interleaved and best of ``--repeat`` passes each:

* translate only: ``translate()`` + ``.requests()`` per message, as in
  bench_translate.py: the rate the sender would reach if the network were free;
* send at each ``--latency`` (0 ms and 20 ms by default): ``BrazeClient.send`` of
  the message dicts with default client settings (4 workers, Braze's rate
  limits), end to end: translation, batching, serialisation, HTTP on loopback.

The ratio send / translate shows how much of the network wait the sender hides.

The stand-in runs in its own process (``standin_server.py``): in this process it
would take the GIL from the sender's threads and the measured rate would be that
of the two together. It enforces Braze's ``/users/track`` limit (3,000 requests
per 3 s, answering 429 beyond it; ``--track-limit`` sets another limit for both
client and stand-in), and after each pass the arrival time of every request is
checked: the table reports the most requests in any window of the limit's length.

Usage::

    python benchmarks/bench_send.py [--count 20000] [--latency 0,0.02] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bench_translate as ours
from standin_server import StandInProcess, max_in_window

from segment_braze import BrazeClient, Settings

KEY = "bench-send-key"
TRACK = "/users/track"
# Braze: /users/track takes 3,000 requests per 3 seconds (BrazeClient's default).
TRACK_LIMIT = (3000, 3.0)


def client_settings(url: str) -> Settings:
    return Settings(
        **ours.BENCH_SETTINGS, rest_api_key=KEY, rest_endpoint=url, allow_custom_endpoint=True
    )


def time_send(
    messages: Sequence[Any],
    settings: Settings,
    workers: int,
    track_limit: tuple[int, float] = TRACK_LIMIT,
) -> dict[str, Any]:
    """One pass of BrazeClient.send; wall and CPU seconds, and the client's report."""
    wall, cpu = time.perf_counter(), time.process_time()
    with BrazeClient(settings, workers=workers, track_rate_limit=track_limit) as client:
        report = client.send(messages)
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "delivered": report.delivered,
        "failed": len(report.failed),
        "dropped": len(report.dropped),
        "requests": report.requests,
        "retries": report.retries,
    }


def _label(latency: float) -> str:
    return f"send_{latency * 1000:g}ms"


def run(
    *,
    count: int | None = 20_000,
    seed: int = 1,
    corpus_path: str | None = None,
    repeat: int = 3,
    latencies: Sequence[float] = (0.0, 0.02),
    workers: int = 4,
    track_limit: tuple[int, float] = TRACK_LIMIT,
    cache_dir: str | Path = ours.OUT,
) -> dict[str, Any]:
    """Run the benchmark and return its numbers (what ``--json`` writes)."""
    settings = ours.bench_settings()
    lines = ours.load_lines(count, seed, corpus_path, cache_dir)
    prepared = ours.prepare(lines, settings)
    messages = prepared.messages
    stand_ins = {
        latency: StandInProcess(key=KEY, latency=latency, rate_limit=track_limit)
        for latency in latencies
    }
    try:
        passes = _measure(
            messages, settings, stand_ins, repeat=repeat, workers=workers, track_limit=track_limit
        )
    finally:
        for stand_in in stand_ins.values():
            stand_in.close()
    events = len(messages)
    results: dict[str, dict[str, Any]] = {
        "translate": ours.rates(passes.pop("translate")["best"], events)
    }
    for name, numbers in passes.items():
        row = ours.rates(numbers["best"], events)
        # Several threads: CPU time is not comparable with wall time.
        row["single_threaded"] = False
        row |= numbers["of_best"]
        results[name] = row
    translate_rate = results["translate"]["events_per_s"]
    ratios = {
        f"{name}_vs_translate": row["events_per_s"] / translate_rate
        for name, row in results.items()
        if name != "translate"
    }
    # How much of the network wait the sender hides: latency against none.
    unhindered = results.get(_label(0.0))
    if unhindered is not None:
        for name, row in results.items():
            if name not in ("translate", _label(0.0)):
                ratios[f"{name}_vs_{_label(0.0)}"] = (
                    row["events_per_s"] / unhindered["events_per_s"]
                )
    return {
        "benchmark": "send",
        "machine": ours.machine(),
        "corpus": {"count": len(lines), "seed": None if corpus_path else seed, "path": corpus_path},
        "settings": ours.BENCH_SETTINGS,
        "client": {"workers": workers, "track_rate_limit": list(track_limit)},
        "stand_in": "BrazeStandIn in its own process (benchmarks/standin_server.py)",
        "repeat": repeat,
        "switch_interval": sys.getswitchinterval(),
        "stats": prepared.stats,
        "results": results,
        "ratios": ratios,
        "busy": ours.busy(results),
    }


def _measure(
    messages: Sequence[Any],
    settings: Settings,
    stand_ins: dict[float, StandInProcess],
    *,
    repeat: int,
    workers: int,
    track_limit: tuple[int, float],
) -> dict[str, dict[str, Any]]:
    measures: dict[str, Callable[[], dict[str, Any]]] = {
        "translate": lambda: _as_pass(ours.time_translate(messages, settings)),
    }
    for latency, stand_in in stand_ins.items():
        measures[_label(latency)] = _sender(messages, stand_in, workers, track_limit)
    passes: dict[str, dict[str, Any]] = {
        name: {"best": (math.inf, math.inf), "of_best": {}} for name in measures
    }
    gc.collect()
    gc.freeze()  # the corpus stays alive for the whole run: keep it out of collections
    try:
        for _ in range(repeat):
            for name, measure in measures.items():
                gc.collect()
                numbers = measure()
                best = passes[name]["best"]
                passes[name]["best"] = (min(best[0], numbers["wall"]), min(best[1], numbers["cpu"]))
                if numbers["wall"] <= passes[name]["best"][0]:
                    passes[name]["of_best"] = {
                        k: v for k, v in numbers.items() if k not in ("wall", "cpu")
                    }
    finally:
        gc.unfreeze()
    return passes


def _as_pass(timing: tuple[float, float]) -> dict[str, Any]:
    return {"wall": timing[0], "cpu": timing[1]}


def _sender(
    messages: Sequence[Any],
    stand_in: StandInProcess,
    workers: int,
    track_limit: tuple[int, float],
) -> Callable[[], dict[str, Any]]:
    settings = client_settings(stand_in.url)

    def measure() -> dict[str, Any]:
        stand_in.reset()
        cpu_before = stand_in.stats()["cpu_seconds"]
        numbers = time_send(messages, settings, workers, track_limit)
        if numbers["delivered"] != len(messages):
            raise SystemExit(f"the stand-in did not accept every message: {numbers}")
        stats = stand_in.stats()
        track_times = stats["received_at"].get(TRACK, [])
        users_times = [
            t for path, times in stats["received_at"].items() if path != TRACK for t in times
        ]
        numbers |= {
            "statuses": stats["statuses"],
            "statuses_by_path": stats["statuses_by_path"],
            "track_requests": len(track_times),
            "user_requests": len(users_times),
            "max_track_in_window": max_in_window(track_times, track_limit[1]),
            "track_requests_per_s": len(track_times) / numbers["wall"],
            "stand_in_cpu_seconds": stats["cpu_seconds"] - cpu_before,
        }
        return numbers

    return measure


def table(report: dict[str, Any]) -> str:
    """Format a report as the small table the CLI prints."""
    translate = report["results"]["translate"]["us_per_event"]
    rows = [
        f"{'measurement':<40} {'events/s':>9} {'µs/event':>9} {'x translate':>11}"
        f" {'CPU µs':>7} {'requests':>8} {'req/s':>6} {'max in window':>13}"
    ]
    for name, numbers in report["results"].items():
        if name == "translate":
            label, tail = "translate + request bodies (no HTTP)", ""
        else:
            latency = name.removeprefix("send_")
            label = f"BrazeClient.send, stand-in +{latency}"
            tail = (
                f" {numbers['requests']:>8,} {numbers['track_requests_per_s']:>6,.0f}"
                f" {numbers['max_track_in_window']:>13,}"
            )
        ratio = numbers["us_per_event"] / translate
        rows.append(
            f"{label:<40} {numbers['events_per_s']:>9,.0f} {numbers['us_per_event']:>9.2f}"
            f" {ratio:>11.2f} {numbers['cpu_us_per_event']:>7.1f}{tail}"
        )
    return "\n".join(rows)


def _limit(text: str) -> tuple[int, float]:
    requests, _, seconds = text.partition("/")
    try:
        return int(requests), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N/SECONDS, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--count", type=int, help="messages (default 20000; with --corpus, all of it)"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--corpus", help="read this JSONL (or .gz) corpus instead of generating")
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement (best)")
    parser.add_argument(
        "--latency",
        default="0,0.02",
        help="seconds the stand-in waits before each answer, comma-separated (default 0,0.02)",
    )
    parser.add_argument("--workers", type=int, default=4, help="BrazeClient workers (default 4)")
    parser.add_argument(
        "--track-limit",
        type=_limit,
        default=TRACK_LIMIT,
        metavar="N/SECONDS",
        help="the /users/track rate limit of client and stand-in (default Braze's, 3000/3)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="SECONDS",
        help="sys.setswitchinterval for this run (CPython's default is 0.005): how long a"
        " thread back from the network may wait for the GIL",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    parser.add_argument(
        "--cache-dir", default=str(ours.OUT), help="where generated corpora are kept"
    )
    args = parser.parse_args(argv)
    limit, window = args.track_limit
    if args.count is None and args.corpus is None:
        args.count = 20_000
    if (args.count is not None and args.count < 1) or args.repeat < 1 or args.workers < 1:
        parser.error("--count, --repeat and --workers must be >= 1")
    try:
        latencies = [float(value) for value in args.latency.split(",")]
    except ValueError:
        parser.error("--latency takes seconds, comma-separated")
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    started = time.perf_counter()
    report = run(
        count=args.count,
        seed=args.seed,
        corpus_path=args.corpus,
        repeat=args.repeat,
        latencies=latencies,
        workers=args.workers,
        track_limit=args.track_limit,
        cache_dir=args.cache_dir,
    )
    info, stats = report["machine"], report["stats"]
    print(f"machine: {info['nproc']} x {info['cpu']}, {info['implementation']} {info['python']}")
    print(
        f"corpus: {stats['messages']:,} messages, {stats['track_objects']:,} /users/track"
        " objects once translated"
    )
    print(
        f"client: {args.workers} workers, /users/track limit {limit:,} per {window:g} s;"
        f" stand-in in its own process; best of {args.repeat}"
        f" interleaved passes; switch interval {sys.getswitchinterval() * 1000:g} ms"
    )
    print()
    print(table(report))
    print()
    ratios = report["ratios"]
    for name, row in report["results"].items():
        if name == "translate":
            continue
        hidden = ratios.get(f"{name}_vs_{_label(0.0)}")
        print(
            f"{name}: {ratios[f'{name}_vs_translate']:.0%} of the translate-only rate"
            + (f", {hidden:.0%} of the 0 ms rate" if hidden is not None else "")
            + f"; at most {row['max_track_in_window']:,} /users/track requests in any"
            f" {window:g} s ({row['max_track_in_window'] / limit:.0%} of the limit, {limit:,});"
            f" statuses {dict(row['statuses'])}"
        )
    note = ours.busy_note(report["busy"])
    if note:
        print(note)
    print(f"(the whole run took {time.perf_counter() - started:.0f} s)")
    if args.json:
        ours.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
