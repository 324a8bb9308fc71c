"""The replay state's file: opening it, and reading and writing its tables.

:func:`open_state` locks the file for this process (``<path>.lock``; the OS
releases it when the process dies), opens a writer and, outside a dry run, a
read-only reader, creates or checks the schema
(:mod:`segment_braze._replay.stateschema` says what each table holds), and
numbers the run. :func:`append`, :func:`merge` and :func:`fold` move outcomes
from memory to the log, the log to ``recent`` and ``recent`` to ``messages``;
:func:`look_up` and :func:`within` read ``recent`` and ``messages`` as one.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

import attrs

from segment_braze._replay import statelock, stateschema
from segment_braze._replay.usage import FileError, UsageError

__all__ = [
    "DELIVERED",
    "FAILED",
    "SEEN",
    "Row",
    "StateFile",
    "append",
    "counts",
    "damaged",
    "fold",
    "look_up",
    "merge",
    "now",
    "open_state",
    "within",
]

DELIVERED: Final = 1
FAILED: Final = 2
SEEN: Final = 3

# Sorted by key, so each page of the keyed table is written once per merge; by
# rowid within a key, so the last outcome recorded wins. ("WHERE true": SQLite's
# rule for an upsert whose SELECT could be read as a join's ON.)
_MERGE: Final = (
    "INSERT INTO recent (source, id, time, status, run, file, line, item)"
    " SELECT source, id, time, status, run, file, line, item FROM log WHERE true"
    " ORDER BY source, id, time, rowid ON CONFLICT (source, id, time) DO UPDATE SET"
    " status = excluded.status, run = excluded.run, file = excluded.file,"
    " line = excluded.line, item = excluded.item"
)
# recent is newer than messages: its row wins a key both hold. Read in key order,
# so each page of messages is written once per fold.
_FOLD: Final = (
    "INSERT INTO messages (source, id, time, status, run, file, line, item)"
    " SELECT source, id, time, status, run, file, line, item FROM recent WHERE true"
    " ORDER BY source, id, time ON CONFLICT (source, id, time) DO UPDATE SET"
    " status = excluded.status, run = excluded.run, file = excluded.file,"
    " line = excluded.line, item = excluded.item"
)
_APPEND: Final = (
    "INSERT INTO log (source, id, time, status, run, file, line, item, legacy)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# One source's messages among a chunk: the key's first two columns, so one range
# each; one statement, so one snapshot of both tables (a fold between two reads
# could hide a row). The last column says whether the row is recent's. Only the
# ids the recent table may hold are looked up there.
_AHEAD: Final = (
    "SELECT id, time, status, run, file, line, item, 0 FROM messages"
    " WHERE source = ?1 AND id IN ({marks})"
)
_AHEAD_RECENT: Final = (
    "SELECT id, time, status, run, file, line, item, 1 FROM recent"
    " WHERE source = ?1 AND id IN ({marks}) UNION ALL "
)
# Usually no row, rarely more than one: choosing among them costs less than a sort.
_WITHIN: Final = (
    "SELECT time, status, run, file, line, item, 0 FROM messages"
    " WHERE source = ?1 AND id = ?2 AND time BETWEEN ?3 AND ?4"
)
_WITHIN_BOTH: Final = (
    "SELECT time, status, run, file, line, item, 1 FROM recent"
    " WHERE source = ?1 AND id = ?2 AND time BETWEEN ?3 AND ?4"
    " UNION ALL SELECT time, status, run, file, line, item, 0 FROM messages"
    " WHERE source = ?1 AND id = ?2 AND time BETWEEN ?3 AND ?4"
)
_CHUNK: Final = 400  # ids per query: twice this (recent, main) + 1 < 999, the limit before 3.32
Row = tuple[int, int, int, int | None, int | None, int | None]
"""A recorded message: time, status, run, file, line, item."""
_Flagged = tuple[int, int, int, int | None, int | None, int | None, int]
"""A row as read, and whether it is ``recent``'s (1) or ``messages``'s (0)."""


def look_up(
    reader: sqlite3.Connection,
    wanted: dict[int, set[str]],
    recent: Callable[[int, str], bool],
) -> dict[tuple[int, str], list[Row]]:
    """The recorded messages of some ids, by source number: one query per source and chunk.

    Args:
        reader: the connection to read with.
        wanted: the ids, by source number.
        recent: whether the recent table may hold an id (false: it does not).

    Returns:
        Every ``(source, id)`` wanted, with its rows (none when nothing is recorded).
    """
    found: dict[tuple[int, str], list[_Flagged]] = {
        (number, key): [] for number, keys in wanted.items() for key in keys
    }
    for number, keys in wanted.items():
        listed = list(keys)
        for start in range(0, len(listed), _CHUNK):
            part = listed[start : start + _CHUNK]
            maybe = [key for key in part if recent(number, key)]
            query = _AHEAD.format(marks=_marks(2, len(part)))
            if maybe:
                query = _AHEAD_RECENT.format(marks=_marks(len(part) + 2, len(maybe))) + query
            for key, *row in reader.execute(query, (number, *part, *maybe)):
                found[number, key].append(tuple(row))
    return {slot: _newest(rows) if rows else [] for slot, rows in found.items()}


def within(
    reader: sqlite3.Connection, number: int, key: str, low: int, high: int, *, recent: bool
) -> list[Row]:
    """The recorded messages of one id with a time from ``low`` to ``high``: one indexed query.

    ``recent``: whether the recent table may hold the id (false: it does not).
    """
    query = _WITHIN_BOTH if recent else _WITHIN
    return _newest(reader.execute(query, (number, key, low, high)).fetchall())


def _marks(first: int, count: int) -> str:
    """Numbered parameters ``?first`` onwards, ``count`` of them, comma-separated."""
    return ",".join(f"?{n}" for n in range(first, first + count))


def _newest(rows: list[_Flagged]) -> list[Row]:
    """Rows without their flag, a row of ``recent`` replacing one of ``messages`` at its time."""
    replaced = {row[0] for row in rows if row[6]}
    return [row[:6] for row in rows if row[6] or row[0] not in replaced]


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
    _end(db, commit=commit)


def merge(db: sqlite3.Connection, *, commit: bool = False) -> int:
    """Move the log into ``recent``, in key order, in the caller's transaction (or committed).

    Returns:
        How many outcomes were merged.
    """
    count = int(db.execute("SELECT count(*) FROM log").fetchone()[0])
    if count:
        db.execute(_MERGE)
        # A message claimed again over a version-1 row (--retry-failed) replaces it.
        db.execute("DELETE FROM legacy WHERE key IN (SELECT id FROM log WHERE legacy)")
        db.execute("DELETE FROM log")
    _end(db, commit=commit)
    return count


def fold(db: sqlite3.Connection, *, commit: bool = False) -> None:
    """Fold ``recent`` into ``messages`` in key order (the caller's transaction, or committed)."""
    db.execute(_FOLD)
    db.execute("DELETE FROM recent")
    _end(db, commit=commit)


def _end(db: sqlite3.Connection, *, commit: bool) -> None:
    """Commit the writer's transaction and open the next one, when asked to."""
    if commit:
        db.execute("COMMIT")
        db.execute("BEGIN")


def counts(db: sqlite3.Connection) -> dict[int, int]:
    """How many messages ``messages`` and ``legacy`` record, by status (``recent`` folded)."""
    rows: dict[int, int] = dict(db.execute("SELECT status, count(*) FROM messages GROUP BY status"))
    for status, count in db.execute("SELECT status, count(*) FROM legacy GROUP BY status"):
        rows[status] = rows.get(status, 0) + count
    return rows


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
        statelock.unlock(self.lock_file, self.temp)

    def abandon(self) -> None:
        """Close without committing (after a failed write) and unlock."""
        if self.reader is not self.db:
            self.reader.close()
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()
        statelock.unlock(self.lock_file, self.temp)


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
        lock_file = statelock.exclusive(path, shown)
        try:
            _check_not_empty(path, shown)
        except UsageError:
            statelock.unlock(lock_file, temp)
            raise
    try:
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        statelock.unlock(lock_file, temp)
        raise UsageError(f"cannot open the state file {shown}: {err}") from err
    try:
        state = _start(db, shown, dry_run=dry_run)
        state.lock_file, state.temp = lock_file, temp
        if not dry_run:
            state.reader = _reader(path)
    except sqlite3.DatabaseError as err:
        db.close()
        statelock.unlock(lock_file, temp)
        raise damaged(shown, err) from err
    except UsageError:
        db.close()
        statelock.unlock(lock_file, temp)
        raise
    return state


def _start(db: sqlite3.Connection, shown: str, *, dry_run: bool) -> StateFile:
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives the process being killed (only a power cut can
    # lose the last ones); FULL would fsync every small transaction.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        stateschema.prepare(db, shown)
        _check_whole(db)
        # What a killed run appended and did not merge or fold: so a run starts
        # with an empty log and an empty recent.
        merge(db)
        fold(db)
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
