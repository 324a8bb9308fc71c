"""The error the command line reports as a usage error (exit status 2)."""

from __future__ import annotations

from segment_braze.exceptions import SegmentBrazeError

__all__ = ["UsageError"]


class UsageError(SegmentBrazeError):
    """A command-line problem the user must fix: a bad option, path or state file.

    ``segment-braze`` prints its message on one line and exits with status 2.
    """
