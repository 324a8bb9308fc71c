"""From JSON values to :class:`Record` values: messages, arrays and batch envelopes.

A JSON value read from an input becomes one record per Segment message: a
message is itself, an array gives one record per element, and a Segment batch
envelope ``{"batch": [...]}`` one per message of the batch, with the envelope's
``context``, ``integrations`` and ``sentAt`` applied. A value that spans several
lines (pretty-printed) is walked element by element, so each record knows the
line it starts on. :mod:`segment_braze._replay.stream` finds the values in a
stream of lines. A value that is not JSON, or not a Segment message, is a record
with ``error`` set.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Generator, Iterator
from typing import Any, Final

import attrs

from segment_braze import _json

__all__ = ["Bad", "Record", "bad_line", "decode", "expand", "parse"]

# Segment: in a batch request, context and integrations apply to every call;
# the batch's sentAt is when the library sent them all.
_ENVELOPE_DEFAULTS: Final = ("context", "integrations", "sentAt")


@attrs.frozen(kw_only=True)
class Record:
    """One input message, or one input that is not a Segment message.

    Attributes:
        source: the file as named on the command line (``<stdin>`` for stdin).
        line: the 1-based line the message starts on.
        item: the position inside an array or batch envelope on that line, or
            ``None`` when the line (or document element) is the message itself.
        value: the parsed JSON value (a Segment message unless ``error``).
        error: why this is not a Segment message, or ``None``.
        text: the raw input, when it could not be parsed (for the dead-letter file).
        data: the line's bytes, when the line is this message alone (JSON
            Lines): worker processes parse these rather than receive ``value``
            pickled, which costs the reading process less.
    """

    source: str
    line: int
    item: int | None = None
    value: Any = None
    error: str | None = None
    text: str | None = None
    data: bytes | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def where(self) -> str:
        """``file:line``, with `` item N`` inside a one-line array or envelope."""
        place = f"{self.source}:{self.line}" if self.line else self.source
        return place if self.item is None else f"{place} item {self.item}"

    @property
    def message_id(self) -> str | None:
        """The ``messageId`` of the value, when it has a usable one."""
        if isinstance(self.value, dict):
            message_id = self.value.get("messageId")
            if isinstance(message_id, str) and message_id:
                return message_id
        return None


class Bad:
    """A line that is not JSON, and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


# A value nested deeper than the parsers go (orjson: 1,024 levels; the standard
# library: Python's recursion limit).
_TOO_DEEP: Final = "nested too deeply to read (over about 1,000 levels)"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(data: bytes) -> Any:
    """The JSON value of ``data``, or :class:`Bad` saying why it is not JSON."""
    try:
        return _json.loads(data)
    except ValueError:
        pass
    # orjson's messages differ by version; the standard library's say where.
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        return Bad(_decode_error(err.msg, err.colno))
    except ValueError as err:  # UnicodeDecodeError, NaN
        return Bad(f"not JSON: {_said(err)}")
    except RecursionError:
        return Bad(f"not JSON: {_TOO_DEEP}")


def _said(err: ValueError) -> str:
    """Why a value is not JSON, in the words of the input (not of Python's settings)."""
    if str(err).startswith("Exceeds the limit"):  # int('9' * 5000): Python's guard
        return f"a number of more than {sys.get_int_max_str_digits():,} digits"
    return str(err)


def _decode_error(message: str, column: int, line: int | None = None) -> str:
    # The standard library's messages end in " at" where the position follows.
    where = f"column {column}" if line is None else f"line {line} column {column}"
    return f"not JSON: {message.removesuffix(' at')} at {where}"


