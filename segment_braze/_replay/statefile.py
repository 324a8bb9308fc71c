"""The replay state's file: opening and locking it, its schema, and the upgrade from 0.1.0.

:func:`open_state` locks the file for this process (``<path>.lock``; the OS
releases it when the process dies), opens a writer and, outside a dry run, a
read-only reader, creates or checks the schema, and numbers the run.

Version 3 (this one) has seven tables::

    meta(name, value)               format marker and schema version
    runs(id, started_at, finished_at)
    sources(id, name)               the sources met (identity.py), numbered
    files(id, name)                 the inputs messages were read from, numbered
    messages(source, id, time,      one row per message a run claimed: its
             status, run,           identity, what became of it, and where it
             file, line, item)      was read (for the report of a duplicate);
                                    keyed by identity, so a lookup by source
                                    and id within a window of time is one
                                    range of the primary key
    legacy(key, status, run)        the messages of a version-1 state
    log(source, id, time, status,   outcomes committed and not merged yet, in
        run, file, line, item,      the order they came (rowid): appending
        legacy)                     writes the file's last pages only

``messages.status`` is 1 delivered, 2 failed (both decided by Braze), or 3 seen:
read and settled in that run without Braze deciding (dropped, invalid, never
sent). A later run looks at a seen message again.

Outcomes are appended to ``log`` at each commit and merged into ``messages`` in
large batches sorted by key (:func:`merge`), so a commit writes a few pages at
the end of the file instead of one random page of the keyed table per message.
A log left by a killed run is merged when the file is next opened.

Version 2 (development builds after 0.1.0) had no ``log``: it is upgraded in
place by creating it.
Version 1 (segment-braze 0.1.0) knew a message by its ``messageId`` alone, with
no source or time. Its rows are kept as they are in ``legacy``, upgraded in
place, and still answer: a message 0.1.0 delivered is never sent again. The
upgrade happens in the run's first transaction, so a dry run changes nothing and
a killed upgrade leaves version 1.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

import attrs

from segment_braze._replay.usage import FileError, UsageError

__all__ = [
    "DELIVERED",
    "FAILED",
    "SEEN",
    "Row",
    "StateFile",
    "append",
    "damaged",
    "look_up",
    "merge",
    "now",
    "open_state",
]

DELIVERED: Final = 1
FAILED: Final = 2
SEEN: Final = 3

_FORMAT: Final = "segment-braze replay state"
_VERSION: Final = "3"
_LOG: Final = (
    "CREATE TABLE log (source INTEGER NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,"
    " status INTEGER NOT NULL, run INTEGER NOT NULL, file INTEGER, line INTEGER, item INTEGER,"
    " legacy INTEGER NOT NULL)"
)
# Sorted by key, so each page of the keyed table is written once per merge; by
# rowid within a key, so the last outcome recorded wins. ("WHERE true": SQLite's
# rule for an upsert whose SELECT could be read as a join's ON.)
_MERGE: Final = (
    "INSERT INTO messages (source, id, time, status, run, file, line, item)"
    " SELECT source, id, time, status, run, file, line, item FROM log WHERE true"
    " ORDER BY source, id, time, rowid ON CONFLICT (source, id, time) DO UPDATE SET"
    " status = excluded.status, run = excluded.run, file = excluded.file,"
    " line = excluded.line, item = excluded.item"
)
_APPEND: Final = (
    "INSERT INTO log (source, id, time, status, run, file, line, item, legacy)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# One source's messages among a chunk: the key's first two columns, so one range each.
_AHEAD: Final = (
    "SELECT id, time, status, run, file, line, item FROM messages"
    " WHERE source = ? AND id IN ({marks})"
)
_CHUNK: Final = 500  # ids per query: far below SQLite's limit of bound variables
_MESSAGES: Final = (
    "CREATE TABLE sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE messages (source INTEGER NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,"
    " status INTEGER NOT NULL, run INTEGER NOT NULL, file INTEGER, line INTEGER, item INTEGER,"
    " PRIMARY KEY (source, id, time)) WITHOUT ROWID",
)
_SCHEMA: Final = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT)",
    *_MESSAGES,
    "CREATE TABLE legacy (key TEXT PRIMARY KEY, status INTEGER NOT NULL,"
    " run INTEGER NOT NULL) WITHOUT ROWID",
    _LOG,
)


def _prepare(db: sqlite3.Connection, path: str) -> None:
    """Create the schema in an empty file, check it, or upgrade a version-1 state.

    Called inside the run's first (immediate) transaction.

    Raises:
        UsageError: the file is not a replay state, or a newer version wrote it.
        sqlite3.DatabaseError: the file is not an SQLite database.
    """
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if not tables:
        for statement in _SCHEMA:
            db.execute(statement)
        db.executemany(
            "INSERT INTO meta (name, value) VALUES (?, ?)",
            [("format", _FORMAT), ("version", _VERSION)],
        )
        return
    meta = dict(db.execute("SELECT name, value FROM meta")) if "meta" in tables else {}
    if meta.get("format") != _FORMAT:
        raise UsageError(f"{path} is not a segment-braze replay state file")
    version = meta.get("version")
    if version not in {"1", "2", _VERSION}:
        raise UsageError(
            f"{path} was written by another version of segment-braze (state version"
            f" {version}, this one reads 1 to {_VERSION}): resume it with the version that"
            " wrote it, or give a new --state file"
        )
    if version == "1":
        _upgrade_from_1(db)
    if version in {"1", "2"}:
        db.execute(_LOG)
        db.execute("UPDATE meta SET value = ? WHERE name = 'version'", (_VERSION,))
        db.execute(
            "INSERT INTO meta (name, value) VALUES ('upgraded_from', ?)"
            " ON CONFLICT (name) DO NOTHING",
            (version,),
        )


def _upgrade_from_1(db: sqlite3.Connection) -> None:
    # Version 1's messages(key, status, run) become legacy as they are: a rename.
    db.execute("ALTER TABLE messages RENAME TO legacy")
    for statement in _MESSAGES:
        db.execute(statement)


Row = tuple[int, int, int, int | None, int | None, int | None]
"""A recorded message: time, status, run, file, line, item."""


def look_up(
    reader: sqlite3.Connection, wanted: dict[int, set[str]]
) -> dict[tuple[int, str], list[Row]]:
    """The recorded messages of some ids, by source number: one query per source and chunk.

    Returns:
        Every ``(source, id)`` wanted, with its rows (none when nothing is recorded).
    """
    found: dict[tuple[int, str], list[Row]] = {
        (number, key): [] for number, keys in wanted.items() for key in keys
    }
    for number, keys in wanted.items():
        listed = list(keys)
        for start in range(0, len(listed), _CHUNK):
            part = listed[start : start + _CHUNK]
            query = _AHEAD.format(marks=",".join("?" * len(part)))
            for key, *row in reader.execute(query, (number, *part)):
                found[number, key].append(tuple(row))
    return found


def append(
    db: sqlite3.Connection,
    rows: Sequence[tuple[object, ...]],
    files: list[tuple[int, str]],
    sources: list[tuple[int, str]],
    *,
    commit: bool,
) -> None:
    """Append outcomes to the log, with the files and sources they name, in one transaction."""
    db.executemany("INSERT INTO sources (id, name) VALUES (?, ?)", sources)
    db.executemany("INSERT INTO files (id, name) VALUES (?, ?)", files)
    db.executemany(_APPEND, rows)
    if commit:
        db.execute("COMMIT")
        db.execute("BEGIN")


def merge(db: sqlite3.Connection) -> int:
    """Move the log into the keyed table, in key order (inside the caller's transaction).

    Returns:
        How many outcomes were merged.
    """
    count = int(db.execute("SELECT count(*) FROM log").fetchone()[0])
    if count:
        db.execute(_MERGE)
        # A message claimed again over a version-1 row (--retry-failed) replaces it.
        db.execute("DELETE FROM legacy WHERE key IN (SELECT id FROM log WHERE legacy)")
        db.execute("DELETE FROM log")
    return count


def now() -> str:
    """The time now, as the runs table records it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@attrs.define(kw_only=True)
class StateFile:
    """An open state file: its connections, its lock, and this run.

    Attributes:
        db: the writer, always inside a transaction.
        reader: a read-only connection for claims (the writer itself in a dry run,
            which never commits and so must read its own transaction).
        run: this run's number.
        resuming: whether earlier runs recorded messages.
        legacy: whether a version-1 state's rows are there.
        next_file: the next free id in the files table.
        sources: every source met so far, and its number.
    """

    db: sqlite3.Connection
    reader: sqlite3.Connection
    run: int
    resuming: bool
    legacy: bool
    next_file: int
    sources: dict[str, int]
    dry_run: bool
    lock_file: IO[str] | None
    temp: tempfile.TemporaryDirectory[str] | None

    def close(self) -> None:
        """Close the connections (rolling back a dry run, committing else) and unlock."""
        if self.reader is not self.db:
            # First: the last connection to close folds the WAL into the file.
            self.reader.close()
        if self.dry_run:
            self.db.execute("ROLLBACK")
        else:
            self.db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (now(), self.run))
            self.db.execute("COMMIT")
        self.db.close()
        _unlock(self.lock_file, self.temp)

    def abandon(self) -> None:
        """Close without committing (after a failed write) and unlock."""
        if self.reader is not self.db:
            self.reader.close()
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()
        _unlock(self.lock_file, self.temp)


