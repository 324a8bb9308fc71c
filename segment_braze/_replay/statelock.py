"""The replay state file's lock: one replay at a time per state file.

:func:`exclusive` locks ``<path>.lock`` for this process with ``flock``, which
the OS releases when the process dies, so a killed replay never leaves the
file locked.
"""

from __future__ import annotations

import sys
import tempfile
from typing import IO

from segment_braze._replay.usage import UsageError

__all__ = ["exclusive", "unlock"]


def exclusive(path: str, shown: str) -> IO[str] | None:
    """Lock ``<path>.lock`` for this process; the OS releases it if the process dies."""
    if sys.platform == "win32":  # pragma: no cover - no flock: one replay at a time is on you
        return None
    import fcntl  # noqa: PLC0415 (POSIX only)

    try:
        handle = open(f"{path}.lock", "a")  # noqa: SIM115 (held until close())
    except OSError as err:
        raise UsageError(f"cannot use the state file {shown}: {err.strerror or err}") from err
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another segment-braze replay is using the state file {shown}") from None
    return handle


def unlock(lock_file: IO[str] | None, temp: tempfile.TemporaryDirectory[str] | None) -> None:
    """Release the lock, and remove a dry run's temporary folder."""
    if lock_file is not None:
        lock_file.close()  # closing releases the lock
    if temp is not None:
        temp.cleanup()
