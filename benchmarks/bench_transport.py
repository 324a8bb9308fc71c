"""CPU per request of the sender's two transports, measured side by side.

Posts ``--requests`` bodies of ``--size`` bytes (a full ``/users/track`` request
is about 30 KB) through the client's own ``Poster`` (the total deadline, the
capped read, the courier thread: everything a real request pays) into
``sink_server.py`` at no latency, one thread, alternating passes of:

* ``requests``: a ``requests.Session`` (what ``BrazeClient(session=...)`` uses);
* ``lean``: urllib3 directly (the default without ``session=``).

It prints the median and range of CPU microseconds per request (this process's
user + system time, the courier thread included).

Usage::

    python benchmarks/bench_transport.py [--requests 3000] [--size 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink_server import SinkProcess

from segment_braze._deliver.exchange import Poster, RequestsTransport
from segment_braze._deliver.lean import LeanTransport

HEADERS = {"Authorization": "Bearer bench-transport-key", "Content-Type": "application/json"}


def one_pass(kind: str, url: str, count: int, body: bytes) -> float:
    """CPU microseconds per request of ``count`` posts through ``kind``."""
    transport = RequestsTransport(requests.Session()) if kind == "requests" else None
    poster = Poster(transport or LeanTransport(maxsize=1), headers=HEADERS, timeout=(10.0, 30.0))
    poster(url, body)  # connect first: keep-alive is what is measured
    cpu = time.process_time()
    for _ in range(count):
        reply = poster(url, body)
        if reply.status != 201:
            raise RuntimeError(f"the sink answered {reply.status}")
    spent = time.process_time() - cpu
    poster.transport.close()
    return spent / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000, help="posts per pass")
    parser.add_argument("--size", type=int, default=30000, help="body bytes (default 30000)")
    parser.add_argument("--repeat", type=int, default=5, help="passes of each (default 5)")
    args = parser.parse_args(argv)
    body = b'{"events":[' + b"1," * (args.size // 2 - 8) + b"1]}"
    results: dict[str, list[float]] = {"requests": [], "lean": []}
    with SinkProcess(latency=0.0) as sink:
        url = sink.url + "/users/track"
        for _ in range(args.repeat):
            for kind, values in results.items():
                values.append(one_pass(kind, url, args.requests, body))
    for kind, values in results.items():
        print(
            f"{kind}: {statistics.median(values):.0f} us CPU per request "
            f"[{min(values):.0f}-{max(values):.0f}] over {args.repeat} passes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