def open_state(path: str, *, dry_run: bool) -> StateFile:
    """Lock, open and check a state file, and start a run.

    A dry run of a missing file uses a temporary one, so nothing is created.

    Raises:
        UsageError: the file is not a replay state, is from a newer version, is
            busy (another replay uses it), or cannot be opened.
    """
    temp: tempfile.TemporaryDirectory[str] | None = None
    lock_file: IO[str] | None = None
    shown = path
    if dry_run and not Path(path).exists():
        temp = tempfile.TemporaryDirectory(prefix="segment-braze-")
        path = str(Path(temp.name, "state.sqlite"))
    else:
        # The resolved path: a symlink, or another relative path to the same
        # file, is the same state and so takes the same lock.
        path = os.path.realpath(path)  # unlike resolve(), never raises on a loop
        lock_file = _exclusive(path, shown)
        try:
            _check_not_empty(path, shown)
        except UsageError:
            _unlock(lock_file, temp)
            raise
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        _unlock(lock_file, temp)
        raise UsageError(f"cannot open the state file {shown}: {err}") from err
    try:
        state = _start(db, shown, dry_run=dry_run)
        state.lock_file, state.temp = lock_file, temp
        if not dry_run:
            state.reader = _reader(path)
    except sqlite3.DatabaseError as err:
        db.close()
        _unlock(lock_file, temp)
        raise damaged(shown, err) from err
    except UsageError:
        db.close()
        _unlock(lock_file, temp)
        raise
    return state


