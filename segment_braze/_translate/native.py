"""Python values that are not JSON, read as Segment's Python library sends them.

A service that builds its messages in Python, rather than parsing what Segment
delivered, may hand ``translate()`` a ``datetime``, a ``Decimal``, a ``UUID`` or
an ``Enum`` member. Segment's analytics-python turns those into JSON before
sending (ISO 8601 text, a float, the member's value), so they are read here as
the JSON value they stand for: a message gives the same Braze data whether it
was built in Python or parsed. Only a value that is not a JSON type reaches
this module; the hot paths, which see parsed JSON, never call it.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from enum import Enum
from typing import Final
from uuid import UUID

from segment_braze._translate.dates import format_date, format_time, parse_time

__all__ = ["json_form"]

_JSON_KINDS: Final = frozenset({str, int, float, bool, type(None), dict, list})
# An Enum member's value may itself be a member; a chain longer than this is
# left as it is (and dropped as not JSON by the caller).
_ENUM_DEPTH: Final = 8
# NumPy's times: item() of one at nanosecond precision is an integer, not a time.
_NUMPY_TIMES: Final = frozenset({"datetime64", "timedelta64"})


def json_form(value: object) -> object:
    """Return the JSON value ``value`` stands for, or ``value`` itself.

    - ``datetime``: Braze's UTC time, ``2026-01-02T03:04:05.000Z`` (a naive one
      is taken as UTC: translation never reads the local clock or zone);
    - ``date``: ``YYYY-MM-DD``;
    - ``Decimal``: a float, as analytics-python sends it;
    - ``UUID``: its text, ``1b4e28ba-2fa1-11d2-883f-0016d3cca427``;
    - an ``Enum`` member: its value, read again;
    - ``set``, ``frozenset``: a list, sorted when its items are all strings or
      all numbers (so the same set gives the same array in every process);
    - a NumPy scalar (``numpy.int64``, ``numpy.bool_``, ...): the Python number or
      boolean it holds (``datetime64`` and ``timedelta64`` are not read).

    Anything else (JSON itself, or a value with no JSON form) is returned
    unchanged, for the caller to keep or drop with its usual warning.
    """
    for _ in range(_ENUM_DEPTH):
        if type(value) in _JSON_KINDS:
            return value
        if not isinstance(value, Enum):
            break
        value = value.value
    if isinstance(value, dt.date):  # datetime included (a subclass of date)
        if not isinstance(value, dt.datetime):
            return format_date(value)
        moment = parse_time(value)
        return value if moment is None else format_time(moment)
    if isinstance(value, Decimal):
        return math.nan if value.is_nan() else float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return _listed(value)
    # NumPy's scalars (what pandas' to_dict() gives for numbers), read by duck
    # typing: numpy is not a dependency. item() is numpy's own conversion.
    kind = type(value)
    if (
        kind.__module__ == "numpy"
        and kind.__name__ not in _NUMPY_TIMES
        and getattr(value, "ndim", None) == 0
    ):
        item = getattr(value, "item", None)
        if callable(item):
            return json_form(item())
    return value


def _listed(items: set[object] | frozenset[object]) -> list[object]:
    """A set as a list: sorted where that needs no user code, else as iterated."""
    kinds = {type(item) for item in items}
    if kinds <= {str} or kinds <= {int, float}:
        return sorted(items)  # type: ignore[type-var]
    return list(items)
