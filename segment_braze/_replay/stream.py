"""Finding the JSON values in a stream of lines: JSON Lines, pretty-printed values, both.

An input is a sequence of JSON values separated by whitespace. Most inputs hold
one value per line (JSON Lines, as Segment's archives do), and each line is
parsed on its own: that is the fast path. A line that is not a value on its own
but opens one (a ``{`` or ``[`` left unclosed, outside strings) starts a value
that spans lines: jq's pretty-printed output, a pretty-printed array or
envelope, a webhook log. The lines that follow are gathered until the
brackets close, then decoded element by element
(:func:`segment_braze._replay.records.decode`). Memory holds one value at a
time, and at most ``max_value`` bytes of it; a longer line is skipped unread, so
a file with no line breaks (say, binary data) is never read whole.

A value that does not parse costs only itself, and reading resumes at the next
value where one can be found:

- A line alone that is not JSON and opens nothing is one bad line (JSON Lines).
- A value spanning lines ends, broken, where the next line cannot continue it:
  a line holding a string left open (JSON strings never span lines), a closing
  bracket that does not match, or a line opening ``{`` or ``[`` where JSON
  allows no value (only after ``[``, after ``:``, and after ``,`` in an array).
  So a line that starts the next message of JSON Lines ends a broken one.
- After a broken value, its remaining lines are skipped up to the next line
  that opens ``{`` or ``[`` no deeper indented than the broken value began
  (how pretty printers and JSON Lines start a value), and counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, Protocol

import attrs

from segment_braze._replay.records import Bad, Record, bad_line, decode, expand, parse

__all__ = ["MAX_VALUE", "LineTooLong", "Lines", "Readable", "records"]

_BOM: Final = b"\xef\xbb\xbf"
MAX_VALUE: Final = 256 * 1024 * 1024
"""The largest value (and line) read, in bytes: a larger one is reported and skipped."""
# A JSON string: UTF-8 continuation bytes are never '"' or '\\', so bytes do.
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS: Final = re.compile(rb"[][{}]")
_OPENERS: Final = frozenset(b"{[")
_CLOSING: Final = {ord("}"): ord("{"), ord("]"): ord("[")}
_SEVERAL_VALUES: Final = "not JSON: Extra data"


class Readable(Protocol):
    """A binary stream read line by line."""

    def readline(self, size: int = -1, /) -> bytes:
        """The next line, with its end, of at most ``size`` bytes; ``b""`` at the end."""
        ...  # pragma: no cover


class LineTooLong(Exception):  # noqa: N818 (a condition of the input, not an error of ours)
    """A line longer than the limit: it was skipped, unread."""


class Lines:
    """Numbered lines of a byte stream, each at most ``limit`` bytes.

    Args:
        stream: the stream.
        limit: the longest line read, in bytes; a longer one is skipped unread
            (next() raises :class:`LineTooLong`), so memory holds at most this much.
    """

    def __init__(self, stream: Readable, *, limit: int = MAX_VALUE) -> None:
        self.stream = stream
        self.limit = limit
        self.count = 0

    def next(self) -> bytes | None:
        """The next line (a leading byte-order mark removed), or ``None`` at the end.

        Raises:
            LineTooLong: the line is longer than ``limit``; it was skipped.
        """
        line = self.stream.readline(self.limit + 1)
        if not line:
            return None
        self.count += 1
        if len(line) > self.limit and not line.endswith(b"\n"):
            while (rest := self.stream.readline(self.limit)) and not rest.endswith(b"\n"):
                pass
            raise LineTooLong
        if self.count == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        return line


def records(lines: Lines, source: str, *, max_value: int = MAX_VALUE) -> Iterator[Record]:
    """The records of one input, value by value, each with the line it starts on.

    Args:
        lines: the input's lines.
        source: the input's name, for the records.
        max_value: the largest value read, in bytes.
    """
    scanner = _Scanner(source, max_value)
    while True:
        try:
            line = lines.next()
        except LineTooLong:
            yield from scanner.too_long(lines.count, lines.limit)
            continue
        if line is None:
            break
        if scanner.value is not None:
            yield from scanner.line(line, lines.count)
        elif line.strip():
            # The fast path: a value on one line (JSON Lines).
            data = line.rstrip(b"\r\n")
            parsed = parse(data)
            if isinstance(parsed, Bad):
                yield from scanner.start(line, lines.count, parsed)
            else:
                yield from expand(parsed, source, lines.count, data)
    yield from scanner.end()


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip(b" \t"))


def _brackets(line: bytes) -> bytes | None:
    """The brackets of a non-blank line outside strings, in order.

    Returns:
        ``None`` when the line leaves a string open, which no JSON value does.
    """
    bare = _STRING.sub(b"", line)
    if b'"' in bare:
        return None
    return b"".join(_BRACKETS.findall(bare))


def _close(stack: list[int], brackets: bytes) -> bool:
    """Apply a line's brackets to the open ones; False when one closes what is not open."""
    for bracket in brackets:
        if bracket in _OPENERS:
            stack.append(bracket)
        elif not stack or stack.pop() != _CLOSING[bracket]:
            return False
    return True