def bad_line(line: bytes, bad: Bad, source: str, number: int) -> Record:
    """The record of a line that is not JSON, keeping its text for the dead-letter file."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    return Record(source=source, line=number, error=bad.reason, text=text)


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number")


def _message(
    value: Any, source: str, line: int, item: int | None, data: bytes | None = None
) -> Record:
    if not isinstance(value, dict):
        error = f"not a Segment message: {_kind(value)}, not an object"
        return Record(source=source, line=line, item=item, value=value, error=error)
    if "type" not in value:
        error = 'not a Segment message: no "type"'
        return Record(source=source, line=line, item=item, value=value, error=error)
    return Record(source=source, line=line, item=item, value=value, data=data)


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and "type" not in value and isinstance(value.get("batch"), list)


def _with_defaults(message: Any, envelope: dict[str, Any]) -> Any:
    if not isinstance(message, dict):
        return message
    merged = dict(message)
    for key in _ENVELOPE_DEFAULTS:
        if key not in envelope:
            continue
        shared, own = envelope[key], merged.get(key)
        if isinstance(shared, dict) and isinstance(own, dict):
            merged[key] = {**shared, **own}  # the message's own values win
        elif own is None:
            merged[key] = shared
    return merged


def expand(value: Any, source: str, line: int, data: bytes | None = None) -> Iterator[Record]:
    """The records of one JSON value on one line: a message, an array, an envelope.

    Args:
        value: the value.
        source: the input's name.
        line: its line number.
        data: the bytes ``value`` was parsed from, kept in the record of a
            message that is the line's only value (see :attr:`Record.data`).
    """
    if _is_envelope(value):
        for index, item in enumerate(value["batch"]):
            yield _message(_with_defaults(item, value), source, line, index)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield _message(item, source, line, index)
    else:
        yield _message(value, source, line, None, data)


def decode(text: str, source: str, first_line: int, *, note: str = "") -> Iterator[Record]:
    """The records of the JSON values in ``text``, which starts on line ``first_line``.

    Each message gets the line it starts on: an array or envelope spread over
    lines is walked element by element. At the first syntax error one record
    says where and why, and the rest of ``text`` is skipped; when nothing of
    ``text`` could be read, that record keeps ``text`` for the dead-letter file.

    Args:
        text: one or more JSON values separated by whitespace.
        source: the input's name.
        first_line: the line ``text`` starts on.
        note: words added to the reason of a syntax error.
    """
    return _Walker(text, source, first_line, note).records()


class _Walker:
    """Walks JSON values element by element, so each message knows its line."""

    def __init__(self, text: str, source: str, first_line: int, note: str) -> None:
        self.text = text
        self.source = source
        self.note = note
        self.decoder = json.JSONDecoder(parse_constant=_refuse_constant)
        self.first_line = first_line
        self.counted_to = 0
        self.line = first_line
        self.decoded = 0  # values decoded so far

    def line_at(self, position: int) -> int:
        self.line += self.text.count("\n", self.counted_to, position)
        self.counted_to = position
        return self.line

    def skip(self, position: int) -> int:
        text = self.text
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        return position

    def fail(self, err: ValueError, position: int) -> Record:
        if isinstance(err, json.JSONDecodeError):
            position = err.pos
            column = err.pos - self.text.rfind("\n", 0, err.pos)
            line = self.line_at(position)
            message = err.msg
        else:
            line, column, message = self.line_at(position), 0, _said(err)
        if self.decoded:
            # Part of the text was read: the error names its own line.
            reason = _decode_error(message, column) + "; the rest of this value is skipped"
            return Record(source=self.source, line=line, error=reason + self.note)
        # Nothing was read: the record stands for the whole text, from its first line.
        reason = _decode_error(message, column, None if line == self.first_line else line)
        return Record(
            source=self.source, line=self.first_line, error=reason + self.note, text=self.text
        )

    def records(self) -> Iterator[Record]:
        position = self.skip(0)
        while position < len(self.text):
            if self.text.startswith("[", position):
                end = yield from self.array(position, envelope=None)
            else:
                end = yield from self.value(position)
            if end is None:
                return
            position = self.skip(end)

    def value(self, start: int) -> Generator[Record, None, int | None]:
        """One value that is not an array: a message, or an envelope walked by element."""
        try:
            value, end = self.decode(start)
        except ValueError as err:
            yield self.fail(err, start)
            return None
        if _is_envelope(value):
            walked = yield from self.array(self.batch_start(start), envelope=value)
            return None if walked is None else end
        self.decoded += 1
        yield _message(value, self.source, self.line_at(start), None)
        return end

    def decode(self, position: int) -> tuple[Any, int]:
        """The value at ``position`` and where it ends.

        Raises:
            ValueError: not JSON, or nested too deeply to decode.
        """
        try:
            return self.decoder.raw_decode(self.text, position)
        except RecursionError:
            raise json.JSONDecodeError(_TOO_DEEP, self.text, position) from None

    def batch_start(self, position: int) -> int:
        """Where the ``batch`` array of a (valid) envelope object starts."""
        position = self.skip(position + 1)  # past "{"
        while True:
            key, position = self.decoder.raw_decode(self.text, position)
            position = self.skip(self.skip(position) + 1)  # past ":"
            if key == "batch":
                return position
            _, position = self.decoder.raw_decode(self.text, position)
            position = self.skip(self.skip(position) + 1)  # past ","

    def array(
        self, position: int, *, envelope: dict[str, Any] | None
    ) -> Generator[Record, None, int | None]:
        """The elements of an array; returns where it ends, or None after an error."""
        position = self.skip(position + 1)  # past "["
        while position < len(self.text) and self.text[position] != "]":
            try:
                value, end = self.decode(position)
            except ValueError as err:
                yield self.fail(err, position)
                return None
            self.decoded += 1
            if envelope is not None:
                value = _with_defaults(value, envelope)
            yield _message(value, self.source, self.line_at(position), None)
            position = self.skip(end)
            if self.text.startswith(",", position):
                position = self.skip(position + 1)
            elif not self.text.startswith("]", position):
                error = json.JSONDecodeError("Expecting ',' delimiter", self.text, position)
                yield self.fail(error, position)
                return None
        if position >= len(self.text):
            error = json.JSONDecodeError("Unterminated array", self.text, position)
            yield self.fail(error, position)
            return None
        return position + 1
