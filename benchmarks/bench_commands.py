"""``segment-braze send`` and ``replay`` side by side, as a user runs them, in one run.

Each configuration is the command line a user types, run as a child process on
the same gzipped corpus file into ``sink_server.py`` (its own process, 20 ms of
latency and Braze's 3,000 requests per 3 s by default). The configurations are
interleaved, round after round, so that the host's load moves them alike; every
replay starts from a fresh state file (and so a fresh attribute cache). The
rate of each run is the corpus's messages over the command's wall time, start
to exit; the report gives each configuration's median and range, and its median
over the first configuration's (``send`` by default).

The REST API key travels in the environment, as the commands require, never on
a command line.

Usage::

    python benchmarks/bench_commands.py --corpus /tmp/c100k.jsonl.gz [--rounds 6]
        [--config "label:replay --dedup none"] [--src /path/to/another/checkout]

Without ``--config`` it runs ``send``, ``replay --dedup none``, ``replay --dedup
memory`` and ``replay`` (its default SQLite cache). With ``--src`` every command
imports ``segment_braze`` from that folder (a ``git archive`` of another commit)
instead of the installed one.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sink_server import SinkProcess

KEY = "bench-commands-key"
SETTINGS = '{"app_id": "bench-app", "track_all_pages": true, "anonymous_users": "alias"}'
DEFAULT_CONFIGS = (
    "send:send",
    "replay, no cache:replay --dedup none",
    "replay, memory cache:replay --dedup memory",
    "replay (default):replay",
)


def count_lines(corpus: Path) -> int:
    """Messages in a gzipped JSON Lines corpus (one per line)."""
    with gzip.open(corpus, "rb") as lines:
        return sum(1 for line in lines if line.strip())


def parse_config(text: str) -> tuple[str, list[str]]:
    """``LABEL:COMMAND ARGS`` as a label and the command's arguments."""
    label, sep, command = text.partition(":")
    words = shlex.split(command)
    if not sep or not words or words[0] not in {"send", "replay"}:
        raise SystemExit(f"--config {text!r}: expected LABEL:send ... or LABEL:replay ...")
    return label, words


def run_once(words: list[str], corpus: Path, env: dict[str, str], settings: Path) -> float:
    """Run one command to its end; its wall time in seconds."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "segment_braze", words[0], "--quiet"]
        command += ["--settings", str(settings), *words[1:]]
        if words[0] == "replay":
            command += ["--state", str(Path(folder) / "state.sqlite3")]
        command.append(str(corpus))
        start = time.perf_counter()
        done = subprocess.run(
            command, env=env, cwd=folder, capture_output=True, text=True, check=False, timeout=7200
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{' '.join(words)} exited {done.returncode}: {last}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corpus", required=True, type=Path, help="gzipped JSONL corpus")
    parser.add_argument("--rounds", type=int, default=6, help="rounds (default 6)")
    parser.add_argument("--latency", type=float, default=0.02, help="sink latency (default 0.02)")
    parser.add_argument(
        "--config", action="append", help="LABEL:COMMAND ARGS (repeatable; see above)"
    )
    parser.add_argument("--src", help="import segment_braze from this folder instead")
    args = parser.parse_args(argv)
    configs = [parse_config(text) for text in (args.config or DEFAULT_CONFIGS)]
    messages = count_lines(args.corpus)
    rates: dict[str, list[float]] = {label: [] for label, _ in configs}
    with (
        SinkProcess(latency=args.latency, rate_limit=(3000, 3.0)) as sink,
        tempfile.TemporaryDirectory() as folder,
    ):
        settings = Path(folder) / "settings.json"
        settings.write_text(SETTINGS)
        env = {key: value for key, value in os.environ.items() if not key.startswith("BRAZE_")}
        env |= {
            "BRAZE_REST_API_KEY": KEY,
            "BRAZE_REST_ENDPOINT": sink.url,
            "BRAZE_ALLOW_CUSTOM_ENDPOINT": "1",
        }
        if args.src:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.src, env.get("PYTHONPATH")]))
        for round_number in range(1, args.rounds + 1):
            for label, words in configs:
                rate = messages / run_once(words, args.corpus.resolve(), env, settings)
                rates[label].append(rate)
                print(f"round {round_number}: {label}: {rate:,.0f} messages/s", flush=True)
    first = statistics.median(rates[configs[0][0]])
    print(f"\n{messages:,} messages, {args.rounds} rounds, {args.latency * 1000:g} ms latency")
    print("config | messages/s median [range] | x " + configs[0][0])
    for label, values in rates.items():
        median = statistics.median(values)
        print(
            f"{label} | {median:,.0f} [{min(values):,.0f}-{max(values):,.0f}]"
            f" | {median / first:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
