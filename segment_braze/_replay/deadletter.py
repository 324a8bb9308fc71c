"""The ``--dead-letter`` file: one JSON line for every message not delivered.

The file is appended to, so a resumed replay adds to it. Two promises hold
whatever happens to the disk:

- **No half-written line.** A line is written in one go; when the disk is full
  (or any write fails), what was written of it is cut off again, and the run
  stops with one line (:class:`~segment_braze._replay.usage.FileError`). A
  killed process loses no line that was written: each is on the file before
  the next is.
- **An invalid input is written once.** With a replay state, a line of input
  that could not be read is reported again by every run of that state;
  its dead-letter line is not appended again when the file already holds the
  very same line (the same input, line, reason and text).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from typing import IO, Any, Final

from segment_braze import _json
from segment_braze._replay.records import Record
from segment_braze._replay.usage import FileError, UsageError

__all__ = ["DeadLetter"]

_INVALID: Final = b'"outcome":"invalid"'


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line, digest_size=16).digest()


class DeadLetter:
    """The ``--dead-letter`` file, opened for appending.

    Args:
        path: the file.
        once: write an invalid input's line only when the file does not hold it
            yet (a replay with a state: every run reads the same archive).

    Raises:
        UsageError: the file cannot be opened for writing.
    """

    def __init__(self, path: str, *, once: bool = False) -> None:
        self.path = path
        try:
            # Unbuffered: a line reaches the file whole, or is cut off (write()).
            self._file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise UsageError(
                f"cannot write the dead-letter file {path}: {err.strerror or err}"
            ) from err
        self._lock = threading.Lock()
        self._known: set[bytes] | None = None
        if once:
            try:
                self._known = _invalid_lines(path)
            except OSError as err:
                self._file.close()
                raise UsageError(
                    f"cannot read the dead-letter file {path}: {err.strerror or err}"
                ) from err

    def write(
        self, record: Record, outcome: str, reason: str, *, duplicate_of: str | None = None
    ) -> None:
        """Write one message (or unreadable input) and why it was not delivered.

        Args:
            record: the message, or the input that could not be read.
            outcome: ``failed``, ``dropped``, ``invalid`` or ``duplicate``.
            reason: why.
            duplicate_of: for a duplicate, where the message it duplicates was read.

        Raises:
            FileError: the line could not be written (a full disk); none of it is
                left in the file.
        """
        entry: dict[str, Any] = {
            "source": record.where,
            "messageId": record.message_id,
            "outcome": outcome,
            "reason": reason,
            "message": record.value,
        }
        if record.text is not None:
            entry["line"] = record.text
        if duplicate_of is not None:
            entry["duplicate_of"] = duplicate_of
        data = _json.dumps(entry)
        with self._lock:
            if self._known is not None and outcome == "invalid":
                digest = _digest(data)
                if digest in self._known:
                    return
                self._known.add(digest)
            self._append(data + b"\n")

    def _append(self, data: bytes) -> None:
        """Append ``data`` whole, or leave the file as it was (called under the lock)."""
        fd = self._file.fileno()
        end = os.fstat(fd).st_size  # only this process appends while it runs
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as err:
            with contextlib.suppress(OSError):  # the file went away under us
                os.ftruncate(fd, end)  # frees space: works on a full disk
            raise FileError(
                f"cannot write the dead-letter file {self.path}: {err.strerror or err};"
                " the messages not written there are not recorded as done either:"
                " free some space and run the same command again"
            ) from err

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


def _invalid_lines(path: str) -> set[bytes]:
    """The digests of the invalid-input lines the file holds (read line by line)."""
    known: set[bytes] = set()
    with open(path, "rb") as file:
        for line in file:
            if _INVALID in line and line.endswith(b"\n"):
                known.add(_digest(line[:-1]))
    return known
