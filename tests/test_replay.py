"""The replay state: claims, duplicates, resume, durability, and the commit before each request."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing

import pytest

from segment_braze import BrazeClient, Settings
from segment_braze._replay.identity import NO_TIME, Identity
from segment_braze._replay.state import Claim, ReplayState
from segment_braze._replay.usage import UsageError
from segment_braze.testing import BrazeStandIn

T0 = 1714521600000  # 2024-05-01T00:00:00Z in milliseconds
HOUR = 3_600_000


def ident(key, time=T0, source=""):
    """The identity of a message: its key (``m:<messageId>`` or ``h:...``), time and source."""
    return Identity(source=source, id=key, time=time)


def claim(state, key, time=T0, source="", where=("in.jsonl", 1, None)):
    """Claim a message and return only what to do with it."""
    return state.claim(ident(key, time, source), where).claim


@pytest.fixture
def state_path(tmp_path):
    """Where the state file goes."""
    return str(tmp_path / "state.sqlite")


def committed(path):
    """The rows another process would see: ``{id: (status, run)}``, folded, recent or logged."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT id, status, run FROM messages UNION ALL SELECT id, status, run FROM recent"
            " UNION ALL SELECT * FROM (SELECT id, status, run FROM log ORDER BY rowid)"
        ).fetchall()
    return {key: (status, run) for key, status, run in rows}


class TestClaims:
    """Within one run: new keys go out once; repeats are duplicates."""

    def test_new_then_duplicate_while_in_flight(self, state_path):
        """A key in flight is a duplicate, before Braze has answered."""
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.NEW
            assert claim(state, "m:1") is Claim.DUPLICATE
            assert state.in_flight == 1

    def test_duplicate_after_it_was_decided(self, state_path):
        """A key decided in this run (delivered or failed) is a duplicate."""
        with ReplayState(state_path) as state:
            for key, outcome in (("m:1", "delivered"), ("m:2", "failed")):
                claim(state, key)
                state.finish(ident(key), outcome)
                assert claim(state, key) is Claim.DUPLICATE
            assert state.in_flight == 0

    def test_released_message_is_looked_at_again_by_the_next_run(self, state_path):
        """A released message (dropped, never sent) still has duplicates; a later run retries it."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.release(ident("m:1"))
            assert claim(state, "m:1") is Claim.DUPLICATE
            state.commit()
            assert claim(state, "m:1", time=T0 + HOUR) is Claim.DUPLICATE
        with ReplayState(state_path) as state:
            assert state.decided(ident("m:1")) is None
            assert claim(state, "m:1") is Claim.NEW

    def test_recorded_counts(self, state_path):
        """The state counts what it records, by outcome."""
        with ReplayState(state_path) as state:
            for key, outcome in (("m:1", "delivered"), ("m:2", "delivered"), ("m:3", "failed")):
                claim(state, key)
                state.finish(ident(key), outcome)
            assert state.recorded() == {"delivered": 2, "failed": 1}


class TestResume:
    """A later run knows what earlier runs decided."""

    def test_delivered_earlier_is_skipped(self, state_path):
        """A key delivered by an earlier run is done."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            assert claim(state, "m:2") is Claim.NEW

    def test_failed_earlier_is_not_retried_by_default(self, state_path):
        """A key that failed in an earlier run is skipped unless asked."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "failed")
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.FAILED_EARLIER

    def test_retry_failed_sends_them_once(self, state_path):
        """With retry_failed, an earlier failure is new once, then a duplicate."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "failed")
        with ReplayState(state_path, retry_failed=True) as state:
            assert claim(state, "m:1") is Claim.NEW
            state.finish(ident("m:1"), "failed")
            assert claim(state, "m:1") is Claim.DUPLICATE
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.FAILED_EARLIER

    def test_each_run_is_numbered(self, state_path):
        """Runs are numbered and their start and end recorded."""
        for _ in range(2):
            with ReplayState(state_path):
                pass
        with closing(sqlite3.connect(state_path)) as db:
            rows = db.execute("SELECT id, started_at, finished_at FROM runs").fetchall()
        assert [row[0] for row in rows] == [1, 2]
        assert all(row[1] and row[2] for row in rows)


