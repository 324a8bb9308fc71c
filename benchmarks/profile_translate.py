"""Profile ``translate()`` + ``.requests()`` on the benchmark corpus.

Uses pyinstrument (a sampling profiler: little distortion, an inclusive call
tree) when installed, else the standard library's cProfile (self time per
function, with more overhead on small functions). ``pip install pyinstrument``.

Usage::

    python benchmarks/profile_translate.py [--count 30000] [--seed 1]
        [--profiler pyinstrument|cprofile] [--html OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
from pathlib import Path

import bench_translate
import corpus

from segment_braze import translate


def _has_pyinstrument() -> bool:
    try:
        import pyinstrument  # noqa: F401, PLC0415 - optional
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=30_000, help="messages (default 30000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--profiler", choices=("pyinstrument", "cprofile"))
    parser.add_argument("--top", type=int, default=25, help="cProfile rows (default 25)")
    parser.add_argument("--html", metavar="OUT", help="pyinstrument: also write an HTML report")
    args = parser.parse_args(argv)
    profiler = args.profiler or ("pyinstrument" if _has_pyinstrument() else "cprofile")
    settings = bench_translate.bench_settings()
    messages = [json.loads(corpus.dump_line(m)) for m in corpus.generate(args.count, args.seed)]
    for message in messages[:2_000]:  # warm up caches before sampling
        translate(message, settings).requests()

    if profiler == "pyinstrument":
        from pyinstrument import Profiler  # noqa: PLC0415 - optional

        sampler = Profiler(interval=0.0005)
        sampler.start()
        for message in messages:
            translate(message, settings).requests()
        sampler.stop()
        print(sampler.output_text(unicode=True, color=False))
        if args.html:
            Path(args.html).write_text(sampler.output_html())
        return 0

    profile = cProfile.Profile()
    profile.enable()
    for message in messages:
        translate(message, settings).requests()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
