"""What the replay state answers about a message: the claim, and the verdict.

:class:`segment_braze._replay.state.ReplayState` gives a :class:`Verdict` for
each message read; :class:`Claimed` is a message claimed in this run and not
committed yet.
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple

__all__ = ["EARLIER", "NEW", "Claim", "Claimed", "Position", "Verdict", "nearest", "place"]

Position = tuple[str, int, int | None]
"""Where a message was read: the input's name, its line, its item on that line."""


class Claim(enum.Enum):
    """What the state says about a message about to be sent."""

    NEW = "new"
    """Not claimed yet, nor a duplicate: send it (it is now in flight)."""
    DUPLICATE = "duplicate"
    """A duplicate of a message claimed in this run or recorded by an earlier one."""
    DONE_EARLIER = "done earlier"
    """Delivered by an earlier run."""
    FAILED_EARLIER = "failed earlier"
    """Failed in an earlier run; not retried without ``retry_failed``."""


class Verdict(NamedTuple):
    """A claim's answer.

    Attributes:
        claim: what to do with the message.
        first: for a duplicate, where the message it duplicates was read
            (``file:line``, as the records say it).
        same: for a duplicate, whether it is a copy of the same message (the same
            time), rather than another within the window.
    """

    claim: Claim
    first: str | None = None
    same: bool = False


class Claimed:
    """A message claimed in this run and not committed yet (its fields are the state's)."""

    __slots__ = ("file", "item", "legacy", "line", "source", "status", "time")

    def __init__(
        self, source: int, time: int, file: int, line: int, item: int | None, *, legacy: bool
    ) -> None:
        self.source = source  # the source's number
        self.time = time
        self.status = 0  # 0 while in flight
        self.file = file
        self.line = line
        self.item = item
        self.legacy = legacy  # claimed again over a version-1 row (--retry-failed)


NEW: Final = Verdict(Claim.NEW)
EARLIER: Final = {claim: Verdict(claim) for claim in (Claim.DONE_EARLIER, Claim.FAILED_EARLIER)}


def place(name: str, line: int | None, item: int | None) -> str:
    """``file:line``, with `` item N`` inside a one-line array or envelope."""
    where = f"{name}:{line}" if line else name
    return where if item is None else f"{where} item {item}"


def nearest(entries: list[Claimed], time: int, window: int) -> Claimed | None:
    """The claimed message that one at ``time`` duplicates: the nearest within ``window``."""
    best, closest = None, window + 1
    for entry in entries:
        distance = abs(entry.time - time)
        if distance < closest:
            best, closest = entry, distance
    return best