class TestDecided:
    """What the file says of a key, without claiming it (worker processes' pre-check)."""

    def test_fresh_state_is_not_resuming(self, state_path):
        """A new state has no history, and decides nothing."""
        with ReplayState(state_path) as state:
            assert not state.resuming
            assert state.decided(ident("m:1")) is None
            assert claim(state, "m:1") is Claim.NEW

    def test_earlier_runs(self, state_path):
        """Delivered and failed earlier are decided; a resumed state says it resumes."""
        with ReplayState(state_path) as state:
            for key, outcome in (("m:1", "delivered"), ("m:2", "failed")):
                claim(state, key)
                state.finish(ident(key), outcome)
        with ReplayState(state_path) as state:
            assert state.resuming
            assert state.decided(ident("m:1")) is Claim.DONE_EARLIER
            assert state.decided(ident("m:2")) is Claim.FAILED_EARLIER
            assert state.decided(ident("m:3")) is None
            assert state.in_flight == 0  # nothing was claimed

    def test_retry_failed_leaves_failures_undecided(self, state_path):
        """With retry_failed, an earlier failure is for claim() to decide."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "failed")
        with ReplayState(state_path, retry_failed=True) as state:
            assert state.decided(ident("m:1")) is None
            assert claim(state, "m:1") is Claim.NEW
            state.finish(ident("m:1"), "delivered")
            assert state.decided(ident("m:1")) is None  # this run's: for claim() to say
            assert claim(state, "m:1") is Claim.DUPLICATE

    def test_in_flight_is_not_decided(self, state_path):
        """A key in flight is undecided (claim() still answers duplicate)."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            assert state.decided(ident("m:1")) is None
            assert claim(state, "m:1") is Claim.DUPLICATE


class TestDurability:
    """Outcomes reach the disk in small transactions, visible to other processes."""

    def test_commit_makes_outcomes_visible(self, state_path):
        """Before commit() others see nothing; after it they see the outcome."""
        with ReplayState(state_path, commit_after=3600) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            assert committed(state_path) == {}
            state.commit()
            assert committed(state_path) == {"m:1": (1, state.run)}

    def test_commits_every_n_outcomes(self, state_path):
        """A burst of outcomes is committed at least every ``commit_every``."""
        with ReplayState(state_path, commit_every=3, commit_after=3600) as state:
            for n in range(4):
                claim(state, f"m:{n}")
                state.finish(ident(f"m:{n}"), "delivered")
            assert len(committed(state_path)) == 3

    def test_idle_outcomes_are_committed_soon(self, state_path):
        """With no further requests, the committer thread commits within commit_after."""
        with ReplayState(state_path, commit_after=0.01) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            for _ in range(500):
                if committed(state_path):
                    break
                threading.Event().wait(0.01)
            assert committed(state_path) == {"m:1": (1, state.run)}

    def test_close_commits_the_rest(self, state_path):
        """Closing commits whatever is pending."""
        state = ReplayState(state_path, commit_after=3600)
        claim(state, "m:1")
        state.finish(ident("m:1"), "delivered")
        state.close()
        assert committed(state_path) == {"m:1": (1, 1)}

    def test_close_folds_the_log_into_the_file(self, state_path):
        """After close, the state is one file: no write-ahead log is left beside it."""
        with ReplayState(state_path, commit_after=3600) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            state.commit()
            assert claim(state, "m:1") is Claim.DUPLICATE
        assert not os.path.exists(f"{state_path}-wal")
        assert committed(state_path) == {"m:1": (1, 1)}

    def test_client_commits_before_each_request(self, state_path):
        """The state's commit, given as the client's before_request hook, runs before a POST."""
        with ReplayState(state_path, commit_after=3600) as state, BrazeStandIn() as braze:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            seen = []

            def commit_then_look():
                state.commit()
                seen.append((committed(state_path), len(braze.requests)))

            settings = Settings(
                rest_api_key="test-key", rest_endpoint=braze.url, allow_custom_endpoint=True
            )
            message = {
                "type": "track",
                "userId": "u",
                "event": "E",
                "messageId": "m:2",
                "timestamp": "2024-05-01T12:00:00Z",
            }
            with BrazeClient(settings, before_request=commit_then_look, workers=1) as client:
                report = client.send([message])
            assert report.delivered == 1
            assert seen == [({"m:1": (1, state.run)}, 0)]