def _start(db: sqlite3.Connection, shown: str, *, dry_run: bool) -> StateFile:
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives the process being killed (only a power cut can
    # lose the last ones); FULL would fsync every small transaction.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        _prepare(db, shown)
        _check_whole(db)
        # What a killed run appended and did not merge: claims read the keyed table.
        merge(db)
    except (UsageError, sqlite3.DatabaseError):
        db.execute("ROLLBACK")
        raise
    legacy = db.execute("SELECT 1 FROM legacy LIMIT 1").fetchone() is not None
    recorded = db.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
    next_file = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM files").fetchone()[0])
    sources = {
        str(name): int(number) for number, name in db.execute("SELECT id, name FROM sources")
    }
    run = db.execute("INSERT INTO runs (started_at) VALUES (?)", (now(),)).lastrowid
    if not dry_run:
        db.execute("COMMIT")
        db.execute("BEGIN")
    return StateFile(
        db=db,
        reader=db,
        run=int(run or 0),
        resuming=recorded or legacy,
        legacy=legacy,
        next_file=next_file,
        sources=sources,
        dry_run=dry_run,
        lock_file=None,
        temp=None,
    )


def _reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the state file, for one thread at a time."""
    reader = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    # Autocommit: each statement is its own read transaction, so it sees every
    # commit that finished before it started.
    reader.execute("PRAGMA query_only=ON")
    return reader


def damaged(shown: str, err: sqlite3.Error) -> FileError:
    """The one-line error for a state file SQLite cannot use, by what went wrong."""
    if isinstance(err, sqlite3.OperationalError) and ("full" in str(err) or "I/O" in str(err)):
        # SQLite: ENOSPC is SQLITE_FULL; a write refused otherwise (EFBIG at a
        # file-size limit, a failing disk) is an I/O error.
        cause = "the disk is full" if "full" in str(err) else str(err)
        return FileError(
            f"cannot write the state file {shown}: {cause}; what was recorded is kept:"
            " free some space (or fix the disk) and run the same command again"
        )
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
        return FileError(
            f"{shown} is not a replay state file, or is damaged ({err}): give a new --state"
            " file, or restore this one from a backup"
        )
    return FileError(f"cannot use the state file {shown}: {err}")


def _check_not_empty(path: str, shown: str) -> None:
    """Refuse an existing zero-byte state file: SQLite would silently start afresh.

    This command never leaves one (it writes the schema in its first
    transaction), so an empty file is a state that was truncated or replaced.
    """
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        return  # a new state
    except OSError as err:
        raise FileError(f"cannot use the state file {shown}: {err.strerror or err}") from err
    if size == 0:
        raise FileError(
            f"the state file {shown} is empty, so what earlier runs recorded is gone: give"
            " a new --state file, or delete this one to start afresh"
        )


def _check_whole(db: sqlite3.Connection) -> None:
    """Read every page of the file: damage anywhere is found now, not mid-run.

    Raises:
        sqlite3.DatabaseError: the file is damaged or truncated.
    """
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(str(problem) for problem in problems[:3]))


def _exclusive(path: str, shown: str) -> IO[str] | None:
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


def _unlock(lock_file: IO[str] | None, temp: tempfile.TemporaryDirectory[str] | None) -> None:
    if lock_file is not None:
        lock_file.close()  # closing releases the lock
    if temp is not None:
        temp.cleanup()
