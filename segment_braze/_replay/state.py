"""The resumable state of a replay: an SQLite file of the messages Braze decided.

One file per replay (``--state``), with three tables::

    meta(name, value)                   format marker and schema version
    runs(id, started_at, finished_at)   one row per run of the command
    messages(key, status, run)          one row per message whose fate Braze
                                        decided: status 1 delivered, 2 failed

A message's key is ``m:<messageId>``, or ``h:<digest of its content>`` when it
has none, so the state does not depend on file names or line numbers: the same
archive found under another path, or piped on stdin, resumes just the same.

The file is the duplicate filter too: a key already recorded is skipped, and so
is a key in flight in this run. Memory holds only the keys in flight; every
decided key lives in SQLite.

Outcomes are committed in small transactions, in WAL mode: before each request
the sender makes (:meth:`ReplayState.commit`, called by the sender's session),
and otherwise at most ``commit_after`` seconds after an outcome arrives. So a
worker's outcomes are on disk before it sends its next batch, and a process
killed at any point, even with SIGKILL, re-sends at most one batch per worker:
the one in flight, or the last one answered, never both.

Outcomes wait in memory until that commit writes them all, in one statement.
Claims read the file through a second, read-only connection, which in WAL mode
never waits for the writer. That is exact because a key leaves memory only once
the commit that records it has finished: at any moment, a key this run decided
is either still held in memory or committed, and a claim checks memory first.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final, Literal

from segment_braze._replay.usage import UsageError

__all__ = ["Claim", "ReplayState", "message_key"]

_FORMAT: Final = "segment-braze replay state"
_VERSION: Final = "1"
_DELIVERED: Final = 1
_FAILED: Final = 2
_STATUS: Final = {"delivered": _DELIVERED, "failed": _FAILED}
_SCHEMA: Final = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT)",
    "CREATE TABLE messages (key TEXT PRIMARY KEY, status INTEGER NOT NULL,"
    " run INTEGER NOT NULL) WITHOUT ROWID",
)


class Claim(enum.Enum):
    """What the state says about a message about to be sent."""

    NEW = "new"
    """Not decided yet, nor in flight: send it (it is now in flight)."""
    DUPLICATE = "duplicate"
    """Seen in this run already (in flight, or decided)."""
    DONE_EARLIER = "done earlier"
    """Delivered by an earlier run."""
    FAILED_EARLIER = "failed earlier"
    """Failed in an earlier run; not retried without ``retry_failed``."""


def message_key(message: Mapping[str, Any]) -> str:
    """The state key of a Segment message: its ``messageId``, or a content digest."""
    message_id = message.get("messageId")
    if isinstance(message_id, str) and message_id:
        return f"m:{message_id}"
    canonical = json.dumps(
        message, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"h:{digest.hexdigest()}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ReplayState:
    """The record of which messages Braze decided, shared by every run of a replay.

    Thread-safe: the reading thread claims keys, the sender's worker threads
    finish them.

    Args:
        path: the SQLite file (created when missing).
        dry_run: read the state but never write it; a missing file is not created.
        retry_failed: treat messages that failed in an earlier run as new.
        commit_every: commit after this many outcomes at the latest.
        commit_after: commit at most this many seconds after an outcome arrives.

    Raises:
        UsageError: the file is not a replay state, is from a newer version, or
            another replay is using it.
    """

    def __init__(
        self,
        path: str,
        *,
        dry_run: bool = False,
        retry_failed: bool = False,
        commit_every: int = 500,
        commit_after: float = 0.1,
    ) -> None:
        self.path = path
        # Whether earlier runs recorded messages (read when the file is opened).
        self.resuming = False
        self.dry_run = dry_run
        self.retry_failed = retry_failed
        self._commit_every = commit_every
        # Locks are taken in this order: a connection's (_read_lock, _write_lock;
        # one lock in a dry run), then _lock. _lock guards the two collections
        # below and is held only to read or change them, never around SQLite.
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()  # claimed, no outcome yet
        self._outcomes: dict[str, int] = {}  # outcome known, not committed yet: status
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._lock_file: IO[str] | None = None
        if dry_run and not Path(path).exists():
            self._temp = tempfile.TemporaryDirectory(prefix="segment-braze-")
            path = str(Path(self._temp.name, "state.sqlite"))
        else:
            self._lock_file = _exclusive(path)
        try:
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            self._unlock()
            raise UsageError(f"cannot open the state file {self.path}: {err}") from err
        try:
            self.run = self._open()
        except sqlite3.DatabaseError as err:
            self._db.close()
            self._unlock()
            raise UsageError(f"{self.path} is not a replay state file ({err})") from err
        except UsageError:
            self._db.close()
            self._unlock()
            raise
        # The writer: outcomes, commits, the run's row. The sender's threads
        # and the committer thread take turns with it under _write_lock.
        self._write_lock = threading.Lock()
        self._reader, self._read_lock = self._db, self._write_lock
        if not dry_run:
            # The reader: claims and decided(). A dry run never commits, so it
            # reads its own open transaction through the writer instead.
            try:
                self._reader = _reader(path)
            except sqlite3.Error as err:  # pragma: no cover - the writer opened it
                self._db.close()
                self._unlock()
                raise UsageError(f"cannot open the state file {self.path}: {err}") from err
            self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._committer: threading.Thread | None = None
        if not dry_run:
            self._committer = threading.Thread(
                target=self._commit_loop,
                args=(commit_after,),
                name="segment-braze-state",
                daemon=True,
            )
            self._committer.start()

    def _open(self) -> int:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed (only a power cut
        # can lose the last ones); FULL would fsync every small transaction.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if not tables:
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("format", _FORMAT), ("version", _VERSION)],
            )
        else:
            meta = dict(db.execute("SELECT name, value FROM meta")) if "meta" in tables else {}
            if meta.get("format") != _FORMAT:
                db.execute("ROLLBACK")
                raise UsageError(f"{self.path} is not a segment-braze replay state file")
            if meta.get("version") != _VERSION:
                db.execute("ROLLBACK")
                raise UsageError(
                    f"{self.path} was written by another version of segment-braze"
                    f" (state version {meta.get('version')}, this one reads {_VERSION})"
                )
        self.resuming = db.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
        run = db.execute("INSERT INTO runs (started_at) VALUES (?)", (_now(),)).lastrowid
        if not self.dry_run:
            db.execute("COMMIT")
            db.execute("BEGIN")
        return int(run or 0)

    def claim(self, key: str) -> Claim:
        """Say whether to send the message with ``key``; a NEW key is now in flight."""
        # The read lock serialises claims, so no other claim can add ``key``
        # between the two checks of memory below; a commit can only take keys
        # out of memory, and only once they are in the file.
        with self._read_lock:
            with self._lock:
                if key in self._in_flight or key in self._outcomes:
                    return Claim.DUPLICATE
            decided = self._decided(key)
            if decided is not None:
                return decided
            with self._lock:
                self._in_flight.add(key)
            return Claim.NEW

    def decided(self, key: str) -> Claim | None:
        """What the file already says of ``key``, without claiming it.

        Returns:
            ``DONE_EARLIER`` or ``FAILED_EARLIER`` (decided by an earlier run and
            not to be sent again), ``DUPLICATE`` (decided in this run), or ``None``
            when :meth:`claim` may answer ``NEW``. A key that is not ``None`` here
            answers the same in every later :meth:`claim` of this run, because
            only a ``NEW`` claim can change its row.
        """
        with self._read_lock:
            with self._lock:
                if key in self._outcomes:
                    return Claim.DUPLICATE
            return self._decided(key)

    def _decided(self, key: str) -> Claim | None:
        # Called with the read lock held.
        row = self._reader.execute(
            "SELECT status, run FROM messages WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        status, run = row
        if run == self.run:
            return Claim.DUPLICATE
        if status == _DELIVERED:
            return Claim.DONE_EARLIER
        if not self.retry_failed:
            return Claim.FAILED_EARLIER
        return None

    def release(self, key: str) -> None:
        """Forget a claimed key without recording it (dropped, invalid, never sent)."""
        with self._lock:
            self._in_flight.discard(key)

    def finish(self, key: str, outcome: Literal["delivered", "failed"]) -> None:
        """Record what Braze decided for a claimed key (written by the next commit)."""
        with self._lock:
            self._in_flight.discard(key)
            self._outcomes[key] = _STATUS[outcome]
            due = len(self._outcomes) >= self._commit_every
        if due:
            self.commit()

    def commit(self) -> None:
        """Make the outcomes recorded so far durable (nothing in a dry run).

        When this returns, every outcome :meth:`finish` recorded before the call
        is in the file, whichever thread's commit wrote it.
        """
        with self._write_lock:
            self._commit()

    def _commit(self) -> None:
        # Called with the write lock held.
        with self._lock:
            rows = dict(self._outcomes)
        if not rows:
            return
        self._db.executemany(
            "INSERT INTO messages (key, status, run) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET status = excluded.status, run = excluded.run",
            [(key, status, self.run) for key, status in rows.items()],
        )
        if not self.dry_run:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
        # Only now may claims find these keys in the file rather than in memory
        # (a dry run's reader is the writer, which sees its own transaction).
        with self._lock:
            for key, status in rows.items():
                if self._outcomes.get(key) == status:
                    del self._outcomes[key]

    def _commit_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.commit()

    @property
    def in_flight(self) -> int:
        """How many claimed keys are not decided yet."""
        with self._lock:
            return len(self._in_flight)

    def recorded(self) -> dict[str, int]:
        """How many messages the state records as delivered and as failed."""
        with self._write_lock:
            self._commit()
            rows = dict(self._db.execute("SELECT status, count(*) FROM messages GROUP BY status"))
        return {name: rows.get(status, 0) for name, status in _STATUS.items()}

    def close(self) -> None:
        """Commit what is pending (nothing in a dry run) and release the file."""
        self._stop.set()
        if self._committer is not None:
            self._committer.join()
        if self._reader is not self._db:
            # First: the last connection to close folds the WAL into the file.
            with self._read_lock:
                self._reader.close()
        with self._write_lock:
            if self.dry_run:
                self._db.execute("ROLLBACK")
            else:
                self._commit()
                self._db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (_now(), self.run))
                self._db.execute("COMMIT")
            self._db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the lock
            self._lock_file = None
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def __enter__(self) -> ReplayState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the state file, for one thread at a time."""
    reader = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    # Autocommit: each statement is its own read transaction, so it sees every
    # commit that finished before it started.
    reader.execute("PRAGMA query_only=ON")
    return reader


def _exclusive(path: str) -> IO[str] | None:
    """Lock ``<path>.lock`` for this process; the OS releases it if the process dies."""
    if sys.platform == "win32":  # pragma: no cover - no flock: one replay at a time is on you
        return None
    import fcntl  # noqa: PLC0415 (POSIX only)

    try:
        handle = open(f"{path}.lock", "a")  # noqa: SIM115 (held until close())
    except OSError as err:
        raise UsageError(f"cannot use the state file {path}: {err.strerror or err}") from err
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another segment-braze replay is using the state file {path}") from None
    return handle
