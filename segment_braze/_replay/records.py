"""Segment archive formats: from lines of bytes to :class:`Record` values.

The format is detected from the content: JSON Lines (each line one message, one
array of messages, or one Segment batch envelope ``{"batch": [...]}``), or a
whole-file JSON document (an array, an envelope, or one message) spread over
several lines. JSON Lines are streamed; a whole-file document is read into
memory. Every record carries its file and line number, and a line that is not
JSON or not a Segment message is a record with ``error`` set.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, Final, Protocol

import attrs

from segment_braze import _json

__all__ = ["Lines", "Readable", "Record", "records"]

_BOM: Final = b"\xef\xbb\xbf"
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
    """

    source: str
    line: int
    item: int | None = None
    value: Any = None
    error: str | None = None
    text: str | None = None

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


class Readable(Protocol):
    """A binary stream read line by line."""

    def readline(self) -> bytes:
        """The next line, with its end; ``b""`` at the end of the stream."""
        ...  # pragma: no cover

    def read(self) -> bytes:
        """Everything left."""
        ...  # pragma: no cover


class Lines:
    """Numbered lines of a byte stream."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.count = 0

    def next(self) -> bytes | None:
        """The next line (a leading byte-order mark removed), or ``None`` at the end."""
        line = self.stream.readline()
        if not line:
            return None
        self.count += 1
        if self.count == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        return line

    def rest(self) -> bytes:
        """Everything not read yet."""
        return self.stream.read()


def records(lines: Lines, source: str) -> Iterator[Record]:
    """The records of one input, whatever its format (detected from its first content)."""
    held: list[bytes] = []  # the lines read before the format is known
    first = _next_content(lines, held)
    if first is None:
        return
    first_number = lines.count
    parsed = _parse(first.rstrip(b"\r\n"))
    if not isinstance(parsed, _Bad):
        yield from _expand(parsed, source, first_number)
        yield from _json_lines(lines, source)
        return
    second = _next_content(lines, held)
    if first.strip() in (b"[", b"{") or (
        second is not None and isinstance(_parse(second.rstrip(b"\r\n")), _Bad)
    ):
        # A lone bracket, or two lines that are not JSON on their own: a document
        # spread over lines (pretty-printed). JSON Lines that merely start with
        # bad lines are read as lines after all (see _document).
        yield from _document(b"".join(held) + lines.rest(), source)
        return
    yield _bad_line(first, parsed, source, first_number)
    if second is not None:
        yield from _expand(_parse(second.rstrip(b"\r\n")), source, lines.count)
    yield from _json_lines(lines, source)


def _next_content(lines: Lines, held: list[bytes]) -> bytes | None:
    while (line := lines.next()) is not None:
        held.append(line)
        if line.strip():
            return line
    return None


def _json_lines(lines: Lines, source: str) -> Iterator[Record]:
    while (line := lines.next()) is not None:
        if not line.strip():
            continue
        parsed = _parse(line.rstrip(b"\r\n"))
        if isinstance(parsed, _Bad):
            yield _bad_line(line, parsed, source, lines.count)
        else:
            yield from _expand(parsed, source, lines.count)


class _Bad:
    """A line that is not JSON, and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes) -> Any:
    try:
        return _json.loads(data)
    except ValueError:
        pass
    # orjson's messages differ by version; the standard library's say where.
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        return _Bad(_decode_error(err.msg, err.colno))
    except ValueError as err:  # UnicodeDecodeError, NaN
        return _Bad(f"not JSON: {err}")


def _decode_error(message: str, column: int) -> str:
    # The standard library's messages end in " at" where the position follows.
    return f"not JSON: {message.removesuffix(' at')} at column {column}"


def _bad_line(line: bytes, bad: _Bad, source: str, number: int) -> Record:
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    return Record(source=source, line=number, error=bad.reason, text=text)


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number")


def _message(value: Any, source: str, line: int, item: int | None) -> Record:
    if not isinstance(value, dict):
        error = f"not a Segment message: {_kind(value)}, not an object"
        return Record(source=source, line=line, item=item, value=value, error=error)
    if "type" not in value:
        error = 'not a Segment message: no "type"'
        return Record(source=source, line=line, item=item, value=value, error=error)
    return Record(source=source, line=line, item=item, value=value)


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


def _expand(value: Any, source: str, line: int) -> Iterator[Record]:
    """The records of one JSON value on one line: a message, an array, an envelope."""
    if _is_envelope(value):
        for index, item in enumerate(value["batch"]):
            yield _message(_with_defaults(item, value), source, line, index)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield _message(item, source, line, index)
    else:
        yield _message(value, source, line, None)


def _document(data: bytes, source: str) -> Iterator[Record]:
    """Records of a whole-file JSON document, each with the line it starts on."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        reader = _DocumentReader(text, source)
        records = reader.records()
        first = next(records, None)
        if reader.decoded:
            if first is not None:
                yield first
            yield from records
            return
    # Not one document after all: read it as JSON Lines, reporting each bad line.
    yield from _json_lines(Lines(io.BytesIO(data)), source)


class _DocumentReader:
    """Walks a JSON document element by element, so each knows its line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.decoder = json.JSONDecoder(parse_constant=_refuse_constant)
        self.counted_to = 0
        self.line = 1
        self.decoded = 0  # values decoded: none means this is not one document

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
            line = self.line_at(err.pos)
            column = err.pos - self.text.rfind("\n", 0, err.pos)
            reason = _decode_error(err.msg, column)
        else:
            line, reason = self.line_at(position), f"not JSON: {err}"
        return Record(
            source=self.source,
            line=line,
            error=f"{reason}; the rest of this file is skipped",
        )

    def records(self) -> Iterator[Record]:
        start = self.skip(0)
        if self.text.startswith("[", start):
            yield from self.array(start, envelope=None)
            return
        try:
            value, end = self.decoder.raw_decode(self.text, start)
        except ValueError as err:
            yield self.fail(err, start)
            return
        self.decoded += 1
        if self.skip(end) != len(self.text):
            yield self.fail(json.JSONDecodeError("Extra data", self.text, self.skip(end)), end)
            return
        if _is_envelope(value):
            yield from self.array(self.batch_start(start), envelope=value)
        else:
            yield _message(value, self.source, self.line_at(start), None)

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

    def array(self, position: int, *, envelope: dict[str, Any] | None) -> Iterator[Record]:
        position = self.skip(position + 1)  # past "["
        while position < len(self.text) and self.text[position] != "]":
            try:
                value, end = self.decoder.raw_decode(self.text, position)
            except ValueError as err:
                yield self.fail(err, position)
                return
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
                return
        if position >= len(self.text):
            error = json.JSONDecodeError("Unterminated array", self.text, position)
            yield self.fail(error, position)
        elif envelope is None and self.skip(position + 1) != len(self.text):
            extra = self.skip(position + 1)
            yield self.fail(json.JSONDecodeError("Extra data", self.text, extra), extra)
