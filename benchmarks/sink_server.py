"""A minimal Braze sink in its own process: answers ``201 {"message":"success"}``.

The Braze stand-in (``standin_server.py``) parses and judges every object, about
20 us of CPU per message, which on a 2-core machine competes with the sender it
measures. This sink does what Braze's network side costs a sender and nothing
more: it reads each HTTP/1.1 request (keep-alive, ``Content-Length`` bodies),
waits ``--latency`` seconds, and answers success. It records each request's
arrival time (to check the rate limit as Braze counts it, by arrivals), its path
and its size, and answers 429 beyond ``--rate-limit`` as Braze would.

Same protocol as ``standin_server.py``: the first line on stdout is
``{"url": ...}``; each line on stdin (``stats``, ``reset``) is answered by one
JSON line; end of stdin stops the server.

Usage::

    python benchmarks/sink_server.py [--latency 0.02] [--rate-limit 3000/3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from standin_server import ServerProcess, rate

__all__ = ["SinkProcess"]

_SUCCESS = b'{"message":"success"}'
_OK = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_SUCCESS) + _SUCCESS
)
_LIMITED_BODY = b'{"message":"rate limited"}'
_LIMITED = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
    b"X-RateLimit-Reset: 1\r\nContent-Length: %d\r\n\r\n" % len(_LIMITED_BODY) + _LIMITED_BODY
)


class _Sink:
    def __init__(self, latency: float, rate_limit: tuple[int, float] | None) -> None:
        self.latency = latency
        self.rate_limit = rate_limit
        self.lock = threading.Lock()
        self.received: dict[str, list[float]] = collections.defaultdict(list)
        self.statuses: collections.Counter[str] = collections.Counter()
        self.bytes = 0
        self.window: collections.deque[float] = collections.deque()

    def admit(self, path: str, size: int) -> bool:
        now = time.time()
        with self.lock:
            self.received[path].append(now)
            self.bytes += size
            if self.rate_limit is not None:
                limit, seconds = self.rate_limit
                while self.window and now - self.window[0] >= seconds:
                    self.window.popleft()
                if len(self.window) >= limit:
                    self.statuses["429"] += 1
                    return False
                self.window.append(now)
            self.statuses["201"] += 1
        return True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                path = head.split(b" ", 2)[1].decode("latin-1")
                admitted = self.admit(path, len(head) + len(body))
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(_OK if admitted else _LIMITED)
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,  # the server is stopping
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            return {
                "requests": sum(self.statuses.values()),
                "received_at": dict(self.received),
                "statuses": dict(self.statuses),
                "bytes": self.bytes,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
            }

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.statuses.clear()
            self.bytes = 0
            self.window.clear()


def _commands(sink: _Sink, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            answer: dict[str, Any] = sink.stats()
        elif command == "reset":
            sink.reset()
            answer = {"ok": True}
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    loop.call_soon_threadsafe(stop.set)


async def serve(latency: float, rate_limit: tuple[int, float] | None) -> None:
    sink = _Sink(latency, rate_limit)
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_commands, args=(sink, loop, stop), daemon=True).start()
    async with server:
        await stop.wait()


class SinkProcess(ServerProcess):
    """Runs the sink as a child process; a context manager with ``url``, ``stats()``."""

    def __init__(
        self, *, latency: float = 0.0, rate_limit: tuple[int, float] | None = None
    ) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--latency", str(latency)]
        if rate_limit is not None:
            command += ["--rate-limit", f"{rate_limit[0]}/{rate_limit[1]}"]
        super().__init__(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--rate-limit", type=rate, metavar="N/SECONDS", help="answer 429 beyond N per SECONDS"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.latency, args.rate_limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
