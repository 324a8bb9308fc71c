"""What became of the messages read: the counts (the dead-letter file is ``deadletter``)."""

from __future__ import annotations

import threading
from collections import Counter

from segment_braze._deliver.report import DeliveryReport
from segment_braze._replay.processes import Counts, count_objects
from segment_braze._translate.translation import Translation

__all__ = ["Tally"]


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