class TestOutcomesInMemory:
    """Outcomes wait in memory for the next commit; claims answer exactly meanwhile."""

    def test_decided_key_is_a_duplicate_before_and_after_its_commit(self, state_path):
        """A key stays a duplicate while its outcome waits in memory and once committed."""
        with ReplayState(state_path, commit_after=3600) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            assert committed(state_path) == {}
            assert claim(state, "m:1") is Claim.DUPLICATE
            state.commit()
            assert committed(state_path) == {"m:1": (1, state.run)}
            assert claim(state, "m:1") is Claim.DUPLICATE

    def test_one_commit_writes_every_waiting_outcome(self, state_path):
        """A commit writes the outcomes of every thread, not only the caller's."""
        with ReplayState(state_path, commit_after=3600) as state:
            for n in range(3):
                claim(state, f"m:{n}")
            threads = [
                threading.Thread(target=state.finish, args=(ident(f"m:{n}"), "failed"))
                for n in range(3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            state.commit()
            assert committed(state_path) == {f"m:{n}": (2, state.run) for n in range(3)}

    def test_committed_outcomes_survive_a_kill(self, state_path):
        """After SIGKILL, committed outcomes are skipped and uncommitted ones are sent again."""
        script = (
            "import os, signal, sys\n"
            "from segment_braze._replay.identity import Identity\n"
            "from segment_braze._replay.state import ReplayState\n"
            "state = ReplayState(sys.argv[1], commit_after=3600)\n"
            "one, two, three = (Identity('', f'm:{n}', 0) for n in (1, 2, 3))\n"
            "for identity in (one, two, three):\n"
            "    state.claim(identity, ('in', 1, None))\n"
            "state.finish(one, 'delivered')\n"
            "state.finish(two, 'failed')\n"
            "state.commit()\n"
            "state.finish(three, 'delivered')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        process = subprocess.run([sys.executable, "-c", script, state_path], check=False)
        assert process.returncode == -signal.SIGKILL
        with ReplayState(state_path) as state:
            assert claim(state, "m:1", time=0) is Claim.DONE_EARLIER
            assert claim(state, "m:2", time=0) is Claim.FAILED_EARLIER
            assert claim(state, "m:3", time=0) is Claim.NEW

    def test_claims_do_not_wait_for_the_writer(self, state_path):
        """Claims read through their own connection while a commit holds the writer."""
        with ReplayState(state_path, commit_after=3600) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            state.commit()
            claim(state, "m:2")
            answers = []
            with state._write_lock:  # as during a commit
                worker = threading.Thread(
                    target=lambda: answers.extend(
                        [claim(state, "m:1"), claim(state, "m:2"), claim(state, "m:3")]
                    )
                )
                worker.start()
                worker.join(timeout=60)  # a guard against a hang, not a timing
                assert not worker.is_alive()
            assert answers == [Claim.DUPLICATE, Claim.DUPLICATE, Claim.NEW]

    def test_claims_stay_exact_while_workers_commit(self, state_path):
        """Every repeat claim is a duplicate while other threads finish and commit."""
        count = 2000
        with ReplayState(state_path, commit_every=7, commit_after=3600) as state:
            todo: queue.Queue[str | None] = queue.Queue()

            def work():
                while (key := todo.get()) is not None:
                    state.finish(ident(key), "delivered")
                    state.commit()

            workers = [threading.Thread(target=work) for _ in range(3)]
            for worker in workers:
                worker.start()
            repeats = []
            for n in range(count):
                assert claim(state, f"m:{n}") is Claim.NEW
                todo.put(f"m:{n}")
                repeats += [claim(state, f"m:{n}"), claim(state, f"m:{n // 2}")]
            for _ in workers:
                todo.put(None)
            for worker in workers:
                worker.join()
            assert set(repeats) == {Claim.DUPLICATE}
            assert len(committed(state_path)) == count
            assert state.in_flight == 0


class TestDryRun:
    """A dry run reads the state and changes nothing."""

    def test_missing_state_is_not_created(self, state_path, tmp_path):
        """A dry run with a new state path leaves no file behind."""
        with ReplayState(state_path, dry_run=True) as state:
            assert claim(state, "m:1") is Claim.NEW
            state.finish(ident("m:1"), "delivered")
            assert claim(state, "m:1") is Claim.DUPLICATE
        assert list(tmp_path.iterdir()) == []

    def test_existing_state_is_read_and_left_unchanged(self, state_path):
        """A dry run sees earlier runs, and its own outcomes are rolled back."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
        before = committed(state_path)
        with ReplayState(state_path, dry_run=True) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            claim(state, "m:2")
            state.finish(ident("m:2"), "delivered")
            state.commit()
        assert committed(state_path) == before
        with closing(sqlite3.connect(state_path)) as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)

    def test_flushed_outcomes_are_still_duplicates(self, state_path):
        """A dry run writes outcomes past commit_every into its open transaction, still seen."""
        with ReplayState(state_path, dry_run=True, commit_every=2) as state:
            for n in range(5):
                claim(state, f"m:{n}")
                state.finish(ident(f"m:{n}"), "delivered")
            assert [claim(state, f"m:{n}") for n in range(5)] == [Claim.DUPLICATE] * 5
            assert state.recorded() == {"delivered": 5, "failed": 0}


class TestWrongFiles:
    """A file that is not a replay state, or is busy, is a usage error."""

    def test_not_a_database(self, state_path):
        """A text file is refused, and left as it was."""
        with open(state_path, "w") as file:
            file.write("hello\n" * 100)
        with pytest.raises(UsageError, match="is not a replay state file"):
            ReplayState(state_path)
        with open(state_path) as file:
            assert file.read() == "hello\n" * 100

    def test_another_sqlite_database(self, state_path):
        """Some other SQLite database is refused."""
        with closing(sqlite3.connect(state_path)) as db:
            db.execute("CREATE TABLE other (x)")
        with pytest.raises(UsageError, match="not a segment-braze replay state file"):
            ReplayState(state_path)

    def test_newer_version(self, state_path):
        """A state written by a newer version is refused in one line saying how to go on."""
        ReplayState(state_path).close()
        with closing(sqlite3.connect(state_path)) as db, db:
            db.execute("UPDATE meta SET value = '99' WHERE name = 'version'")
        with pytest.raises(UsageError, match="state version 99") as raised:
            ReplayState(state_path)
        assert "resume it with the version that wrote it, or give a new --state file" in str(
            raised.value
        )
        assert "\n" not in str(raised.value)

    def test_one_replay_at_a_time(self, state_path):
        """A second replay on a state in use is refused; after close it is free."""
        first = ReplayState(state_path)
        with pytest.raises(UsageError, match="another segment-braze replay"):
            ReplayState(state_path)
        first.close()
        ReplayState(state_path).close()

    def test_unwritable_location(self, tmp_path):
        """A state in a folder that does not exist is a usage error."""
        with pytest.raises(UsageError, match="cannot use the state file"):
            ReplayState(str(tmp_path / "missing" / "state.sqlite"))


class TestSegmentsRule:
    """Same source, same messageId, within the window of the first, by message time."""

    def test_within_the_window_names_the_first(self, state_path):
        """A messageId again within 24 hours, before or after, duplicates the first one."""
        with ReplayState(state_path) as state:
            assert claim(state, "m:1", where=("a.jsonl", 3, None)) is Claim.NEW
            for time in (T0 + 23 * HOUR, T0 - 23 * HOUR, T0 + 24 * HOUR):
                verdict = state.claim(ident("m:1", time), ("b.jsonl", 9, None))
                assert verdict == (Claim.DUPLICATE, "a.jsonl:3", False)

    def test_same_time_is_the_same_message(self, state_path):
        """A copy with the very same time is the same message, delivered twice."""
        with ReplayState(state_path) as state:
            claim(state, "m:1", where=("a.jsonl", 3, 2))
            verdict = state.claim(ident("m:1"), ("a.jsonl", 4, None))
            assert verdict == (Claim.DUPLICATE, "a.jsonl:3 item 2", True)

    def test_outside_the_window_is_another_message(self, state_path):
        """The same messageId over 24 hours later is a distinct message; its copies are its own."""
        with ReplayState(state_path) as state:
            assert claim(state, "m:1", where=("a.jsonl", 1, None)) is Claim.NEW
            assert claim(state, "m:1", T0 + 48 * HOUR, where=("a.jsonl", 2, None)) is Claim.NEW
            verdict = state.claim(ident("m:1", T0 + 30 * HOUR), ("a.jsonl", 3, None))
            assert verdict == (Claim.DUPLICATE, "a.jsonl:2", False)  # the nearer one

    def test_other_source_is_another_message(self, state_path):
        """The same messageId in another source is a distinct message."""
        with ReplayState(state_path) as state:
            assert claim(state, "m:1", source="web") is Claim.NEW
            assert claim(state, "m:1", source="ios") is Claim.NEW
            assert claim(state, "m:1", T0 + HOUR, source="ios") is Claim.DUPLICATE

    def test_a_window_of_zero(self, state_path):
        """With no window, only the same message (the same time) is a duplicate."""
        with ReplayState(state_path, window=0) as state:
            assert claim(state, "m:1") is Claim.NEW
            assert claim(state, "m:1", T0 + 1) is Claim.NEW
            assert claim(state, "m:1") is Claim.DUPLICATE

    def test_no_time(self, state_path):
        """Messages without a time are duplicates of each other only."""
        with ReplayState(state_path) as state:
            assert claim(state, "m:1", NO_TIME) is Claim.NEW
            assert claim(state, "m:1", NO_TIME) is Claim.DUPLICATE
            assert claim(state, "m:1", T0) is Claim.NEW

    def test_committed_first_is_still_named(self, state_path):
        """Once the first is committed, a duplicate still names where it was read."""
        with ReplayState(state_path) as state:
            claim(state, "m:1", where=("dir/a.jsonl", 7, None))
            state.finish(ident("m:1"), "delivered")
            state.commit()
            verdict = state.claim(ident("m:1", T0 + HOUR), ("b.jsonl", 1, None))
            assert verdict == (Claim.DUPLICATE, "dir/a.jsonl:7", False)

    @pytest.mark.parametrize("window", [-1, 3651 * 24 * HOUR])
    def test_window_is_bounded(self, state_path, window):
        """A negative window, or one over ten years, is refused."""
        with pytest.raises(ValueError, match="duplicate window"):
            ReplayState(state_path, window=window)


class TestAcrossRuns:
    """What an earlier run delivered is never sent again, whatever the window."""

    def deliver(self, state_path, *times, window=24 * HOUR):
        """A run that delivers m:1 at each of ``times``, read from first.jsonl."""
        with ReplayState(state_path, window=window) as state:
            for line, time in enumerate(times, 1):
                assert claim(state, "m:1", time, where=("first.jsonl", line, None)) is Claim.NEW
                state.finish(ident("m:1", time), "delivered")

    @pytest.mark.parametrize("window", [0, 24 * HOUR, 72 * HOUR])
    def test_the_same_message_is_done_whatever_the_window(self, state_path, window):
        """Each message delivered earlier is done, with any window, even one spanning both."""
        self.deliver(state_path, T0, T0 + 30 * HOUR)
        with ReplayState(state_path, window=window) as state:
            assert state.decided(ident("m:1", T0 + 30 * HOUR)) is Claim.DONE_EARLIER
            assert claim(state, "m:1", T0 + 30 * HOUR) is Claim.DONE_EARLIER
            assert claim(state, "m:1", T0) is Claim.DONE_EARLIER

    def test_within_the_window_of_an_earlier_run(self, state_path):
        """Another message within the window of one delivered earlier is its duplicate."""
        self.deliver(state_path, T0)
        with ReplayState(state_path) as state:
            assert state.decided(ident("m:1", T0 + HOUR)) is None
            verdict = state.claim(ident("m:1", T0 + HOUR), ("second.jsonl", 1, None))
            assert verdict == (Claim.DUPLICATE, "first.jsonl:1", False)
        with ReplayState(state_path, window=0) as state:
            assert claim(state, "m:1", T0 + HOUR) is Claim.NEW

    def test_failed_earlier_and_retried(self, state_path):
        """A failure is skipped, and with retry_failed sent again, its copies still duplicates."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.finish(ident("m:1"), "failed")
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.FAILED_EARLIER
        with ReplayState(state_path, retry_failed=True) as state:
            assert claim(state, "m:1") is Claim.NEW
            assert claim(state, "m:1", T0 + HOUR) is Claim.DUPLICATE


def version_1_state(path, rows):
    """A state file as segment-braze 0.1.0 wrote it: ``rows`` are (key, status, run)."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT)"
        )
        db.execute(
            "CREATE TABLE messages (key TEXT PRIMARY KEY, status INTEGER NOT NULL,"
            " run INTEGER NOT NULL) WITHOUT ROWID"
        )
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("format", "segment-braze replay state"), ("version", "1")],
        )
        db.execute("INSERT INTO runs VALUES (1, '2024-05-01T00:00:00+00:00', NULL)")
        db.executemany("INSERT INTO messages VALUES (?, ?, ?)", rows)


def meta(path):
    """The state file's meta table."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT name, value FROM meta"))


class TestVersion1:
    """A state 0.1.0 wrote keeps working: upgraded in place, its records still answer."""

    def test_its_records_answer(self, state_path):
        """Messages 0.1.0 delivered or failed are skipped, by messageId, in any source."""
        version_1_state(state_path, [("m:1", 1, 1), ("m:2", 2, 1)])
        with ReplayState(state_path) as state:
            assert state.resuming
            assert state.decided(ident("m:1", source="web")) is Claim.DONE_EARLIER
            assert claim(state, "m:1", source="web") is Claim.DONE_EARLIER
            assert claim(state, "m:1", T0 + 99 * HOUR) is Claim.DONE_EARLIER
            assert claim(state, "m:2") is Claim.FAILED_EARLIER
            assert claim(state, "m:3") is Claim.NEW
            state.finish(ident("m:3"), "delivered")
            assert state.recorded() == {"delivered": 2, "failed": 1}
        assert meta(state_path) == {
            "format": "segment-braze replay state",
            "version": "4",
            "upgraded_from": "1",
        }
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            assert claim(state, "m:3") is Claim.DONE_EARLIER

    def test_retried_failure_moves_to_the_new_records(self, state_path):
        """A 0.1.0 failure sent again with retry_failed is recorded anew, and counted once."""
        version_1_state(state_path, [("m:2", 2, 1)])
        with ReplayState(state_path, retry_failed=True) as state:
            assert claim(state, "m:2") is Claim.NEW
            state.finish(ident("m:2"), "delivered")
            assert state.recorded() == {"delivered": 1, "failed": 0}
        with ReplayState(state_path) as state:
            assert claim(state, "m:2") is Claim.DONE_EARLIER

    def test_a_dry_run_leaves_it_as_it_was(self, state_path):
        """A dry run reads a 0.1.0 state without upgrading the file."""
        version_1_state(state_path, [("m:1", 1, 1)])
        with ReplayState(state_path, dry_run=True) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
        assert meta(state_path)["version"] == "1"


def version_2_state(path, rows):
    """A version-2 state file (no log): ``rows`` are (id, time, status, run)."""
    with closing(sqlite3.connect(path)) as db, db:
        for statement in (
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL,"
            " finished_at TEXT)",
            "CREATE TABLE sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE messages (source INTEGER NOT NULL, id TEXT NOT NULL,"
            " time INTEGER NOT NULL, status INTEGER NOT NULL, run INTEGER NOT NULL,"
            " file INTEGER, line INTEGER, item INTEGER, PRIMARY KEY (source, id, time))"
            " WITHOUT ROWID",
            "CREATE TABLE legacy (key TEXT PRIMARY KEY, status INTEGER NOT NULL,"
            " run INTEGER NOT NULL) WITHOUT ROWID",
        ):
            db.execute(statement)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("format", "segment-braze replay state"), ("version", "2")],
        )
        db.execute("INSERT INTO runs VALUES (1, '2024-05-01T00:00:00+00:00', NULL)")
        db.execute("INSERT INTO sources VALUES (1, '')")
        db.executemany(
            "INSERT INTO messages (source, id, time, status, run) VALUES (1, ?, ?, ?, ?)", rows
        )


class TestVersion2:
    """A version-2 state (no log) is upgraded in place, and its records still answer."""

    def test_its_records_answer(self, state_path):
        """Delivered and failed messages of a version-2 file are skipped; the file becomes 3."""
        version_2_state(state_path, [("m:1", T0, 1, 1), ("m:2", T0, 2, 1)])
        with ReplayState(state_path) as state:
            assert state.resuming
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            assert claim(state, "m:2") is Claim.FAILED_EARLIER
            assert claim(state, "m:1", T0 + HOUR) is Claim.DUPLICATE
        assert meta(state_path) == {
            "format": "segment-braze replay state",
            "version": "4",
            "upgraded_from": "2",
        }

    def test_a_dry_run_leaves_it_as_it_was(self, state_path):
        """A dry run reads a version-2 state without upgrading the file."""
        version_2_state(state_path, [("m:1", T0, 1, 1)])
        with ReplayState(state_path, dry_run=True) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
        assert meta(state_path)["version"] == "2"


def version_3_state(path, rows):
    """A version-3 state file (a log, no recent table): ``rows`` are (id, time, status, run)."""
    version_2_state(path, rows)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE log (source INTEGER NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL,"
            " status INTEGER NOT NULL, run INTEGER NOT NULL, file INTEGER, line INTEGER,"
            " item INTEGER, legacy INTEGER NOT NULL)"
        )
        db.execute("UPDATE meta SET value = '3' WHERE name = 'version'")


class TestVersion3:
    """A version-3 state (no recent table) is upgraded in place, and its records still answer."""

    def test_its_records_answer(self, state_path):
        """Delivered and failed messages of a version-3 file are skipped; the file becomes 4."""
        version_3_state(state_path, [("m:1", T0, 1, 1), ("m:2", T0, 2, 1)])
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            assert claim(state, "m:2") is Claim.FAILED_EARLIER
            assert claim(state, "m:3") is Claim.NEW
            state.finish(ident("m:3"), "delivered")
        assert meta(state_path)["version"] == "4"
        assert meta(state_path)["upgraded_from"] == "3"
        assert keyed(state_path) == ({"m:1": 1, "m:2": 2, "m:3": 1}, {})

    def test_a_dry_run_leaves_it_as_it_was(self, state_path):
        """A dry run reads a version-3 state without upgrading the file."""
        version_3_state(state_path, [("m:1", T0, 1, 1)])
        with ReplayState(state_path, dry_run=True) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER
        assert meta(state_path)["version"] == "3"


def keyed(path):
    """The statuses in the main keyed table and in the recent one, each as ``{id: status}``."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return (
            dict(db.execute("SELECT id, status FROM messages")),
            dict(db.execute("SELECT id, status FROM recent")),
        )


def logged(path):
    """How many outcomes wait in the file's log, not merged into the keyed table yet."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM log").fetchone()[0])


class TestLog:
    """Commits append to a log, merged into the keyed table in sorted batches."""

    def test_commits_append_and_merges_move(self, state_path):
        """Outcomes wait in the log until ``merge_every`` of them, then move in one merge."""
        with ReplayState(state_path, commit_after=3600, merge_every=4) as state:
            for n in range(3):
                claim(state, f"m:{n}")
                state.finish(ident(f"m:{n}"), "delivered")
                state.commit()
            assert logged(state_path) == 3
            claim(state, "m:3")
            state.finish(ident("m:3"), "delivered")
            state.commit()
            assert logged(state_path) == 0
            assert len(committed(state_path)) == 4

    def test_claims_see_the_log_and_the_merged(self, state_path):
        """A message in the log, or merged, is still a duplicate of this run."""
        with ReplayState(state_path, commit_after=3600, merge_every=2) as state:
            for n in range(3):
                claim(state, f"m:{n}")
                state.finish(ident(f"m:{n}"), "delivered")
                state.commit()
            assert logged(state_path) == 1  # m:0 and m:1 merged, m:2 in the log
            for n in range(3):
                assert claim(state, f"m:{n}") is Claim.DUPLICATE
                assert claim(state, f"m:{n}", T0 + HOUR) is Claim.DUPLICATE

    def test_a_killed_runs_log_is_merged_on_opening(self, state_path):
        """What a run appended and never merged (it was killed) answers in the next run."""
        state = ReplayState(state_path, commit_after=3600)
        claim(state, "m:1")
        state.finish(ident("m:1"), "delivered")
        claim(state, "m:2")
        state.finish(ident("m:2"), "failed")
        state.commit()
        assert logged(state_path) == 2
        state._file_state.abandon()  # as if killed: no merge, no last commit
        with ReplayState(state_path) as again:
            assert logged(state_path) == 0
            assert again.resuming
            assert claim(again, "m:1") is Claim.DONE_EARLIER
            assert claim(again, "m:2") is Claim.FAILED_EARLIER
            assert claim(again, "m:1", T0 + HOUR) is Claim.DUPLICATE

    def test_the_last_outcome_wins(self, state_path):
        """Two outcomes of one message in the log merge in the order they were appended."""
        ReplayState(state_path).close()
        with closing(sqlite3.connect(state_path)) as db, db:
            db.execute("INSERT INTO sources (id, name) VALUES (1, '')")
            db.executemany(
                "INSERT INTO log (source, id, time, status, run, legacy) VALUES (1, ?, ?, ?, 1, 0)",
                [("m:1", T0, 3), ("m:2", T0, 1), ("m:1", T0, 1), ("m:2", T0, 3)],
            )
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER  # seen, then delivered
            assert claim(state, "m:2") is Claim.NEW  # delivered, then seen: looked at again


class TestRecent:
    """Merges go to a small table of recent outcomes, folded into the main one in large steps."""

    def test_merges_fill_recent_and_folds_empty_it(self, state_path):
        """Every ``merge_every`` outcomes go to the recent table; ``fold_every`` of them move on."""
        with ReplayState(state_path, commit_after=3600, merge_every=2, fold_every=4) as state:
            for n in range(6):
                claim(state, f"m:{n}")
                state.finish(ident(f"m:{n}"), "delivered")
                state.commit()
                if n == 1:
                    assert keyed(state_path) == ({}, {"m:0": 1, "m:1": 1})
                if n == 3:
                    assert keyed(state_path) == ({f"m:{k}": 1 for k in range(4)}, {})
            assert keyed(state_path) == ({f"m:{k}": 1 for k in range(4)}, {"m:4": 1, "m:5": 1})
            for n in range(6):
                assert claim(state, f"m:{n}", T0 + HOUR) is Claim.DUPLICATE
        assert keyed(state_path) == ({f"m:{k}": 1 for k in range(6)}, {})

    @pytest.mark.parametrize("ahead", [False, True], ids=["claimed", "looked-up-ahead"])
    def test_a_recent_row_wins_over_an_earlier_runs(self, state_path, ahead):
        """A message seen earlier and delivered now is this run's, not sent twice in one run."""
        with ReplayState(state_path) as state:
            claim(state, "m:1")
            state.release(ident("m:1"))  # seen: the next run looks at it again
        with ReplayState(state_path, commit_after=3600, merge_every=1) as state:
            assert claim(state, "m:1") is Claim.NEW
            state.finish(ident("m:1"), "delivered")
            state.commit()  # merged into recent; the earlier run's row is still in messages
            assert keyed(state_path) == ({"m:1": 3}, {"m:1": 1})
            if ahead:
                state.look_ahead([ident("m:1")])
            assert claim(state, "m:1") is Claim.DUPLICATE
        with ReplayState(state_path) as state:
            assert claim(state, "m:1") is Claim.DONE_EARLIER

    def test_a_large_look_ahead_reads_both_tables(self, state_path):
        """2,000 ids looked up at once, half in the recent table: each answers as it should."""
        merged = [f"m:{n}" for n in range(1_000)]
        unknown = [f"u:{n}" for n in range(1_000)]
        with ReplayState(state_path, commit_after=3600, merge_every=1_000) as state:
            for key in merged:
                claim(state, key)
                state.finish(ident(key), "delivered")
            state.commit()  # all merged into recent
            assert len(keyed(state_path)[1]) == 1_000
            state.look_ahead([ident(key, T0 + HOUR) for key in merged + unknown])
            assert all(claim(state, key, T0 + HOUR) is Claim.DUPLICATE for key in merged)
            assert all(claim(state, key, T0 + HOUR) is Claim.NEW for key in unknown)

    def test_a_killed_runs_recent_is_folded_on_opening(self, state_path):
        """What a killed run merged and never folded answers in the next run, from one table."""
        state = ReplayState(state_path, commit_after=3600, merge_every=1)
        claim(state, "m:1")
        state.finish(ident("m:1"), "delivered")
        state.commit()
        assert keyed(state_path) == ({}, {"m:1": 1})
        state._file_state.abandon()  # as if killed: no fold, no last commit
        with ReplayState(state_path) as again:
            assert keyed(state_path) == ({"m:1": 1}, {})
            assert claim(again, "m:1") is Claim.DONE_EARLIER


class TestLookAhead:
    """Claims looked up ahead in one query answer exactly as claims looked up alone."""

    def test_same_verdicts(self, state_path):
        """Done, failed, within the window, and unknown: the same answers from the chunk."""
        with ReplayState(state_path) as state:
            for key, outcome in (("m:1", "delivered"), ("m:2", "failed")):
                claim(state, key)
                state.finish(ident(key), outcome)
        with ReplayState(state_path) as state:
            wanted = [ident("m:1"), ident("m:2"), ident("m:1", T0 + HOUR), ident("m:9")]
            state.look_ahead(wanted)
            assert state.decided(ident("m:1")) is Claim.DONE_EARLIER
            assert claim(state, "m:1") is Claim.DONE_EARLIER
            assert claim(state, "m:2") is Claim.FAILED_EARLIER
            assert claim(state, "m:1", T0 + HOUR) is Claim.DUPLICATE
            assert claim(state, "m:1", T0 + 25 * HOUR) is Claim.NEW  # not looked up
            assert claim(state, "m:9") is Claim.NEW
            assert claim(state, "m:9") is Claim.DUPLICATE

    def test_a_merge_forgets_what_was_looked_up(self, state_path):
        """After a merge moves this run's messages into the file, none is missed."""
        with ReplayState(state_path, commit_after=3600, merge_every=1) as state:
            state.look_ahead([ident("m:1"), ident("m:2")])  # both unknown then
            claim(state, "m:1")
            state.finish(ident("m:1"), "delivered")
            state.commit()  # merged: m:1 leaves memory for the file
            assert logged(state_path) == 0
            assert claim(state, "m:1") is Claim.DUPLICATE
            assert claim(state, "m:1", T0 + HOUR) is Claim.DUPLICATE
            assert claim(state, "m:2") is Claim.NEW
