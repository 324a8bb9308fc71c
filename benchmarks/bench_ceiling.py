"""How close ``BrazeClient.send`` comes to Braze's ceiling, and to translation alone.

Braze accepts 3,000 ``/users/track`` requests per 3 s of at most 75 objects each:
75,000 objects per second, the ceiling of any sender to one workspace. This runs,
interleaved, ``--repeat`` passes of:

* translate: one thread reads the gzipped corpus line by line, parses and
  translates each message and serialises its objects (what the sender must do per
  message at least): the rate one core reaches when the network is free;
* send, for each ``--config``: ``BrazeClient.send`` of the same file, streamed (a
  generator of parsed lines, never a pre-parsed list), into ``sink_server.py``
  answering after ``--latency`` with Braze's 3,000/3 s limit enforced.

Every pass runs in a child process of its own, so that each starts cold and its
peak memory (resident set of the process and all its children, sampled every
20 ms) is its own. The table gives medians and ranges of objects per second, the
ratio to the ceiling, the ratio to translate in the same run, which of the two
binds, the most ``/users/track`` arrivals in any 3 s window (as Braze counts), and
the peak RSS.

A config is ``name:option=value,...`` over ``workers``, ``processes``,
``input`` (``dicts``, parsed by the benchmark as it reads, the default, or
``lines``, the JSON text handed to ``send`` as read), ``transport`` (``lean``,
the default without ``session=``, or ``requests``, a ``requests.Session`` passed
in), ``gc`` (a young-generation threshold the pass sets with
``gc.set_threshold(gc, 20, 100)`` before sending, as a pipeline may in its own
process; CPython's default is 700), and ``src``: a directory holding another checkout
of the package (``git archive REV | tar -x -C DIR``), imported instead of the
installed one, for a before/after in the same run.

Usage::

    python benchmarks/corpus.py --count 100000 --gzip -o /tmp/c100k.jsonl.gz
    python benchmarks/bench_ceiling.py --corpus /tmp/c100k.jsonl.gz \\
        --config default: --config w32:workers=32 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink_server import SinkProcess
from standin_server import max_in_window

KEY = "bench-ceiling-key"
TRACK = "/users/track"
LIMIT = (3000, 3.0)
CEILING = 75 * LIMIT[0] / LIMIT[1]  # objects per second
SETTINGS = {"app_id": "bench-app", "track_all_pages": True, "anonymous_users": "alias"}


def _lines(path: str) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield line


def _tree_rss(root: int) -> int:
    """Resident kB of ``root`` and every descendant (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


class _Peak:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _tree_rss(me))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def pass_translate(corpus: str) -> dict[str, Any]:
    """Parse, translate and serialise every line on this one thread."""
    from segment_braze import Settings, translate  # noqa: PLC0415
    from segment_braze._json import dumps, loads  # noqa: PLC0415

    settings = Settings(**SETTINGS)
    objects = messages = 0
    peak = _Peak()
    wall, cpu = time.perf_counter(), time.process_time()
    for line in _lines(corpus):
        # The package's own reader (orjson when installed), as the sender's.
        translation = translate(loads(line), settings)
        for kind in (translation.attributes, translation.events, translation.purchases):
            for obj in kind:
                dumps(obj.to_json())
                objects += 1
        messages += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss = peak.stop()
    return {"wall": wall, "cpu": cpu, "objects": objects, "messages": messages, "rss_kb": rss}


