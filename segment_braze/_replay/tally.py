"""What became of the messages read: the counts and the dead-letter file."""

from __future__ import annotations

import threading
from collections import Counter
from typing import IO, Any

from segment_braze import _json
from segment_braze._deliver.report import DeliveryReport
from segment_braze._replay.inputs import Record
from segment_braze._replay.processes import Counts, count_objects
from segment_braze._replay.usage import UsageError
from segment_braze._translate.translation import Translation

__all__ = ["DeadLetter", "Tally"]


class Tally:
    """Thread-safe counts of what became of the messages read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        """Add to a named count."""
        with self._lock:
            self.counts[name] += amount

    def drop(self, reason: str) -> None:
        """Count a message dropped by translation."""
        with self._lock:
            self.counts["dropped"] += 1
            self.dropped[reason] += 1

    def fail(self, reason: str) -> None:
        """Count a message Braze did not accept."""
        with self._lock:
            self.counts["failed"] += 1
            self.failed[reason] += 1

    def translation(self, translation: Translation) -> None:
        """Count the Braze objects of a translation and their data points."""
        self.objects(count_objects(translation))

    def objects(self, objects: Counts) -> None:
        """Add the counted Braze objects of one translation."""
        with self._lock:
            counts = self.counts
            counts["attribute objects"] += objects.attribute_objects
            counts["attribute points"] += objects.attribute_points
            counts["events"] += objects.events
            counts["event points"] += objects.event_points
            counts["purchases"] += objects.purchases
            counts["operations"] += objects.operations
            counts["warnings"] += objects.warnings

    def absorb(self, report: DeliveryReport) -> None:
        """Add the request and attribute-cache counts of a client report."""
        with self._lock:
            self.counts["requests"] += report.requests
            self.counts["retries"] += report.retries
            self.counts["attributes saved"] += report.attributes_saved
            self.counts["points saved"] += report.data_points_saved

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self.counts[name]

    @property
    def done(self) -> int:
        """Messages whose fate is known."""
        with self._lock:
            return self.counts["read"] - self.counts["in flight"]

    @property
    def unsuccessful(self) -> int:
        """Messages that failed or were invalid, in this run or an earlier one."""
        with self._lock:
            counts = self.counts
            return counts["failed"] + counts["invalid"] + counts["failed earlier"]


class DeadLetter:
    """The ``--dead-letter`` file: JSON Lines of every message not delivered.

    Appended to (a resumed replay adds to it), and flushed after every line, so
    a killed process loses none of them.
    """

    def __init__(self, path: str) -> None:
        try:
            self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise UsageError(
                f"cannot write the dead-letter file {path}: {err.strerror or err}"
            ) from err
        self._lock = threading.Lock()

    def write(
        self, record: Record, outcome: str, reason: str, *, duplicate_of: str | None = None
    ) -> None:
        """Write one message (or unreadable input) and why it was not delivered.

        Args:
            record: the message, or the input that could not be read.
            outcome: ``failed``, ``dropped``, ``invalid`` or ``duplicate``.
            reason: why.
            duplicate_of: for a duplicate, where the message it duplicates was read.
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
        data = _json.dumps(entry) + b"\n"
        with self._lock:
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
