"""Reading Segment messages from files, folders and stdin.

Folders are read recursively: in time order for the files in Segment's S3
layout (``segment-logs/<source>/<received-day>/<file>``, every source under one
``segment-logs`` folder merged by day and file time, see
:mod:`segment_braze._replay.layout`), in name order for other files. Gzip is
detected by its magic bytes, never by the name; what is inside is read value by
value by :mod:`segment_braze._replay.stream` (JSON Lines, and values spread over
lines: arrays, batch envelopes, pretty-printed messages).
A file that cannot be opened, or whose gzip stream is corrupt, becomes an error
record: reading never stops at a bad input.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import os
import sys
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Final

from segment_braze._replay.layout import order_key
from segment_braze._replay.records import Record
from segment_braze._replay.stream import Lines, Readable, records
from segment_braze._replay.usage import UsageError

__all__ = ["STDIN", "Meter", "Record", "expand_paths", "read_source", "total_bytes"]

STDIN: Final = "-"
_GZIP_MAGIC: Final = b"\x1f\x8b"
# Byte-order marks of text that is not UTF-8 (UTF-32's first: UTF-16's is its prefix).
# Windows PowerShell 5 writes UTF-16 with `>` and Out-File.
_WIDE_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_RECODE_READ: Final = 8192  # bytes of a UTF-16 or UTF-32 input read at a time
# What a folder may hold besides archives (README, manifests) is skipped; files
# named on the command line are read whatever their name.
ARCHIVE_SUFFIXES: Final = (".json", ".jsonl", ".ndjson", ".gz")
_STDIN_NAME: Final = "<stdin>"
_CORRUPT: Final = (EOFError, OSError, zlib.error)


class Meter:
    """How far the reading has got, in bytes of the inputs as stored (gzip: compressed)."""

    def __init__(self) -> None:
        self._finished = 0
        self._current: IO[bytes] | None = None

    def start(self, raw: IO[bytes]) -> None:
        """Follow ``raw``, the file now being read."""
        self._current = raw if raw.seekable() else None

    def finish(self, size: int) -> None:
        """Count a whole file of ``size`` bytes as read."""
        self._finished += size
        self._current = None

    @property
    def position(self) -> int:
        """Bytes read so far, over all inputs."""
        current = self._current
        if current is None:
            return self._finished
        try:
            # Read from the progress thread: the file may close meanwhile.
            return self._finished + current.tell()
        except (ValueError, OSError):
            return self._finished


def expand_paths(paths: Sequence[str], *, exclude: Collection[Path] = ()) -> tuple[list[str], int]:
    """List the files to read: files as given, folders recursively.

    A folder's files in Segment's S3 layout come in time order across sources;
    its other files in name order.

    Args:
        paths: files, folders, or ``-`` for stdin.
        exclude: resolved paths never to read (the state and dead-letter files).

    Returns:
        The files in reading order, and how many files in folders were skipped
        (hidden, or not ``.json``/``.jsonl``/``.ndjson``/``.gz``).

    Raises:
        UsageError: a path does not exist.
    """
    files: list[str] = []
    skipped = 0
    for name in paths:
        if name == STDIN:
            files.append(name)
            continue
        path = Path(name)
        if path.is_dir():
            found, rejected = _folder(path, exclude)
            files.extend(found)
            skipped += rejected
        elif path.exists() or path.is_symlink():
            files.append(name)  # a link to nothing, or a loop, is reported when read
        else:
            raise UsageError(f"no such file or folder: {name}")
    return files, skipped


def _folder(root: Path, exclude: Collection[Path]) -> tuple[list[str], int]:
    found: list[tuple[tuple[str, ...], str]] = []
    skipped = 0
    # A folder that cannot be listed is kept as an input: reading it reports
    # why (read_source), so it counts as invalid input rather than vanishing.
    unlisted: list[OSError] = []
    for folder, subfolders, names in os.walk(root, onerror=unlisted.append):
        subfolders[:] = [sub for sub in subfolders if not sub.startswith(".")]
        for name in names:
            path = Path(folder, name)
            if name.startswith(".") or not name.lower().endswith(ARCHIVE_SUFFIXES):
                skipped += 1
                continue
            if not path.is_file() and (path.is_dir() or not path.is_symlink()):
                skipped += 1  # a folder named like an archive, a device
                continue
            # A link to nothing, or a loop, is kept: reading it reports it.
            if Path(os.path.realpath(path)) in exclude:  # never raises on a loop
                continue
            found.append((order_key(str(path), path.relative_to(root).parts), str(path)))
    for error in unlisted:
        path = Path(str(error.filename))
        relative = path.relative_to(root).parts if path != root else ()
        found.append((order_key(str(path), relative), str(path)))
    found.sort()
    return [path for _, path in found], skipped


def total_bytes(files: Iterable[str]) -> int | None:
    """The size of the inputs as stored, or ``None`` when stdin is among them."""
    total = 0
    for name in files:
        if name == STDIN:
            return None
        try:
            total += os.path.getsize(name)
        except OSError:
            continue  # reported when it is read
    return total


def read_source(name: str, meter: Meter | None = None) -> Iterator[Record]:
    """Read every record of one input (a file, or ``-`` for stdin).

    A file that cannot be opened or whose gzip stream is corrupt yields an error
    record; the records before the corruption are still yielded.
    """
    source = _STDIN_NAME if name == STDIN else name
    if name == STDIN:
        yield from _read_stream(sys.stdin.buffer, source, meter)
        return
    try:
        raw = open(name, "rb")  # noqa: SIM115 (closed below, also when the caller stops early)
    except OSError as err:
        yield Record(source=source, line=0, error=_unreadable(name, err))
        return
    size = os.fstat(raw.fileno()).st_size
    try:
        yield from _read_stream(raw, source, meter)
    finally:
        raw.close()
        if meter is not None:
            meter.finish(size)


def _read_stream(raw: IO[bytes], source: str, meter: Meter | None) -> Iterator[Record]:
    if not isinstance(raw, io.BufferedReader):
        # Only an unusual stdin (no peek) gets here: read it whole.
        raw = io.BufferedReader(io.BytesIO(raw.read()))
    if meter is not None:
        meter.start(raw)
    stream: Readable = raw
    lines = Lines(stream)
    try:
        content: io.BufferedIOBase = raw
        head = raw.peek(4)[:4]  # a file that fails to read fails here
        if head[:2] == _GZIP_MAGIC:
            unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
            content, head = unzipped, unzipped.peek(4)[:4]
        lines.stream = _as_utf8(content, head)
        yield from records(lines, source)
    except _CORRUPT as err:
        reason = "file is corrupt or truncated" if lines.count else "cannot read"
        yield Record(
            source=source,
            line=lines.count + 1,
            error=f"{reason}: {err}; the rest of this file is skipped",
        )


def _as_utf8(stream: io.BufferedIOBase, head: bytes) -> Readable:
    """``stream``, read as UTF-8 when ``head`` (its start) is a UTF-16 or UTF-32 byte-order mark."""
    for bom, encoding in _WIDE_BOMS:
        if head.startswith(bom):
            return _Recoded(stream, encoding)
    return stream


class _Recoded:
    """A UTF-16 or UTF-32 stream read as UTF-8 lines, a few kilobytes at a time.

    What cannot be decoded becomes U+FFFD, so a damaged line is one invalid value.
    ``readline(size)`` returns at most ``size`` characters, as ``Lines`` needs to
    skip a line that is too long without holding it.
    """

    def __init__(self, stream: io.BufferedIOBase, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = ""  # decoded text not returned yet

    def readline(self, size: int = -1, /) -> bytes:
        """The next line (with its newline), or at most ``size`` characters of it, as UTF-8."""
        parts, length = [self._pending], len(self._pending)
        newline = self._pending.find("\n")
        while newline < 0 and (size < 0 or length < size):
            data = self._stream.read(_RECODE_READ)
            text = self._decoder.decode(data, final=not data)
            if (found := text.find("\n")) >= 0:
                newline = length + found
            parts.append(text)
            length += len(text)
            if not data:
                break
        pending = "".join(parts)
        end = newline + 1 if newline >= 0 else len(pending)
        if size >= 0:
            end = min(end, size)
        line, self._pending = pending[:end], pending[end:]
        return line.encode("utf-8", errors="replace")


def _unreadable(name: str, err: OSError) -> str:
    """Why an input cannot be opened, in words: a loop, a link to nothing, a folder."""
    if err.errno == errno.ELOOP:
        return "cannot read: a symbolic link loop"
    if err.errno == errno.ENOENT and os.path.islink(name):
        return "cannot read: a symbolic link to nothing"
    if err.errno == errno.EISDIR:
        try:
            os.listdir(name)
        except OSError as listing:
            return f"cannot read the folder: {listing.strerror or listing}"
    return f"cannot read: {err.strerror or err}"
