"""The attribute cache's store as the command uses it: a store that fails stops the run.

The cache saves what Braze acknowledged from the sender's worker threads. When
the disk under an SQLite cache is full, or a Redis server stops answering,
:class:`GuardedStore` keeps the first error instead of letting it end a worker;
the command raises it (one line, exit status 2) before the next request,
through the sender's ``before_request`` hook, or when sending ends. After it,
the store is not asked again (a silent Redis would cost every message its
timeout). Nothing is lost: a value not remembered is only sent again by a later
run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from segment_braze._cache.cache import AttributeCache
from segment_braze._cache.store import AttributeStore, Remembered
from segment_braze._replay.usage import FileError

__all__ = ["GuardedStore", "guard"]


class GuardedStore:
    """An attribute store whose failures become one :class:`FileError`, kept for the run."""

    def __init__(self, store: AttributeStore, name: str) -> None:
        self._store = store
        self._name = name
        self.fault: FileError | None = None

    def _failed(self, err: Exception) -> FileError:
        """Keep the first failure as the run's one line, and return it."""
        if self.fault is None:
            if isinstance(err, sqlite3.Error):
                full = "full" in str(err)
                cause = "the disk is full" if full else str(err)
                advice = "free some space" if full else "fix it, or give --dedup none"
                verb = "write"
            else:  # Redis, or a store's own failure
                cause = f"{type(err).__name__}: {err}"
                advice = "fix it, or give --dedup none"
                verb = "use"
            self.fault = FileError(
                f"cannot {verb} the attribute cache {self._name}: {cause}; what was"
                f" delivered is recorded: {advice} and run the same command again"
            )
            self.fault.__cause__ = err
        return self.fault

    def load(self, users: list[str]) -> dict[str, dict[str, Remembered]]:
        """The store's values of ``users``.

        Raises:
            FileError: the store failed, now or before (see :meth:`check`).
        """
        if self.fault is not None:
            raise self.fault
        try:
            return self._store.load(users)
        except Exception as err:  # any store's failure is the run's one line
            raise self._failed(err) from err

    def save(self, updates: dict[str, dict[str, Remembered]], ttl: float) -> None:
        """Save ``updates``; a failure is kept (see :meth:`check`), never raised here."""
        if self.fault is not None:
            return
        try:
            self._store.save(updates, ttl)
        except Exception as err:  # noqa: BLE001 (as load)
            self._failed(err)

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    def check(self) -> None:
        """Raise the first failure of a save, if any."""
        if self.fault is not None:
            raise self.fault


def guard(cache: AttributeCache | None, name: str) -> Callable[[], None]:
    """Guard ``cache``'s store; returns the check to call before each request."""
    if cache is None:
        return lambda: None
    store = GuardedStore(cache.store, name)
    cache.store = store
    return store.check
