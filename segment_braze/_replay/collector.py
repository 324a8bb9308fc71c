"""The garbage collector's pace in the commands' own processes.

CPython runs a young collection after every 700 net new containers (dicts,
lists, objects). A send or replay keeps thousands of messages in flight, and
their containers survive young collections, so the collector walks them over
and over, all of it under the one GIL the reading thread and the sender
workers share. Reference counting frees nearly everything this pipeline makes,
so the collector only has reference cycles to find, which are rare here. The
commands therefore collect every 50,000 containers instead of 700: in the main
process for the duration of the command only (a program that calls ``main()``
keeps its own settings), and in the worker processes that translate for
``--processes``. Measured, ``replay`` ran 1.18x (30,000 messages) to 1.78x
(100,000) its earlier rate (docs/performance.md). The library itself never
changes a caller's collector.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

__all__ = ["THRESHOLDS", "fewer_collections"]

THRESHOLDS: Final = (50_000, 20, 100)
"""``gc.set_threshold`` arguments for the commands' processes."""


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's thresholds to :data:`THRESHOLDS`, and restore them after."""
    before = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
