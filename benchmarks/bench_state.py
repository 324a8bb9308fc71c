"""The replay state's cost per message, as the state grows.

Claims, finishes and commits ``--messages`` random messageIds (a commit every
``--batch`` outcomes, as the sender's ``before_request`` hook does with one
worker; claims looked up 256 at a time where the checkout can), and prints the
microseconds per message of each tenth of the run, so the cost at the start (an
empty state) and at the end (a large one) sit side by side. Put an older
checkout first on ``PYTHONPATH`` to compare the two in one run::

    git archive HEAD~1 segment_braze | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/bench_state.py --messages 1000000
    python benchmarks/bench_state.py --messages 1000000
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path

from segment_braze._replay.identity import Identity
from segment_braze._replay.state import Claim, ReplayState


def written() -> int:
    """Bytes this process wrote so far (Linux's ``wchar``; 0 elsewhere)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return 0
    fields = dict(line.split(": ") for line in text.splitlines())
    return int(fields.get("wchar", 0))


def main() -> None:
    """Run the benchmark and print one line per tenth of the run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=75, help="outcomes per commit")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--merge-every", type=int, help="outcomes per merge of the log")
    parser.add_argument("--fold-every", type=int, help="outcomes per fold of the recent table")
    parser.add_argument("--state", help="the state file (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = 1_700_000_000_000
    with tempfile.TemporaryDirectory() as folder:
        path = args.state or str(Path(folder, "state.sqlite"))
        extra = {} if args.merge_every is None else {"merge_every": args.merge_every}
        if args.fold_every is not None:  # checkouts from state version 4
            extra["fold_every"] = args.fold_every
        state = ReplayState(path, commit_after=3600.0, **extra)
        tenth = max(1, args.messages // 10)
        wrote = written()
        slices: list[float] = []
        parts: list[tuple[float, float]] = []  # claims, commits: us per message, per tenth
        started = time.perf_counter()
        batch: list[Identity] = []
        claiming = committing = 0.0
        # Claims looked up a chunk at a time, as the replay's feed does (when the
        # checkout has it).
        ahead = getattr(state, "look_ahead", None)
        chunk: list[Identity] = []
        for number in range(args.messages):
            if not chunk:
                chunk = [
                    Identity(
                        "src",
                        f"m:{uuid.UUID(int=rng.getrandbits(128))}",
                        base + rng.randrange(86_400_000 * 30),
                    )
                    for _ in range(256)
                ]
                if ahead is not None:
                    before = time.perf_counter()
                    ahead(chunk)
                    claiming += time.perf_counter() - before
                chunk.reverse()
            identity = chunk.pop()
            before = time.perf_counter()
            verdict = state.claim(identity, ("in.jsonl", number + 1, None))
            claiming += time.perf_counter() - before
            if verdict.claim is Claim.NEW:
                batch.append(identity)
            if len(batch) >= args.batch:
                before = time.perf_counter()
                state.commit()  # before the request
                for sent in batch:
                    state.finish(sent, "delivered")
                committing += time.perf_counter() - before
                batch.clear()
            if (number + 1) % tenth == 0:
                now = time.perf_counter()
                slices.append((now - started) / tenth * 1e6)
                parts.append((claiming, committing))
                started = now
        for sent in batch:
            state.finish(sent, "delivered")
        closing = time.perf_counter()
        state.close()
        close = time.perf_counter() - closing
        wrote = written() - wrote
        size = Path(path).stat().st_size
    split = [
        (claims - earlier[0], commits - earlier[1])
        for (claims, commits), earlier in zip(parts, [(0.0, 0.0), *parts], strict=False)
    ]
    print(
        "us/message per tenth:",
        " ".join(f"{value:.1f}" for value in slices),
        f"| last/first {slices[-1] / slices[0]:.2f}"
        f" | mean {sum(slices) / len(slices):.1f}"
        f" | claims {claiming / args.messages * 1e6:.1f}"
        f" commits {committing / args.messages * 1e6:.1f}"
        f" | written {wrote / args.messages / 1000:.1f} KB/message"
        f" | peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        f" | close {close:.2f}s | file {size / 1e6:.0f} MB",
    )
    print(
        "claims/commits per tenth:",
        " ".join(f"{a / tenth * 1e6:.1f}/{b / tenth * 1e6:.1f}" for a, b in split),
    )


if __name__ == "__main__":
    main()
