"""The resumable state of a replay: an SQLite file of the messages each run claimed.

One file per replay (``--state``); :mod:`segment_braze._replay.statefile` opens
it and holds its tables. A message is known by its identity (:mod:`segment_braze._replay.identity`):
its source, its ``messageId`` (or a digest of its content) and its time. So the
state does not depend on file names or line numbers: the same archive found
under another path, or piped on stdin, resumes just the same.

Every message is claimed before it is sent, and the claim applies Segment's
duplicate rule: a message is a **duplicate** when this run already claimed a
message of the same source and id within ``window`` milliseconds of it (by the
messages' times), or the file holds one from an earlier run; a duplicate is
skipped and the answer says where the message it duplicates was read. A
message the file holds with the very same time is the **same message**: when an
earlier run delivered it, it is skipped as done, whatever the window (0 turns
the window off). A message a version-1 state (0.1.0) recorded by its
``messageId`` alone counts as delivered or failed earlier. Each claim looks in
memory first, then in the file: the caller may look a chunk of messages up in
the file in one query ahead of claiming them (:meth:`ReplayState.look_ahead`),
else a claim is one indexed lookup.

Outcomes are committed in small transactions, in WAL mode: before each request
the sender makes (:meth:`ReplayState.commit`, called by the sender's hook), and
otherwise at most ``commit_after`` seconds after an outcome arrives. So a
worker's outcomes are on disk before it sends its next batch, and a process
killed at any point, even with SIGKILL, re-sends at most one batch per worker:
the one in flight, or the last one answered, never both.

A commit appends the outcomes to the file's log; every ``merge_every`` outcomes
the log is merged, sorted by key, into a table of the run's recent outcomes, and
every ``fold_every`` that table into the main one (both also when the run ends),
so that no step's cost per message grows with the state (see
:mod:`segment_braze._replay.stateschema`).

Memory holds the messages claimed and not merged yet (in flight, waiting for the
next commit, or in the log), at most about ``merge_every`` plus those in flight.
Claims read both keyed tables, in one statement, through a second, read-only
connection, which in WAL mode never waits for the writer. That is exact because
a message leaves memory only once the merge that moves it into the recent table
has finished: at any moment, a message this run claimed is either still held in
memory or in a keyed table, and a claim checks memory first. A log or recent
table a killed run left is merged and folded when the file is opened.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterable
from typing import Final, Literal, NoReturn

from segment_braze._replay import claims, statefile
from segment_braze._replay.claims import EARLIER, NEW, Claim, Claimed, Position, Verdict
from segment_braze._replay.identity import Identity
from segment_braze._replay.keyfilter import KeyFilter
from segment_braze._replay.statefile import DELIVERED, FAILED, SEEN, Row, damaged, open_state
from segment_braze._replay.usage import FileError

__all__ = ["DAY", "MAX_WINDOW", "Claim", "Position", "ReplayState", "Verdict"]

DAY: Final = 86_400_000
"""Segment's look-back window for duplicate messageIds, in milliseconds."""
MAX_WINDOW: Final = 3650 * DAY
"""The longest window: far below the distance from any time to ``NO_TIME``."""
_STATUS: Final = {"delivered": DELIVERED, "failed": FAILED}
_KEEP: Final = 16_384  # messages looked up ahead and kept (a few chunks of the feed's)


