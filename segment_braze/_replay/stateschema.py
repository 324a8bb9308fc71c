"""The replay state file's schema, and the upgrades from earlier versions.

Version 4 (this one) has eight tables::

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
    recent(...)                     the same columns and key: this run's
                                    outcomes since the last fold, newer than
                                    any row of ``messages`` with the same key
    legacy(key, status, run)        the messages of a version-1 state
    log(source, id, time, status,   outcomes committed and not merged yet, in
        run, file, line, item,      the order they came (rowid): appending
        legacy)                     writes the file's last pages only

``messages.status`` is 1 delivered, 2 failed (both decided by Braze), or 3 seen:
read and settled in that run without Braze deciding (dropped, invalid, never
sent). A later run looks at a seen message again.

Outcomes are appended to ``log`` at each commit and merged into ``recent`` in
large batches sorted by key (``statefile.merge``); ``recent`` is folded into
``messages`` in one sorted pass once it holds a few hundred thousand rows
(``statefile.fold``), and whenever the file is closed or opened. A commit writes a
few pages at the end of the file; a merge rewrites pages of ``recent`` only,
which stays small whatever the size of ``messages``; and a fold writes each page
of ``messages`` it touches once, about one per row it moves at worst. So no
step's cost per message grows without bound as the state grows. A log or
``recent`` left by a killed run is merged and folded when the file is next
opened.

Version 3 had no ``recent`` (the log was merged into ``messages`` directly),
and is upgraded in place by creating it.
Version 2 (development builds after 0.1.0) had no ``log`` either: it is
upgraded in place by creating both.
Version 1 (segment-braze 0.1.0) knew a message by its ``messageId`` alone, with
no source or time. Its rows are kept as they are in ``legacy``, upgraded in
place, and still answer: a message 0.1.0 delivered is never sent again. The
upgrade happens in the run's first transaction, so a dry run changes nothing and
a killed upgrade leaves version 1.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from segment_braze._replay.usage import UsageError

__all__ = ["prepare"]

_FORMAT: Final = "segment-braze replay state"
_VERSION: Final = "4"
_LOG: Final = (
    "CREATE TABLE log (source INTEGER NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,"
    " status INTEGER NOT NULL, run INTEGER NOT NULL, file INTEGER, line INTEGER, item INTEGER,"
    " legacy INTEGER NOT NULL)"
)
_KEYED: Final = (
    " (source INTEGER NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,"
    " status INTEGER NOT NULL, run INTEGER NOT NULL, file INTEGER, line INTEGER, item INTEGER,"
    " PRIMARY KEY (source, id, time)) WITHOUT ROWID"
)
_RECENT: Final = "CREATE TABLE recent" + _KEYED
_MESSAGES: Final = (
    "CREATE TABLE sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE messages" + _KEYED,
)
_SCHEMA: Final = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT)",
    *_MESSAGES,
    "CREATE TABLE legacy (key TEXT PRIMARY KEY, status INTEGER NOT NULL,"
    " run INTEGER NOT NULL) WITHOUT ROWID",
    _LOG,
    _RECENT,
)


def prepare(db: sqlite3.Connection, path: str) -> None:
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
    if version not in {"1", "2", "3", _VERSION}:
        raise UsageError(
            f"{path} was written by another version of segment-braze (state version"
            f" {version}, this one reads 1 to {_VERSION}): resume it with the version that"
            " wrote it, or give a new --state file"
        )
    if version == "1":
        _upgrade_from_1(db)
    if version in {"1", "2"}:
        db.execute(_LOG)
    if version in {"1", "2", "3"}:
        db.execute(_RECENT)
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