@attrs.define(kw_only=True)
class _Value:
    """A value spanning lines, being gathered."""

    start: int
    indent: int
    lines: list[bytes]
    size: int
    open: list[int]  # the brackets not closed yet, innermost last
    last: int  # the last byte of the last line that is not blank
    broken: bool = False  # its lines are skipped up to the next value
    too_large: bool = False
    skipped: int = 0
    long_line: int = 0  # the limit a line of it went over, or 0


class _Scanner:
    def __init__(self, source: str, max_value: int) -> None:
        self.source = source
        self.max_value = max_value
        self.value: _Value | None = None

    def line(self, line: bytes, number: int) -> Iterator[Record]:
        value = self.value
        if value is not None:
            if self._gather(value, line):
                if not value.broken and not value.open:
                    self.value = None
                    yield from self._finish(value)
                return
            # The line cannot belong to the value: the value ends here, broken.
            self.value = None
            yield from self._finish(value)
        if line.strip():
            parsed = parse(line.rstrip(b"\r\n"))
            if isinstance(parsed, Bad):
                yield from self.start(line, number, parsed)
            else:
                yield from expand(parsed, self.source, number)

    def too_long(self, number: int, limit: int) -> Iterator[Record]:
        """A line over ``limit`` bytes, skipped unread: it breaks the value it is in."""
        value = self.value
        if value is None:
            error = f"not read: a line longer than {_size(limit)}"
            yield Record(source=self.source, line=number, error=error)
        else:
            value.broken = True
            value.long_line = limit

    def end(self) -> Iterator[Record]:
        if self.value is not None:
            value, self.value = self.value, None
            yield from self._finish(value)

    def start(self, line: bytes, number: int, parsed: Bad) -> Iterator[Record]:
        """A line that is not a value on its own: a bad line, or the start of a value."""
        brackets = _brackets(line)
        stack: list[int] = []
        if brackets is not None and _close(stack, brackets) and stack:
            self.value = _Value(
                start=number,
                indent=_indent(line),
                lines=[line],
                size=len(line),
                open=stack,
                last=line.rstrip()[-1],
            )
        elif brackets is not None and parsed.reason.startswith(_SEVERAL_VALUES):
            # Several values on one line, separated by whitespace.
            yield from decode(line.decode("utf-8", errors="replace"), self.source, number)
        else:
            yield bad_line(line, parsed, self.source, number)

    def _gather(self, value: _Value, line: bytes) -> bool:
        """Add ``line`` to ``value``; False when it cannot belong to it."""
        stripped = line.strip()
        if value.broken:
            if stripped[:1] and stripped[0] in _OPENERS and _indent(line) <= value.indent:
                return False
            value.skipped += 1 if stripped else 0
            return True
        if not stripped:
            value.lines.append(line)
            return True
        if stripped[0] in _OPENERS and not self._takes_a_value(value):
            return False
        brackets = _brackets(line)
        value.lines.append(line)
        value.size += len(line)
        if brackets is None or not _close(value.open, brackets):
            value.broken = True  # nothing after an open string or a wrong bracket is sure
        elif value.size > self.max_value:
            value.broken = value.too_large = True
            value.skipped = len(value.lines)
            value.lines.clear()
        else:
            value.last = line.rstrip()[-1]
        return True

    @staticmethod
    def _takes_a_value(value: _Value) -> bool:
        """Whether JSON allows a value where ``value`` stands (after ``[``, ``:``, array ``,``)."""
        last = value.last
        return last in b"[:" or (last == ord(",") and value.open[-1] == ord("["))

    def _finish(self, value: _Value) -> Iterator[Record]:
        if value.too_large:
            yield Record(
                source=self.source,
                line=value.start,
                error=f"not read: a value larger than {_size(self.max_value)}"
                f" ({_lines(value.skipped)} skipped up to the next value)",
            )
            return
        note = f" ({_lines(value.skipped, 'more ')} skipped up to the next value)"
        note = note if value.skipped else ""
        if value.long_line:
            note = f" (a line longer than {_size(value.long_line)} was skipped){note}"
        data = b"".join(value.lines).rstrip()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            yield Record(
                source=self.source,
                line=value.start,
                error=f"not JSON: {err}{note}",
                text=data.decode("utf-8", errors="replace"),
            )
            return
        yield from decode(text, self.source, value.start, note=note)


def _lines(count: int, more: str = "") -> str:
    return f"{count:,} {more}line" if count == 1 else f"{count:,} {more}lines"


def _size(limit: int) -> str:
    megabytes = limit / (1024 * 1024)
    return f"{megabytes:g} MB" if megabytes >= 1 else f"{limit:,} bytes"
