"""The error the command line reports as a usage error (exit status 2)."""

from __future__ import annotations

from segment_braze.exceptions import SegmentBrazeError

__all__ = ["FileError", "UsageError"]


class UsageError(SegmentBrazeError):
    """A command-line problem the user must fix: a bad option, path or state file.

    ``segment-braze`` prints its message on one line and exits with status 2.
    """


class FileError(UsageError):
    """A file the command keeps cannot be used: a damaged state or cache, a full disk.

    Printed on one line with exit status 2, like any usage error. Nothing the
    file recorded is lost: fix the cause and run the same command again.
    """
