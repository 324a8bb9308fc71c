"""Peak memory and speed of ``segment-braze replay`` over gzipped corpora, in one run.

For each corpus size (100,000 and 1,000,000 messages by default, gzipped JSON
Lines written once by corpus.py's generator and cached in ``benchmarks/out/``)
this runs, each as a child process and interleaved, best of ``--repeat``:

* read only: gunzip, split lines and parse them into records, as every command
  reads its input (no translation): the input's own cost, for comparison;
* ``segment-braze replay --dry-run`` with ``--processes`` 1 and 2 (translates,
  checks the state, sends nothing);
* ``segment-braze replay`` into ``BrazeStandIn`` running in another process
  (``standin_server.py``), with the command's defaults (4 workers, the attribute
  cache next to the state), with ``--processes`` 1 and 2;
* with ``--with-send``, ``segment-braze send`` of the same file into the stand-in:
  the same reading and sending without the replay's state and attribute cache.

Every run starts from an empty state file. Memory is the peak resident set size
(RSS): of the largest single process, from ``wait4()`` (the kernel's high-water
mark, exact), and of the command's processes together (its worker processes
too), sampled from ``/proc`` every 200 ms. CPU is the user + system time of the
command and its worker processes. The stand-in's own CPU time is reported apart.

Usage::

    python benchmarks/bench_replay.py [--sizes 100000,1000000] [--repeat 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_translate as ours
import corpus
from standin_server import StandInProcess, max_in_window

KEY = "bench-replay-key"
TRACK = "/users/track"
TRACK_LIMIT = (3000, 3.0)  # Braze: /users/track, 3,000 requests per 3 seconds
# Targets of issue 6 for a replay's memory.
GROWTH_TARGET = 1.2
RSS_TARGET_MB = 150
_SAMPLE_EVERY = 0.2
_READ_ONLY = """\
import sys
from segment_braze._replay.inputs import read_source
count = sum(1 for record in read_source(sys.argv[1]) if record.error is None)
print(count)
"""


def gz_corpus(count: int, seed: int, directory: str | Path) -> Path:
    """Return a gzipped JSONL corpus of ``corpus.generate(count, seed)``, written once.

    The name carries a digest of corpus.py, so a changed generator never serves
    a stale file (as ``corpus.cached`` does for plain files).
    """
    directory = Path(directory)
    digest = hashlib.sha256(Path(corpus.__file__).read_bytes()).hexdigest()[:12]
    path = directory / f"corpus-{count}-{seed}-{digest}.jsonl.gz"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f"corpus-{count}-{seed}-*.jsonl.gz"):
        stale.unlink()
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    print(f"writing {path.name} (once) ...", file=sys.stderr, flush=True)
    # mtime=0: the same count and seed give the same bytes.
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed,
    ):
        for message in corpus.generate(count, seed):
            packed.write((corpus.dump_line(message) + "\n").encode())
    partial.replace(path)
    return path


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in children.read_text().split()]
            except OSError:
                continue
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _TreeSampler:
    """Samples the summed RSS of a process and its descendants (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.available = Path(f"/proc/{pid}/status").exists()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _TreeSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = sum(_rss_kb(pid) for pid in _descendants(self.pid))
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(_SAMPLE_EVERY)


def measure(command: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; its wall and CPU seconds, peak RSS and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        with _TreeSampler(process.pid) as sampler:
            # wait4: this child's own resource usage (its waited-for worker
            # processes included), not that of every child this script ran.
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,  # Linux: kilobytes
        "tree_peak_rss_kb": sampler.peak_kb if sampler.available else None,
        "returncode": process.returncode,
        "stdout": stdout,
        "stderr": stderr[-2000:],
    }


def _environment(url: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("BRAZE_")}
    if url is not None:
        env |= {
            "BRAZE_REST_API_KEY": KEY,
            "BRAZE_REST_ENDPOINT": url,
            "BRAZE_ALLOW_CUSTOM_ENDPOINT": "1",
        }
    return env


def _replay_command(
    path: Path, workdir: Path, settings: Path, *, dry: bool, processes: int, dedup: str | None
) -> list[str]:
    command = [sys.executable, "-m", "segment_braze", "replay", str(path)]
    command += ["--state", str(workdir / "state.sqlite"), "--settings", str(settings), "--quiet"]
    command += ["--processes", str(processes)]
    if dry:
        command.append("--dry-run")
    elif dedup is not None:
        command += ["--dedup", dedup]
    return command


def _one(
    name: str,
    path: Path,
    settings: Path,
    stand_in: StandInProcess | None,
    dedup: str | None,
) -> dict[str, Any]:
    kind, _, processes = name.partition(":")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch:
        workdir = Path(scratch)
        if kind == "read":
            command = [sys.executable, "-c", _READ_ONLY, str(path)]
            return measure(command, _environment(None))
        if kind == "dry":
            command = _replay_command(
                path, workdir, settings, dry=True, processes=int(processes), dedup=None
            )
            return measure(command, _environment(None))
        if stand_in is None:
            raise RuntimeError("sending needs the stand-in")
        stand_in.reset()
        cpu_before = stand_in.stats()["cpu_seconds"]
        if kind == "send":
            command = [sys.executable, "-m", "segment_braze", "send", str(path)]
            command += ["--settings", str(settings), "--quiet"]
        else:
            command = _replay_command(
                path, workdir, settings, dry=False, processes=int(processes), dedup=dedup
            )
        numbers = measure(command, _environment(stand_in.url))
        stats = stand_in.stats()
        track_times = stats["received_at"].get(TRACK, [])
        numbers |= {
            "requests": stats["requests"],
            "statuses": stats["statuses"],
            "accepted": stats["accepted"],
            "max_track_in_3s": max_in_window(track_times, TRACK_LIMIT[1]),
            "stand_in_cpu_seconds": stats["cpu_seconds"] - cpu_before,
        }
        stand_in.reset()  # its ledgers would hold every object of every run
        return numbers


def _names(processes: Sequence[int], real_processes: Sequence[int], *, send: bool) -> list[str]:
    names = ["read"]
    names += [f"dry:{count}" for count in processes]
    if send:
        names.append("send")
    names += [f"real:{count}" for count in real_processes]
    return names


def run(
    *,
    sizes: Sequence[int] = (100_000, 1_000_000),
    seed: int = 1,
    repeat: int = 2,
    processes: Sequence[int] = (1, 2),
    real_processes: Sequence[int] = (1, 2),
    dedup: str | None = None,
    send: bool = False,
    cache_dir: str | Path = ours.OUT,
) -> dict[str, Any]:
    """Run the benchmark and return its numbers (what ``--json`` writes)."""
    names = _names(processes, real_processes, send=send)
    corpora = {size: gz_corpus(size, seed, cache_dir) for size in sizes}
    stand_in = None
    if real_processes or send:
        stand_in = StandInProcess(key=KEY, rate_limit=TRACK_LIMIT)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch:
            settings = Path(scratch) / "settings.json"
            settings.write_text(json.dumps(ours.BENCH_SETTINGS))
            for size, path in corpora.items():
                results[str(size)] = _size(
                    size, path, names, settings, stand_in, repeat=repeat, dedup=dedup
                )
    finally:
        if stand_in is not None:
            stand_in.close()
    return {
        "benchmark": "replay",
        "machine": ours.machine(),
        "corpora": {
            str(size): {"path": str(path), "bytes": path.stat().st_size, "seed": seed}
            for size, path in corpora.items()
        },
        "settings": ours.BENCH_SETTINGS,
        "dedup": dedup or "default (sqlite next to the state)",
        "repeat": repeat,
        "results": results,
        "memory": _growth(results, sizes),
    }


def _size(
    size: int,
    path: Path,
    names: Sequence[str],
    settings: Path,
    stand_in: StandInProcess | None,
    *,
    repeat: int,
    dedup: str | None,
) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(repeat):
        for name in names:
            print(f"  {size:,}: {name} ...", file=sys.stderr, flush=True)
            numbers = _one(name, path, settings, stand_in, dedup)
            if numbers["returncode"] != 0:
                raise SystemExit(
                    f"{name} on {path.name} exited with {numbers['returncode']}:\n"
                    f"{numbers['stdout']}{numbers['stderr']}"
                )
            _check(name, size, numbers)
            runs[name].append(numbers)
    best = {}
    for name, passes in runs.items():
        # Speed: the fastest run. Memory: the highest peak of any run.
        numbers = dict(min(passes, key=lambda numbers: numbers["wall"]))
        trees = [p["tree_peak_rss_kb"] for p in passes if p["tree_peak_rss_kb"] is not None]
        numbers |= {
            "max_rss_kb": max(p["max_rss_kb"] for p in passes),
            "tree_peak_rss_kb": max(trees) if trees else None,
            "events_per_s": size / numbers["wall"],
            "us_per_event": numbers["wall"] / size * 1e6,
            "cpu_us_per_event": numbers["cpu"] / size * 1e6,
            "walls": [p["wall"] for p in passes],
        }
        best[name] = numbers
    return best


def _check(name: str, size: int, numbers: dict[str, Any]) -> None:
    """Stop when a run did not handle every message (the numbers would mislead)."""
    if name == "read":
        if int(numbers["stdout"].strip() or 0) != size:
            raise SystemExit(f"read only: {numbers['stdout']!r} messages, not {size}")
        return
    word = "would be sent (dry run)" if name.startswith("dry") else "delivered"
    if f"{size:,}  {word}" not in numbers["stdout"]:
        raise SystemExit(f"{name}: not every message was {word}:\n{numbers['stdout']}")
    if not name.startswith("dry") and set(numbers["statuses"]) != {"201"}:
        raise SystemExit(f"{name}: the stand-in answered {numbers['statuses']}")


def _growth(
    results: dict[str, dict[str, dict[str, Any]]], sizes: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Peak RSS of the largest size against the smallest, per measurement."""
    if len(sizes) < 2:
        return {}
    small, large = str(min(sizes)), str(max(sizes))
    growth = {}
    for name, numbers in results[large].items():
        before = results[small][name]
        ratio = numbers["max_rss_kb"] / before["max_rss_kb"]
        tree_ratio = None
        if numbers["tree_peak_rss_kb"] and before["tree_peak_rss_kb"]:
            tree_ratio = numbers["tree_peak_rss_kb"] / before["tree_peak_rss_kb"]
        growth[name] = {
            "ratio": ratio,
            "tree_ratio": tree_ratio,
            "largest_mb": numbers["max_rss_kb"] / 1024,
            "within_target": ratio <= GROWTH_TARGET
            and numbers["max_rss_kb"] / 1024 < RSS_TARGET_MB,
        }
    return growth


def _label(name: str) -> str:
    kind, _, processes = name.partition(":")
    if kind == "read":
        return "read only: gunzip + parse into records"
    if kind == "send":
        return "send into the stand-in (no state)"
    plural = "process" if processes == "1" else "processes"
    if kind == "dry":
        return f"replay --dry-run, {processes} {plural}"
    return f"replay into the stand-in, {processes} {plural}"


def table(report: dict[str, Any]) -> str:
    """Format a report as the small tables the CLI prints."""
    rows = []
    for size, measurements in report["results"].items():
        megabytes = report["corpora"][size]["bytes"] / 1e6
        rows.append(f"{int(size):,} messages ({megabytes:.1f} MB gzipped)")
        rows.append(
            f"  {'measurement':<40} {'events/s':>9} {'µs/event':>9} {'CPU µs':>7}"
            f" {'peak RSS MB':>11} {'all processes':>13}"
        )
        for name, numbers in measurements.items():
            tree = numbers["tree_peak_rss_kb"]
            rows.append(
                f"  {_label(name):<40} {numbers['events_per_s']:>9,.0f}"
                f" {numbers['us_per_event']:>9.1f} {numbers['cpu_us_per_event']:>7.1f}"
                f" {numbers['max_rss_kb'] / 1024:>11.1f}"
                f" {(tree / 1024 if tree else math.nan):>13.1f}"
            )
        rows.append("")
    growth = report["memory"]
    if growth:
        sizes = sorted(int(size) for size in report["results"])
        rows.append(
            f"memory, {sizes[-1]:,} against {sizes[0]:,} messages (target: within"
            f" {GROWTH_TARGET}x and under {RSS_TARGET_MB} MB)"
        )
        for name, numbers in growth.items():
            tree = f", all processes {numbers['tree_ratio']:.2f}x" if numbers["tree_ratio"] else ""
            verdict = "met" if numbers["within_target"] else "NOT met"
            rows.append(
                f"  {_label(name):<40} {numbers['ratio']:.2f}x{tree},"
                f" {numbers['largest_mb']:.0f} MB: {verdict}"
            )
    return "\n".join(rows)


def _counts(text: str) -> list[int]:
    values = [int(value) for value in text.split(",") if value.strip()]
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("counts must be >= 1")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--sizes", type=_counts, default=[100_000, 1_000_000], help="corpus sizes, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best)")
    parser.add_argument(
        "--processes", type=_counts, default=[1, 2], help="--processes values for dry runs"
    )
    parser.add_argument(
        "--real-processes",
        type=_counts,
        default=[1, 2],
        help="--processes values for real replays into the stand-in",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real replays")
    parser.add_argument(
        "--with-send",
        action="store_true",
        help="also time `segment-braze send` of the same file (a replay without its state)",
    )
    parser.add_argument("--dedup", help="--dedup for the real replays (default: the command's)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to OUT")
    parser.add_argument(
        "--cache-dir", default=str(ours.OUT), help="where generated corpora are kept"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    started = time.perf_counter()
    report = run(
        sizes=args.sizes,
        seed=args.seed,
        repeat=args.repeat,
        processes=args.processes,
        real_processes=[] if args.no_real else args.real_processes,
        dedup=args.dedup,
        send=args.with_send,
        cache_dir=args.cache_dir,
    )
    info = report["machine"]
    print(f"machine: {info['nproc']} x {info['cpu']}, {info['implementation']} {info['python']}")
    print(
        f"settings: {json.dumps(report['settings'])}; best of {report['repeat']} interleaved"
        f" runs; real replays: 4 workers, attribute cache {report['dedup']}, stand-in in"
        " its own process"
    )
    print()
    print(table(report))
    print(f"(the whole run took {time.perf_counter() - started:.0f} s)")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        for measurements in report["results"].values():
            for numbers in measurements.values():
                numbers.pop("stderr", None)
        out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
