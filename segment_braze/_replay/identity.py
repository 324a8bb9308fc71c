"""Which message a message is: its source, its messageId (or its content) and its time.

Segment de-duplicates at ingestion, per source, on ``messageId`` within about 24
hours. A replay applies the same rule, so it needs the three parts of that rule
for each message:

- the **source**: the message's ``projectId`` (Segment's source id) when it has
  one, else the ``segment-logs/<source-id>/`` folder it was read from, else one
  source for the whole input (the empty string);
- the **id**: ``m:<messageId>``, or ``h:<digest of the content>`` for a message
  without a usable ``messageId`` (an identical copy is then the same message);
- the **time**: when it happened, in milliseconds since the Unix epoch, read as
  ``--since``/``--until`` and translation read it (``timestamp``, else the first
  usable of ``originalTimestamp``, ``sentAt``, ``receivedAt``), or
  :data:`NO_TIME`.

Two messages with the same source, id and time are the same message; the state
records each one it sent, so a later run never sends it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from segment_braze._translate.dates import parse_time
from segment_braze._translate.segment import _TIME_FIELDS

__all__ = ["NO_TIME", "Identity", "identify", "message_time"]

NO_TIME: Final = -(2**62)
"""The time of a message that has no usable time: equal only to itself."""
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND: Final = dt.timedelta(milliseconds=1)


class Identity(NamedTuple):
    """The parts of Segment's duplicate rule for one message."""

    source: str
    id: str
    time: int


def message_time(message: Mapping[str, Any]) -> int | None:
    """When the message happened, in milliseconds since the Unix epoch, or None."""
    for field in _TIME_FIELDS:
        moment = parse_time(message.get(field))
        if moment is not None:
            return (moment - _EPOCH) // _MILLISECOND
    return None


def _canonical(message: Mapping[str, Any]) -> bytes:
    """The message as canonical JSON (sorted keys), for a content digest."""
    try:
        text = json.dumps(
            message, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
    except (RecursionError, ValueError, TypeError):
        # Nested too deeply for the encoder (or keys that do not sort): walk it
        # with an explicit stack instead, so one hostile message costs only itself.
        text = _walked(message)
    return text.encode("utf-8", "surrogatepass")


def _walked(value: Any) -> str:
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Mark):
            parts.append(item.text)
        elif isinstance(item, Mapping):
            parts.append("{")
            stack.append(_Mark("}"))
            for key in sorted(item, key=str, reverse=True):
                stack.append(item[key])
                stack.append(_Mark(json.dumps(str(key), ensure_ascii=False) + ":"))
        elif isinstance(item, list | tuple):
            parts.append("[")
            stack.append(_Mark("]"))
            stack.extend(reversed(item))
        else:
            parts.append(json.dumps(item, ensure_ascii=False, default=str) + ",")
    return "".join(parts)


class _Mark(NamedTuple):
    """Structure written as it is (a bracket, a key), not a value."""

    text: str


def identify(message: Mapping[str, Any], folder: str | None = None) -> Identity:
    """The identity of a Segment message.

    Args:
        message: the message (after ``--transform``, when there is one).
        folder: the source id of the ``segment-logs/<source-id>/`` folder it was
            read from, or None.
    """
    source = message.get("projectId")
    if not isinstance(source, str) or not source:
        source = folder or ""
    message_id = message.get("messageId")
    if isinstance(message_id, str) and message_id:
        key = f"m:{message_id}"
    else:
        digest = hashlib.blake2b(_canonical(message), digest_size=16)
        key = f"h:{digest.hexdigest()}"
    time = message_time(message)
    return Identity(source=source, id=key, time=NO_TIME if time is None else time)
