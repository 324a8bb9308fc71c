"""BrazeStandIn in its own process, for benchmarks that must not share its GIL.

A stand-in run in the benchmark's own process answers from the same interpreter
as the sender: its HTTP parsing and object checks take the GIL from the sender's
threads, and the measured rate is then the two of them together. Run here, it
costs the benchmark only a CPU core's share, as a real Braze would not.

Protocol: the first line on stdout is ``{"url": ...}``. Each line on stdin is a
command, answered by one JSON line on stdout:

* ``stats``: the requests received so far (``received_at`` of each, per path),
  the statuses answered (in all and per path), the objects accepted, and this
  process's CPU seconds;
* ``reset``: forget everything received (``BrazeStandIn.reset``).

End of stdin stops the server.

Usage (from another script: see :class:`StandInProcess`)::

    python benchmarks/standin_server.py --key KEY [--latency 0.02] [--rate-limit 3000/3]
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Self

from segment_braze.testing import BrazeStandIn

__all__ = ["ServerProcess", "StandInProcess", "max_in_window", "rate"]


def _stats(braze: BrazeStandIn) -> dict[str, Any]:
    received: dict[str, list[float]] = collections.defaultdict(list)
    statuses: collections.Counter[str] = collections.Counter()
    by_path: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for request in braze.requests:
        received[request.path].append(request.received_at)
        statuses[str(request.status)] += 1
        by_path[request.path][str(request.status)] += 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": sum(statuses.values()),
        "received_at": received,
        "statuses": statuses,
        "statuses_by_path": by_path,
        "accepted": {
            "attributes": len(braze.accepted_attributes),
            "events": len(braze.accepted_events),
            "purchases": len(braze.accepted_purchases),
        },
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
    }


def serve(key: str, latency: float, rate_limit: tuple[int, float] | None) -> None:
    with BrazeStandIn(api_key=key, latency=latency, rate_limit=rate_limit) as braze:
        print(json.dumps({"url": braze.url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                answer: dict[str, Any] = _stats(braze)
            elif command == "reset":
                braze.reset()
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)


def max_in_window(times: list[float], window: float) -> int:
    """The most requests received in any ``window`` seconds (a sliding window)."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


class ServerProcess:
    """A benchmark server run as a child process, spoken to over its stdin/stdout."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = str(self._ask(None)["url"])

    @property
    def pid(self) -> int:
        return self._process.pid

    def _ask(self, command: str | None) -> dict[str, Any]:
        stdin: IO[str] | None = self._process.stdin
        stdout: IO[str] | None = self._process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the server process has no pipes")
        if command is not None:
            stdin.write(command + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("the server process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stats(self) -> dict[str, Any]:
        """What the server received so far (see the module docstring)."""
        return self._ask("stats")

    def reset(self) -> None:
        """Forget every request received."""
        self._ask("reset")

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class StandInProcess(ServerProcess):
    """Runs this script as a child process; a context manager.

    Args:
        key: the REST API key the stand-in accepts.
        latency: seconds the stand-in waits before each answer.
        rate_limit: ``(requests, seconds)`` beyond which it answers 429, or None.
    """

    def __init__(
        self, *, key: str, latency: float = 0.0, rate_limit: tuple[int, float] | None = None
    ) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--key", key]
        command += ["--latency", str(latency)]
        if rate_limit is not None:
            command += ["--rate-limit", f"{rate_limit[0]}/{rate_limit[1]}"]
        super().__init__(command)


def rate(text: str) -> tuple[int, float]:
    """Read ``N/SECONDS`` (a ``--rate-limit`` argument)."""
    requests, _, seconds = text.partition("/")
    return int(requests), float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--key", required=True, help="the REST API key to accept")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--rate-limit", type=rate, metavar="N/SECONDS", help="answer 429 beyond N per SECONDS"
    )
    args = parser.parse_args(argv)
    serve(args.key, args.latency, args.rate_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
