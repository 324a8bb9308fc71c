"""Where ``BrazeClient.send`` spends its CPU: per thread of the parent, and the children.

One ``send`` of a gzipped corpus (streamed, JSON lines) into ``sink_server.py``
with ``processes`` children, per ``--repeat``. While it runs, a sampler reads
every thread's CPU time from ``/proc/self/task/<tid>/stat`` (each 0.2 s, keeping
the last reading of each thread, so threads that end are counted too) and names
the thread by its Python name; the children's CPU comes from ``os.times()``
after the send. The garbage collector's collections and time (a callback on
``gc.callbacks``) are counted in the threads that triggered them, and shown
apart.

Usage::

    python benchmarks/corpus.py --count 100000 --gzip -o /tmp/c100k.jsonl.gz
    python benchmarks/bench_threads.py --corpus /tmp/c100k.jsonl.gz [--processes 2] [--repeat 2]

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ceiling import KEY, LIMIT, SETTINGS, _lines
from sink_server import SinkProcess

# Thread names, shortened to the group they belong to.
_GROUPS = (
    ("segment-braze-sender", "sender workers"),
    ("segment-braze-request", "couriers (HTTP)"),
    ("segment-braze-pool", "children's answer readers"),
    ("segment-braze-input", "input reader"),
    ("MainThread", "caller's thread (send)"),
)


class _Sampler:
    """The CPU seconds of each thread of this process, read from /proc."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, float]] = {}
        self._before: dict[str, float] = {}
        self._stop = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        # Threads alive before this send (an earlier send's couriers end only
        # after 2 idle seconds): only what they spend from now on counts.
        self.read()
        self._before = {tid: cpu for tid, (_, cpu) in self.seen.items()}
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.read()

    def read(self) -> None:
        names = {str(thread.native_id): thread.name for thread in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = names.get(tid, self.seen.get(tid, ("?", 0.0))[0])
            self.seen[tid] = (name, (int(fields[11]) + int(fields[12])) / self._tick)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.read()
        groups: collections.Counter[str] = collections.Counter()
        for tid, (name, total) in self.seen.items():
            group = next((label for prefix, label in _GROUPS if name.startswith(prefix)), None)
            if group is not None:
                groups[group] += total - self._before.get(tid, 0.0)
        return dict(groups)


def one_send(corpus: str, processes: int, latency: float) -> dict[str, Any]:
    """One streamed send; CPU per thread group, children and collector."""
    from segment_braze import BrazeClient, Settings  # noqa: PLC0415

    collections_made = [0, 0, 0]
    spent = [0.0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]
            collections_made[info["generation"]] += 1

    with SinkProcess(latency=latency, rate_limit=LIMIT) as sink:
        settings = Settings(
            **SETTINGS, rest_api_key=KEY, rest_endpoint=sink.url, allow_custom_endpoint=True
        )
        children_before = sum(os.times()[2:4])
        sampler = _Sampler()
        gc.callbacks.append(on_gc)
        wall = time.perf_counter()
        with BrazeClient(settings, track_rate_limit=LIMIT, processes=processes) as client:
            report = client.send(_lines(corpus))
        wall = time.perf_counter() - wall
        gc.callbacks.remove(on_gc)
        threads = sampler.stop()
    return {
        "wall": wall,
        "messages": report.total,
        "requests": report.requests,
        "threads": threads,
        "children": sum(os.times()[2:4]) - children_before,
        "gc_collections": collections_made,
        "gc_seconds": spent[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corpus", required=True, help="a gzipped JSONL corpus (corpus.py --gzip)")
    parser.add_argument("--processes", type=int, default=2, help="children (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="sends (default 2)")
    parser.add_argument("--latency", type=float, default=0.02, help="sink latency (default 0.02)")
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        result = one_send(args.corpus, args.processes, args.latency)
        per = 1e6 / max(1, result["messages"])
        print(
            f"{result['messages']:,} messages in {result['wall']:.2f} s, "
            f"{result['requests']:,} requests"
        )
        for group, cpu in sorted(result["threads"].items(), key=lambda item: -item[1]):
            print(f"  parent, {group:28s} {cpu:6.2f} s  {cpu * per:5.1f} us/message")
        children = result["children"]
        label = f"children ({args.processes})"
        print(f"  {label:36s} {children:6.2f} s  {children * per:5.1f} us/message")
        print(
            f"  garbage collector (in the above)     {result['gc_seconds']:6.2f} s  "
            f"collections by generation {result['gc_collections']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
