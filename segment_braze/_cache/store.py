"""The interface between the attribute cache and where it keeps its values."""

from __future__ import annotations

from typing import Protocol

__all__ = ["AttributeStore", "Remembered"]

#: A remembered attribute: (value digest, when Braze acknowledged it, epoch s).
Remembered = tuple[str, float]


class AttributeStore(Protocol):
    """Where the cache keeps what Braze acknowledged: one small interface.

    ``user`` is a namespaced user key; ``values`` maps attribute names to
    ``(digest, acknowledged_at)``. Plug in another store by implementing these.
    """

    def load(self, users: list[str]) -> dict[str, dict[str, Remembered]]:
        """Return what is remembered for each of ``users`` (absent users omitted)."""
        ...  # pragma: no cover

    def save(self, updates: dict[str, dict[str, Remembered]], ttl: float) -> None:
        """Merge ``updates`` into the stored values; entries may expire after ``ttl``."""
        ...  # pragma: no cover

    def close(self) -> None:
        """Release connections or files."""
        ...  # pragma: no cover