class ReplayState:
    """The record of which messages each run claimed, shared by every run of a replay.

    Thread-safe: the reading thread claims messages, the sender's worker
    threads finish them.

    Args:
        path: the SQLite file (created when missing).
        dry_run: read the state but never write it; a missing file is not created.
        retry_failed: treat messages that failed in an earlier run as new.
        window: the duplicate window in milliseconds (0: only the same message).
        commit_every: commit after this many outcomes at the latest.
        commit_after: commit at most this many seconds after an outcome arrives.
        merge_every: merge the log into the recent table after this many outcomes.
        fold_every: fold the recent table into the main one after this many outcomes.

    Raises:
        UsageError: the file is not a replay state, is from a newer version, or
            another replay is using it.
        ValueError: a window below 0 or above :data:`MAX_WINDOW`.
    """

    def __init__(
        self,
        path: str,
        *,
        dry_run: bool = False,
        retry_failed: bool = False,
        window: int = DAY,
        commit_every: int = 500,
        commit_after: float = 0.1,
        merge_every: int = 50_000,
        fold_every: int = 500_000,
    ) -> None:
        if not 0 <= window <= MAX_WINDOW:
            raise ValueError(f"the duplicate window must be 0 to {MAX_WINDOW} ms, not {window}")
        self.path = path
        # Whether earlier runs recorded messages (read when the file is opened).
        self.resuming = False
        self.dry_run = dry_run
        self.retry_failed = retry_failed
        self.window = window
        self._commit_every = commit_every
        self._merge_every = merge_every
        self._fold_every = fold_every
        self._recent = 0  # outcomes merged into the recent table since its last fold
        self._recent_keys = KeyFilter(fold_every)  # the keys merged since then
        # Locks are taken in this order: a connection's (_read_lock, _write_lock;
        # one lock in a dry run), then _lock. _lock guards the collections below
        # and is held only to read or change them, never around SQLite.
        self._lock = threading.Lock()
        self._claimed: dict[tuple[str, str], list[Claimed]] = {}  # not committed yet
        self._settled: list[tuple[tuple[str, str], Claimed]] = []  # outcome known
        self._logged: list[tuple[tuple[str, str], Claimed]] = []  # in the log
        # The file's rows of the messages looked up ahead (look_ahead), by
        # (source number, id); valid until the next merge changes the file.
        self._ahead: dict[tuple[int, str], list[Row]] = {}
        self._merges = 0  # how many merges this run made (under _lock)
        self._in_flight = 0
        self._files: dict[str, int] = {}  # input names this run met, and their ids
        self._names: dict[int, str] = {}
        self._new_files: list[tuple[int, str]] = []  # not committed yet
        opened = open_state(path, dry_run=dry_run)
        self._file_state = opened
        self._db, self._reader = opened.db, opened.reader
        self.run = opened.run
        self.resuming = opened.resuming
        self._legacy = opened.legacy  # whether a version-1 state's rows are there
        self._next_file = opened.next_file
        self._sources = opened.sources  # every source's number
        self._new_sources: list[tuple[int, str]] = []  # not committed yet
        self._last_file = ("", 0)  # the input of the last claim, and its number
        # The writer (outcomes, commits, the run's row): the sender's threads and
        # the committer thread take turns with it under _write_lock. The reader
        # (claims and decided()) has its own lock, but for a dry run, which reads
        # its own open transaction through the writer.
        self._write_lock = threading.Lock()
        self._read_lock = self._write_lock if dry_run else threading.Lock()
        self._stop = threading.Event()
        # The first commit that failed (a full disk): every later claim and
        # commit raises it, so the run stops with one line.
        self._fault: FileError | None = None
        self._committer: threading.Thread | None = None
        if not dry_run:
            self._committer = threading.Thread(
                target=self._commit_loop,
                args=(commit_after,),
                name="segment-braze-state",
                daemon=True,
            )
            self._committer.start()

    def claim(self, identity: Identity, position: Position) -> Verdict:
        """Say whether to send a message; a NEW one is now in flight.

        Args:
            identity: the message's identity.
            position: where it was read, for the report of its duplicates.
        """
        if self._fault is not None:
            raise self._fault
        source, key, time = identity
        slot = (source, key)
        # The read lock serialises claims, so no other claim can add a message
        # between the checks of memory and the file below; a commit can only
        # take messages out of memory, and only once they are in the file.
        with self._read_lock:
            with self._lock:
                entries = self._claimed.get(slot)
                held = claims.nearest(entries, time, self.window) if entries else None
            row, earlier, legacy = self._lookup(identity)
            if earlier is not None:
                return EARLIER[earlier]
            if held is not None:
                first = claims.place(self._names[held.file], held.line, held.item)
                return Verdict(Claim.DUPLICATE, first=first, same=held.time == time)
            if row is not None and (row[2] == self.run or row[0] != time):
                first = self._where(row[3], row[4], row[5])
                return Verdict(Claim.DUPLICATE, first=first, same=row[0] == time)
            name, line, item = position
            file = self._last_file[1] if name == self._last_file[0] else self._file(name)
            number = self._sources.get(source) or self._source(source)
            entry = Claimed(number, time, file, line, item, legacy=legacy)
            with self._lock:
                if entries is None:
                    self._claimed[slot] = [entry]
                else:
                    entries.append(entry)
                self._in_flight += 1
            return NEW

    def look_ahead(self, identities: Iterable[Identity]) -> None:
        """Look messages about to be claimed up in the file, one query per source.

        Their claims (and :meth:`decided`) then answer from memory. The last
        :data:`_KEEP` messages looked up are kept, so a caller may look a few
        chunks ahead of its claims.
        """
        wanted: dict[int, set[str]] = {}
        for source, key, _ in identities:
            number = self._sources.get(source)
            if number is not None:  # else no message of that source was ever recorded
                wanted.setdefault(number, set()).add(key)
        with self._read_lock:
            with self._lock:
                merges = self._merges
            found = statefile.look_up(self._reader, wanted, self._recent_keys.may_hold)
            with self._lock:
                # A merge since the query moved this run's messages out of memory
                # into the file: what the query read may miss them.
                if merges == self._merges:
                    self._ahead.update(found)
                    for slot in list(
                        itertools.islice(self._ahead, max(0, len(self._ahead) - _KEEP))
                    ):
                        del self._ahead[slot]  # the oldest

    def _lookup(self, identity: Identity) -> tuple[Row | None, Claim | None, bool]:
        """Look a message up in the file (called with the read lock held).

        Returns:
            The recorded message nearest in time within the window (the same
            message first), what an earlier run decided of this very message
            (``None``: nothing that stops it), and whether a version-1 row names it.
        """
        source, key, time = identity
        number = self._sources.get(source)
        if number is not None:  # else no message of that source was ever recorded
            with self._lock:
                ahead = self._ahead.get((number, key))
            low, high = time - self.window, time + self.window
            if ahead is not None:
                rows = [row for row in ahead if low <= row[0] <= high]
            else:
                maybe = self._recent_keys.may_hold(number, key)
                rows = statefile.within(self._reader, number, key, low, high, recent=maybe)
            if rows:
                row = min(rows, key=lambda row: abs(row[0] - time))  # the same one first
                same_earlier = row[2] != self.run and row[0] == time
                return row, self._earlier(row[1]) if same_earlier else None, False
        if self._legacy:
            found = self._reader.execute("SELECT status FROM legacy WHERE key = ?", (key,))
            status = found.fetchone()
            if status is not None:
                return None, self._earlier(int(status[0])), True
        return None, None, False

    def _earlier(self, status: int) -> Claim | None:
        """What an earlier run's record of the same message says; None: send it."""
        if status == DELIVERED:
            return Claim.DONE_EARLIER
        if status == FAILED and not self.retry_failed:
            return Claim.FAILED_EARLIER
        return None  # seen but not decided, or a failure to retry: look at it again

    def _source(self, name: str) -> int:
        """The number of a source, given one if it is new (called with the read lock held)."""
        number = self._sources.get(name)
        if number is None:
            number = len(self._sources) + 1
            self._sources[name] = number
            with self._lock:
                self._new_sources.append((number, name))
        return number

    def _file(self, name: str) -> int:
        """The id of an input's name (called with the read lock held)."""
        file = self._files.get(name)
        if file is None:
            row = self._reader.execute("SELECT id FROM files WHERE name = ?", (name,)).fetchone()
            if row is not None:
                file = int(row[0])
            else:
                file, self._next_file = self._next_file, self._next_file + 1
                with self._lock:
                    self._new_files.append((file, name))
            self._files[name] = file
            self._names[file] = name
        self._last_file = (name, file)
        return file

    def _where(self, file: int | None, line: int | None, item: int | None) -> str:
        """Where a recorded message was read (called with the read lock held)."""
        name = self._names.get(file) if file is not None else None
        if name is None and file is not None:
            row = self._reader.execute("SELECT name FROM files WHERE id = ?", (file,)).fetchone()
            name = row[0] if row is not None else None
        return claims.place(name or "an earlier run's input", line, item)

    def decided(self, identity: Identity) -> Claim | None:
        """What earlier runs decided of this very message, without claiming it.

        Returns:
            ``DONE_EARLIER`` or ``FAILED_EARLIER`` when an earlier run recorded the
            same message (or a version-1 state its ``messageId``) as not to be sent
            again, else ``None``. A message that is not ``None`` here answers the
            same in every later :meth:`claim` of this run: no claim of this run can
            change that record.
        """
        with self._read_lock:
            return self._lookup(identity)[1]

    def release(self, identity: Identity) -> None:
        """Settle a claimed message Braze did not decide (dropped, invalid, never sent).

        Later copies in this run are still its duplicates; later runs look at it again.
        """
        self._settle(identity, SEEN)

    def finish(self, identity: Identity, outcome: Literal["delivered", "failed"]) -> None:
        """Record what Braze decided for a claimed message (written by the next commit)."""
        self._settle(identity, _STATUS[outcome])

    def _settle(self, identity: Identity, status: int) -> None:
        slot = (identity.source, identity.id)
        with self._lock:
            for entry in self._claimed.get(slot, ()):
                if entry.time == identity.time and not entry.status:
                    entry.status = status
                    self._settled.append((slot, entry))
                    self._in_flight -= 1
                    break
            due = len(self._settled) >= self._commit_every
        if due:
            self.commit()

    def commit(self) -> None:
        """Make the outcomes recorded so far durable (nothing in a dry run).

        When this returns, every outcome :meth:`finish` recorded before the call
        is in the file, whichever thread's commit wrote it.
        """
        with self._write_lock:
            self._commit()

    def _commit(self, *, merging: bool = False) -> None:
        # Called with the write lock held. Appends to the log, then merges it
        # (in a transaction of its own) when it is long enough, or asked to.
        if self._fault is not None:
            raise self._fault
        with self._lock:
            settled, self._settled = self._settled, []
            files, self._new_files = self._new_files, []
            sources, self._new_sources = self._new_sources, []
        if settled or files or sources:
            try:
                rows = [
                    (e.source, key, e.time, e.status, self.run, e.file, e.line, e.item, e.legacy)
                    for (_, key), e in settled
                ]
                statefile.append(self._db, rows, files, sources, commit=not self.dry_run)
            except sqlite3.Error as err:
                # Nothing of this commit is in the file (SQLite rolled it back, or
                # we do): the messages stay in memory, so this run still knows them,
                # and the next run sends them again. Nothing recorded is lost.
                with self._lock:
                    self._settled[:0] = settled
                    self._new_files[:0] = files
                    self._new_sources[:0] = sources
                self._fail(err)
            # Durable, but only in the log: claims still find them in memory.
            self._logged.extend(settled)
        if merging or len(self._logged) >= self._merge_every:
            self._merge(fold=merging)

    def _merge(self, *, fold: bool) -> None:
        # Called with the write lock held, between transactions.
        try:
            self._recent += statefile.merge(self._db, commit=not self.dry_run)
        except sqlite3.Error as err:
            # The log is intact in the file and the messages in memory: a later
            # merge (or the next run's opening) moves them.
            self._fail(err)
        merged, self._logged = self._logged, []
        for (_, key), entry in merged:
            self._recent_keys.add(entry.source, key)
        # Only now may claims find these messages in the file rather than in memory
        # (a dry run's reader is the writer, which sees its own transaction).
        with self._lock:
            self._ahead = {}
            self._merges += 1
            for slot, entry in merged:
                entries = self._claimed[slot]
                entries.remove(entry)
                if not entries:
                    del self._claimed[slot]
        if self._recent and (fold or self._recent >= self._fold_every):
            # A transaction of its own. Claims read recent and messages as one, so
            # it changes no answer, and what was looked up ahead stays true.
            try:
                statefile.fold(self._db, commit=not self.dry_run)
            except sqlite3.Error as err:
                self._fail(err)  # recent is intact: the next run's opening folds it
            self._recent = 0
            self._recent_keys.clear()

    def _fail(self, err: sqlite3.Error) -> NoReturn:
        """Roll back the open transaction and stop the run with one line."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if not self.dry_run:
            self._db.execute("BEGIN")
        self._fault = damaged(self.path, err)
        raise self._fault from err

    def _commit_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.commit()
            except FileError:
                return  # kept in _fault: the reading thread's next claim raises it

    @property
    def in_flight(self) -> int:
        """How many claimed messages have no outcome yet."""
        with self._lock:
            return self._in_flight

    def recorded(self) -> dict[str, int]:
        """How many messages the state records as delivered and as failed."""
        with self._write_lock:
            self._commit(merging=True)
            rows = statefile.counts(self._db)
        return {name: rows.get(status, 0) for name, status in _STATUS.items()}

    def close(self) -> None:
        """Commit what is pending (nothing in a dry run) and release the file."""
        self._stop.set()
        if self._committer is not None:
            self._committer.join()
        # The claims are over (the caller is the reading thread); the sender's
        # threads may still be settling outcomes, hence the write lock.
        with self._write_lock:
            try:
                if not self.dry_run:
                    self._commit(merging=True)
                self._file_state.close()
            except FileError:
                self._file_state.abandon()
                raise
            except sqlite3.Error as err:  # the run's last row, or its commit
                self._file_state.abandon()
                raise damaged(self.path, err) from err

    def __enter__(self) -> ReplayState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
