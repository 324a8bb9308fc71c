"""The three AttributeCache stores: in memory, an SQLite file, Redis."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any, Final

from segment_braze._cache.store import Remembered

__all__ = ["REDIS_TIMEOUT", "MemoryStore", "RedisStore", "SQLiteStore"]

_COLUMNS = ("user", "name", "digest", "acknowledged_at")
_BUSY_WAIT = 30.0  # seconds a busy file is waited for, opening as much as saving
_CREATE = (
    "CREATE TABLE IF NOT EXISTS attribute_cache ("
    " user TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL,"
    " acknowledged_at REAL NOT NULL, PRIMARY KEY (user, name)) WITHOUT ROWID"
)


class MemoryStore:
    """In-process, bounded: the least recently used users are forgotten first."""

    def __init__(self, *, max_users: int) -> None:
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.max_users = max_users
        self._users: OrderedDict[str, dict[str, Remembered]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, users: list[str]) -> dict[str, dict[str, Remembered]]:
        """Return remembered values of ``users``."""
        found = {}
        with self._lock:
            for user in users:
                values = self._users.get(user)
                if values is not None:
                    self._users.move_to_end(user)
                    found[user] = dict(values)
        return found

    def save(self, updates: dict[str, dict[str, Remembered]], ttl: float) -> None:
        """Merge ``updates``; expiry is checked on read by the cache (``ttl`` unused)."""
        del ttl
        with self._lock:
            for user, values in updates.items():
                self._users.setdefault(user, {}).update(values)
                self._users.move_to_end(user)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    def close(self) -> None:
        """Nothing to release."""


class SQLiteStore:
    """An SQLite file: survives restarts; several processes on one machine share it.

    WAL mode lets readers work while one process writes; each save is one
    transaction, and a busy file is waited for (up to 30 s), not failed.
    """

    def __init__(self, path: str) -> None:
        """Open (or create) the file.

        Raises:
            ValueError: the file holds something else than an attribute cache
                (another program's database, a replay state), so it is left alone.
            sqlite3.Error: the file is not an SQLite database, or cannot be written.
        """
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=_BUSY_WAIT, check_same_thread=False)
        try:
            self._prepare()
        except (ValueError, sqlite3.Error):
            self._db.close()
            raise
        self._saves = 0

    def _prepare(self) -> None:
        """Check the file is ours, switch it to WAL once and create the table.

        Two processes opening a new file at once can both ask for WAL; SQLite
        then answers one of them "database is locked" at once, without waiting
        out the busy timeout. That answer is retried until the same 30 s bound.
        """
        deadline = time.monotonic() + _BUSY_WAIT
        pause = 0.005
        while True:
            try:
                self._check_ours()
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_CREATE)
                self._db.commit()
            except sqlite3.OperationalError as err:
                busy = "locked" in str(err) or "busy" in str(err)
                if not busy or time.monotonic() + pause > deadline:
                    raise
                self._db.rollback()
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            else:
                return

    def _check_ours(self) -> None:
        """Refuse a database with other tables, or another ``attribute_cache`` table."""
        tables = [row[0] for row in self._db.execute("SELECT name FROM sqlite_master")]
        if not tables:
            return  # a new (or empty) file: ours from now on
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(attribute_cache)")]
        if tables != ["attribute_cache"] or columns != list(_COLUMNS):
            raise ValueError(
                f"{self.path} is not an attribute cache (it holds the tables"
                f" {', '.join(sorted(tables))}): it is left as it is"
            )

    def load(self, users: list[str]) -> dict[str, dict[str, Remembered]]:
        """Return remembered values of ``users``."""
        found: dict[str, dict[str, Remembered]] = {}
        with self._lock:
            for start in range(0, len(users), 500):
                chunk = users[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT user, name, digest, acknowledged_at FROM attribute_cache"  # noqa: S608 (placeholders only)
                    f" WHERE user IN ({marks})",
                    chunk,
                )
                for user, name, digest, acknowledged_at in rows:
                    found.setdefault(user, {})[name] = (digest, acknowledged_at)
        return found

    def save(self, updates: dict[str, dict[str, Remembered]], ttl: float) -> None:
        """Merge ``updates`` and delete entries older than ``ttl``."""
        rows = [
            (user, name, digest, at)
            for user, values in updates.items()
            for name, (digest, at) in values.items()
        ]
        newest = max((at for *_, at in rows), default=0.0)
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO attribute_cache (user, name, digest, acknowledged_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user, name) DO UPDATE SET"
                " digest = excluded.digest, acknowledged_at = excluded.acknowledged_at",
                rows,
            )
            self._saves += 1
            # Forget expired entries now and then, not on every save (a scan).
            if newest and self._saves % 500 == 1:
                self._db.execute(
                    "DELETE FROM attribute_cache WHERE acknowledged_at < ?", (newest - ttl,)
                )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


REDIS_TIMEOUT: Final = 10.0
"""Seconds a Redis call waits to connect, and for each answer (unless the URL says)."""


class RedisStore:
    """Redis: one cache shared by pipelines on several machines.

    One hash per user (``segment_braze:<namespace>:<user>``), one compact field per
    attribute (``<digest>:<acknowledged_at>``); Redis expires a user's hash
    ``ttl`` seconds after its last update, and older fields are ignored on read.
    """

    prefix = "segment_braze:"

    def __init__(self, url: str) -> None:
        try:
            import redis  # noqa: PLC0415 (optional dependency)
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "AttributeCache.redis needs the redis package: pip install 'segment-braze[redis]'"
            ) from err
        # redis-py 5 waits for ever by default: a server that stops answering
        # would hang the sender. Options in the URL's query string win.
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )

    def load(self, users: list[str]) -> dict[str, dict[str, Remembered]]:
        """Return remembered values of ``users``."""
        pipe = self._client.pipeline(transaction=False)
        for user in users:
            pipe.hgetall(self.prefix + user)
        found: dict[str, dict[str, Remembered]] = {}
        for user, fields in zip(users, pipe.execute(), strict=True):
            if fields:
                values = {}
                for name, packed in fields.items():
                    digest, _, at = packed.decode().partition(":")
                    values[name.decode()] = (digest, float(at or 0))
                found[user] = values
        return found

    def save(self, updates: dict[str, dict[str, Remembered]], ttl: float) -> None:
        """Merge ``updates``; each user's hash expires ``ttl`` after its last update."""
        pipe = self._client.pipeline(transaction=False)
        for user, values in updates.items():
            key = self.prefix + user
            pipe.hset(key, mapping={name: f"{d}:{at:.0f}" for name, (d, at) in values.items()})
            pipe.expire(key, max(1, int(ttl)))
        pipe.execute()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
