"""Dates and times: parse what Segment sends, write what Braze expects.

Braze takes ISO 8601 times; we always write UTC with milliseconds and a ``Z``
(``2015-01-01T00:00:00.000Z``) so that equal instants are equal strings. Naive
input times are taken as UTC: we never guess a zone from the local clock.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from dateutil import parser as _dateutil_parser

__all__ = [
    "braze_date",
    "braze_time",
    "format_date",
    "format_time",
    "parse_date",
    "parse_time",
    "read_birthday",
]

_UTC = dt.UTC
# dateutil fills missing fields from ``default``; a year-1 default lets us tell
# "no year given" apart from a real date without ever reading today's clock.
_NO_YEAR = dt.datetime(1, 1, 1)
_from_iso = dt.datetime.fromisoformat
_date_from_iso = dt.date.fromisoformat


def _zone(name: str | None, offset: int | None) -> dt.tzinfo | None:
    """Resolve a zone dateutil found: offsets and UTC only.

    Without this, dateutil resolves a name that matches the machine's zone to
    the local zone (reading the machine's settings) and warns about other names;
    a birthday's zone name is ignored instead.
    """
    if offset is not None:
        return dt.timezone(dt.timedelta(seconds=offset))
    if name in {"UTC", "GMT", "Z"}:
        return _UTC
    return None


def parse_time(value: object) -> dt.datetime | None:
    """Parse a Segment timestamp into an aware UTC datetime.

    Args:
        value: an ISO 8601 string as Segment sends it (``Z``, offset or naive),
            or a Python ``datetime`` (naive taken as UTC) or ``date`` (its
            midnight UTC), as analytics-python would have sent it.

    Returns:
        The instant in UTC, or ``None`` when the value is not a usable time.
    """
    if not isinstance(value, str):
        return _python_time(value) if isinstance(value, dt.date) else None
    try:
        # The C implementation handles every form Segment's libraries write.
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = _dateutil_parser.isoparse(value)
        except (ValueError, OverflowError):
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    try:
        return parsed.astimezone(_UTC)
    except OverflowError:
        return None


def _python_time(value: dt.date) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    try:
        if value.utcoffset() is None:
            return value.replace(tzinfo=_UTC)
        return value.astimezone(_UTC)
    except (ArithmeticError, ValueError, TypeError):
        # Out of range in UTC, or an offset Python refuses (a caller's own tzinfo).
        return None


def format_time(moment: dt.datetime) -> str:
    """Write an aware UTC datetime as Braze's ISO 8601 form with milliseconds."""
    # Braze: times are ISO 8601; UTC with "Z" and milliseconds is our one form.
    # isoformat is C code; the instant is already in UTC (parse_time's contract).
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def braze_time(value: object) -> str | None:
    """Read a Segment timestamp and write it in Braze's form, or return ``None``.

    A value already in that exact form (``2015-01-01T00:00:00.000Z``, what
    Segment's libraries send) is validated and passed through unchanged.
    """
    if (
        type(value) is str
        and len(value) == 24
        and value[23] == "Z"
        and value[19] == "."
        and value[10] == "T"
        and value.isascii()
    ):
        try:
            _from_iso(value)
        except ValueError:
            return None
        return value
    moment = parse_time(value)
    return None if moment is None else format_time(moment)


def parse_date(value: object) -> dt.date | None:
    """Parse a birthday-like value into a calendar date (the UTC date).

    Accepts ISO 8601 dates and times and the common spellings dateutil reads
    (``May 17, 1990``, ``17/05/1990`` is read day-first only when unambiguous by
    dateutil's rules). A value without a year, or that is not a string, is
    refused.

    Returns:
        The date, or ``None`` when the value is not a usable date.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        pass
    moment = parse_time(value)
    if moment is None:
        try:
            moment = _dateutil_parser.parse(value, default=_NO_YEAR, tzinfos=_zone)
        except (ValueError, OverflowError):
            return None
        if moment.year == _NO_YEAR.year:
            return None
        if moment.tzinfo is not None:
            moment = moment.astimezone(_UTC)
    return moment.date()


def format_date(day: dt.date) -> str:
    """Write a date as Braze's ``YYYY-MM-DD``."""
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def braze_date(value: object) -> str | None:
    """Read a birthday-like value and write it as Braze's ``YYYY-MM-DD``, or ``None``.

    A value already in that exact form is validated and passed through unchanged:
    it is what :func:`format_date` would write for it.
    """
    if (
        type(value) is str
        and len(value) == 10
        and value[4] == "-"
        and value[7] == "-"
        and value.isascii()
    ):
        try:
            _date_from_iso(value)
        except ValueError:
            pass
        else:
            return value
    day = parse_date(value)
    return None if day is None else format_date(day)


# A plausible birth year for a guessed reading (the clock is never read, so the
# bounds are fixed): years outside mean the text only happened to parse.
_BIRTH_YEARS: Final = range(1870, 2101)
_NUMERIC_DATE: Final = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{2}|\d{4})\Z")
_DIGITS: Final = re.compile(r"\d+\Z")


def _numeric_birthday(first: int, second: int, year: str, separator: str) -> tuple[str | None, str]:
    """Read ``first/second/year``: day-first or month-first, and say which."""
    if len(year) == 2:
        return None, "has a two-digit year; send YYYY-MM-DD"
    if first > 12 >= second:
        order, day, month = "day-first", first, second
    elif second > 12 >= first:
        order, day, month = "month-first", second, first
    elif first == second:
        order, day, month = "", first, second
    elif separator == ".":
        # 05.06.1990 is the day-first spelling (German, Russian, ...).
        order, day, month = "day-first (ambiguous)", first, second
    elif first <= 12 and second <= 12:
        # 05/06/1990: the US reading, dateutil's too; said so, never silent.
        order, day, month = "month-first (ambiguous)", second, first
    else:
        return None, "is not a date"
    try:
        date = dt.date(int(year), month, day)
    except ValueError:
        return None, "is not a date"
    if date.year not in _BIRTH_YEARS:
        return None, "is not a plausible birthday"
    how = f"read {order} as {format_date(date)}" if order else f"read as {format_date(date)}"
    return format_date(date), how


def read_birthday(value: object) -> tuple[str | None, str | None]:
    """Read a birthday and say how, when it took a guess.

    Returns:
        ``(date, None)`` for an ISO 8601 date or time (no guess); ``(date, how)``
        when the value was read some other way, ``how`` saying how (for a
        warning); ``(None, why)`` when it is not plausibly a date.
    """
    if not isinstance(value, str) or not value.strip():
        return None, "is not a date"
    exact = braze_date(value) if "-" in value[:5] else None
    if exact is not None and _DIGITS.match(value[:4]):
        return exact, None  # ISO 8601: YYYY-MM-DD or a full time
    text = value.strip()
    if _DIGITS.match(text):
        if len(text) == 4:
            return None, "is a bare year, not a birthday"
        if len(text) == 8:
            try:
                date = dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            except ValueError:
                return None, "is a string of digits, not a date"
            if date.year in _BIRTH_YEARS:
                return format_date(date), f"read as YYYYMMDD: {format_date(date)}"
        return None, "is a string of digits, not a date"
    numeric = _NUMERIC_DATE.match(text)
    if numeric:
        return _numeric_birthday(int(numeric[1]), int(numeric[3]), numeric[4], numeric[2])
    spelled = parse_date(text)
    if spelled is None:
        return None, "is not a date"
    if spelled.year not in _BIRTH_YEARS:
        return None, "is not a plausible birthday"
    return format_date(spelled), f"read as {format_date(spelled)}"