def pass_send(corpus: str, url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``BrazeClient.send`` of the corpus, streamed, with ``options``."""
    import requests  # noqa: PLC0415

    from segment_braze import BrazeClient, Settings  # noqa: PLC0415

    settings = Settings(**SETTINGS, rest_api_key=KEY, rest_endpoint=url, allow_custom_endpoint=True)
    import segment_braze  # noqa: PLC0415

    kwargs = {k: int(v) for k, v in options.items() if k in ("workers", "processes")}
    if "gc" in options:
        gc.set_threshold(int(options["gc"]), 20, 100)
    transport = options.get("transport", "lean")
    session = requests.Session() if transport == "requests" else None
    if session is not None:
        kwargs["session"] = session  # type: ignore[assignment]
    peak = _Peak()
    wall, cpu = time.perf_counter(), time.process_time()
    lines = _lines(corpus)
    # "lines": the JSON text as read (parsed by the client, in its children with
    # processes); "dicts": parsed here first, as a caller holding dicts would.
    given = lines if options.get("input") == "lines" else (json.loads(line) for line in lines)
    with BrazeClient(settings, track_rate_limit=LIMIT, **kwargs) as client:  # type: ignore[arg-type]
        report = client.send(given)
    wall = time.perf_counter() - wall
    return {
        "wall": wall,
        "cpu": time.process_time() - cpu,
        "children_cpu": sum(os.times()[2:4]),
        "delivered": report.delivered,
        "failed": len(report.failed),
        "dropped": len(report.dropped),
        "requests": report.requests,
        "retries": report.retries,
        "rss_kb": peak.stop(),
        "package": str(Path(segment_braze.__file__).parent),
    }


def _child(kind: str, corpus: str, url: str = "", options: str = "") -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--corpus", corpus]
    env = dict(os.environ)
    if url:
        command += ["--url", url, "--options", options]
        source = json.loads(options).get("src")
        if source:
            # Another checkout of the package (``git archive REV | tar -x -C DIR``),
            # for a before/after in the same run.
            env["PYTHONPATH"] = source
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=3600, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} pass failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _options(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    options = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name or "default", options


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def run(corpus: str, configs: list[str], repeat: int, latency: float) -> dict[str, Any]:
    """Interleave the passes; return every pass's numbers."""
    results: dict[str, list[dict[str, Any]]] = {"translate": []}
    parsed = [_options(config) for config in configs]
    with SinkProcess(latency=latency, rate_limit=LIMIT) as sink:
        for _ in range(repeat):
            results["translate"].append(_child("translate", corpus))
            for name, options in parsed:
                sink.reset()
                outcome = _child("send", corpus, sink.url, json.dumps(options))
                stats = sink.stats()
                arrivals = stats["received_at"].get(TRACK, [])
                outcome["most_in_window"] = max_in_window(arrivals, LIMIT[1])
                outcome["status_429"] = stats["statuses"].get("429", 0)
                results.setdefault(name, []).append(outcome)
    return results


def table(results: dict[str, Any]) -> str:
    """The results as a text table (medians [ranges])."""
    translated = results["translate"]
    objects = translated[0]["objects"]
    translate_rates = [objects / p["wall"] for p in translated]
    lines = [
        f"messages {translated[0]['messages']}, objects {objects}, "
        f"ceiling {CEILING:,.0f} objects/s",
        f"translate, one thread: {_summary(translate_rates)} objects/s "
        f"({_summary([r / CEILING for r in translate_rates])} of the ceiling), "
        f"peak RSS {_summary([p['rss_kb'] / 1024 for p in translated])} MB",
        "config | objects/s | x ceiling | x translate | binds | max /3s | 429s | RSS MB",
    ]
    for name, passes in results.items():
        if name == "translate":
            continue
        rates = [objects / p["wall"] for p in passes]
        ratios = [rate / CEILING for rate in rates]
        versus = [rate / t for rate, t in zip(rates, translate_rates, strict=True)]
        binds = "CPU" if statistics.median(translate_rates) < CEILING else "ceiling"
        lines.append(
            f"{name} | {_summary(rates)} | {_summary(ratios)} | {_summary(versus)} | {binds} | "
            f"{max(p['most_in_window'] for p in passes)} | "
            f"{sum(p['status_429'] for p in passes)} | "
            f"{_summary([p['rss_kb'] / 1024 for p in passes])}"
        )
        messages = translated[0]["messages"]
        if any(p["delivered"] + p["failed"] + p["dropped"] != messages for p in passes):
            lines.append(f"  {name}: a pass did not account for every message once")
        if any(p["failed"] for p in passes):
            lines.append(f"  {name}: failed messages: {[p['failed'] for p in passes]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corpus", required=True, help="a gzipped JSONL corpus (corpus.py --gzip)")
    parser.add_argument("--config", action="append", help="name:option=value,... (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each (default 3)")
    parser.add_argument("--latency", type=float, default=0.02, help="sink latency (default 0.02)")
    parser.add_argument("--json", metavar="OUT", help="also write every pass as JSON to OUT")
    parser.add_argument("--child", choices=("translate", "send"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "translate":
        print(json.dumps(pass_translate(args.corpus)))
        return 0
    if args.child == "send":
        print(json.dumps(pass_send(args.corpus, args.url, json.loads(args.options))))
        return 0
    results = run(args.corpus, args.config or ["default:"], args.repeat, args.latency)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
