"""Segment's S3 layout: ``segment-logs/<source-id>/<received-day>/<file>``, in time order.

Segment's S3 destination writes each source's messages under
``segment-logs/<source-id>/<received-day>/<file>.gz``. The received day is the
Unix time in milliseconds of the UTC day Segment received the messages, and a
file's name starts with its time in milliseconds, so names sort by time within
a day. One bucket may hold several sources; reading them in time order means
merging the sources' files by received day, then by file time. Only the list
of files is sorted, never the messages: within a file, line order stands.

A file is in the layout when its absolute path ends in
``segment-logs/<source-id>/<digits>/<file>``. Nothing else is ever inferred from
a path.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from typing import Final, NamedTuple

__all__ = ["ArchiveFile", "archive_file", "folder_source", "order_key", "received_long_before"]

_ROOT: Final = "segment-logs"
_DAY_MS: Final = 86_400_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LEADING_DIGITS: Final = re.compile(r"\d+")
_WIDTH: Final = 20  # digits of a padded time: numbers compare as strings


class ArchiveFile(NamedTuple):
    """Where a file sits in Segment's S3 layout."""

    source: str
    """The source id: the folder under ``segment-logs``."""
    day: int
    """The received day: Unix time in milliseconds of its UTC midnight."""
    time: int | None
    """The time the file's name starts with (milliseconds), or None."""


def archive_file(path: str) -> ArchiveFile | None:
    """Where ``path`` sits in Segment's S3 layout, or ``None`` when it is not in it."""
    return None if path == "-" else _archive_file(os.path.abspath(path))


def folder_source(path: str) -> str | None:
    """The source id of a file read from under ``segment-logs/<source-id>/``, or None."""
    return None if path == "-" else _folder_source(os.path.abspath(path))


@functools.lru_cache(maxsize=4096)
def _archive_file(path: str) -> ArchiveFile | None:
    parts = path.split(os.sep)
    if len(parts) < 4 or parts[-4] != _ROOT or not parts[-3] or not parts[-2].isdigit():
        return None
    time = _LEADING_DIGITS.match(parts[-1])
    return ArchiveFile(
        source=parts[-3], day=int(parts[-2]), time=int(time.group()) if time else None
    )


@functools.lru_cache(maxsize=4096)
def _folder_source(path: str) -> str | None:
    parts = path.split(os.sep)
    for index in range(len(parts) - 2, 0, -1):
        if parts[index - 1] == _ROOT and parts[index]:
            return parts[index]
    return None


def order_key(path: str, relative: tuple[str, ...]) -> tuple[str, ...]:
    """The sort key of a file found in a folder: time order in the layout, else name order.

    Args:
        path: the file.
        relative: its path's parts relative to the folder given on the command line.

    Returns:
        Keys that compare as strings. A file in the layout sorts by what leads to
        its ``segment-logs`` folder, then by received day, file time, name and
        source: so the sources under one ``segment-logs`` folder interleave in time
        order. Any other file sorts by its path's parts (name order).
    """
    found = archive_file(path)
    if found is None:
        return relative
    name = relative[-1]
    time = f"{found.time:0{_WIDTH}d}" if found.time is not None else "~" + name
    # The parts above <source>/<day>/<file>: the bucket's own folders.
    prefix = relative[: max(0, len(relative) - 3)]
    return (*prefix, f"{found.day:0{_WIDTH}d}", time, name, found.source)


def received_long_before(path: str, moment: dt.datetime) -> bool:
    """Whether Segment received every message of ``path`` over a day before ``moment``.

    A message's time is when it happened: never after Segment received it, but for
    a device clock's error. The extra day covers that error, so such a file holds
    no message at or after ``moment`` and may be skipped unread. (Nothing is said
    of files received after a time: phones queue events while offline, and send
    them days later.)
    """
    found = archive_file(path)
    if found is None:
        return False
    cutoff = (moment - _EPOCH) // dt.timedelta(milliseconds=1)
    return found.day + 2 * _DAY_MS <= cutoff
