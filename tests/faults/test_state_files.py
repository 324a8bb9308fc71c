"""A damaged, empty or shared state file, and an attribute cache that is not ours.

Each is refused with one line and exit status 2, and the file is left as it
was: never a silent fresh start over what earlier runs recorded.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from commandline import KEY, cli, jsonl, track

from segment_braze._replay.identity import Identity
from segment_braze._replay.state import Claim, ReplayState
from segment_braze._replay.usage import FileError, UsageError
from segment_braze.testing import BrazeStandIn

_PAGE = 4096


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


@pytest.fixture
def archive(tmp_path):
    """A small JSON Lines archive."""
    path = tmp_path / "archive.jsonl"
    path.write_text(jsonl([track(n) for n in range(5)]))
    return path


def _big_state(path):
    """A real state file of many pages (rows written as a replay writes them)."""
    ReplayState(str(path)).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO sources (id, name) VALUES (1, 'src')")
        db.executemany(
            "INSERT INTO messages (source, id, time, status, run) VALUES (1, ?, ?, 1, 1)",
            [(f"message-{n:06d}-{'x' * 40}", n) for n in range(3000)],
        )
    assert path.stat().st_size > 20 * _PAGE


def _one_error_line(result):
    """The command's stderr is one error line; returns it."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("segment-braze: error: ")
    return lines[0]


class TestLockOnResolvedPath:
    """The replay lock belongs to the file, whatever path names it."""

    def test_symlink_is_the_same_state(self, tmp_path):
        """A replay through a symlink to a state in use is refused as busy."""
        real = tmp_path / "state.sqlite"
        link = tmp_path / "link.sqlite"
        link.symlink_to(real)
        with ReplayState(str(real)), pytest.raises(UsageError, match="is using the state file"):
            ReplayState(str(link))

    def test_other_relative_path_is_the_same_state(self, tmp_path, monkeypatch):
        """``./sub/../state.sqlite`` and ``state.sqlite`` are one state."""
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path)
        with (
            ReplayState("state.sqlite"),
            pytest.raises(UsageError, match=r"is using the state file \./sub/\.\./state"),
        ):
            ReplayState("./sub/../state.sqlite")

    def test_busy_through_symlink_from_the_command(self, tmp_path, archive, braze):
        """The command refuses a symlinked state another replay holds, in one line, status 2."""
        real = tmp_path / "state.sqlite"
        link = tmp_path / "link.sqlite"
        link.symlink_to(real)
        with ReplayState(str(real)):
            result = cli("replay", archive, "--state", link, braze=braze)
        assert result.returncode == 2
        assert "another segment-braze replay is using the state file" in _one_error_line(result)
        assert braze.accepted_events == []


class TestDamagedState:
    """An empty, truncated or corrupted state file: one line, exit status 2, left as it was."""

    def test_empty_file_is_refused(self, tmp_path, archive, braze):
        """A zero-byte state file is not taken for a new one (we never leave one)."""
        state = tmp_path / "state.sqlite"
        state.touch()
        result = cli("replay", archive, "--state", state, braze=braze)
        assert result.returncode == 2
        assert "is empty" in _one_error_line(result)
        assert state.stat().st_size == 0
        assert braze.accepted_events == []

    def test_empty_file_is_refused_in_a_dry_run(self, tmp_path, archive):
        """A dry run refuses an empty state file too."""
        state = tmp_path / "state.sqlite"
        state.touch()
        result = cli("replay", archive, "--state", state, "--dry-run")
        assert result.returncode == 2
        assert "is empty" in _one_error_line(result)

    @pytest.mark.parametrize("keep", [0.5, 0.9])
    def test_truncated_file_is_refused(self, tmp_path, archive, braze, keep):
        """A state file cut short is refused, and not touched."""
        state = tmp_path / "state.sqlite"
        _big_state(state)
        data = state.read_bytes()
        cut = data[: int(len(data) * keep) // _PAGE * _PAGE]
        state.write_bytes(cut)
        result = cli("replay", archive, "--state", state, braze=braze)
        assert result.returncode == 2
        assert "is damaged" in _one_error_line(result)
        assert state.read_bytes() == cut
        assert braze.accepted_events == []

    @pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
    def test_corrupted_page_is_refused(self, tmp_path, archive, braze, where):
        """Garbage in any page of the file is found before anything is sent."""
        state = tmp_path / "state.sqlite"
        _big_state(state)
        data = bytearray(state.read_bytes())
        page = int(len(data) * where) // _PAGE
        data[page * _PAGE + 8 : (page + 1) * _PAGE] = b"\xa5" * (_PAGE - 8)
        state.write_bytes(bytes(data))
        result = cli("replay", archive, "--state", state, braze=braze)
        assert result.returncode == 2
        assert "is damaged" in _one_error_line(result)
        assert state.read_bytes() == bytes(data)
        assert braze.accepted_events == []

    def test_garbage_header_is_refused(self, tmp_path, archive, braze):
        """A file that is not SQLite at all is refused, in one line."""
        state = tmp_path / "state.sqlite"
        state.write_bytes(b"not a database\n" * 500)
        result = cli("replay", archive, "--state", state, braze=braze)
        assert result.returncode == 2
        assert "is not a replay state file" in _one_error_line(result)


class TestCacheNotOurs:
    """An attribute-cache file that holds something else is refused, and left alone."""

    def test_other_database_is_refused(self, tmp_path, archive, braze):
        """``--dedup sqlite:PATH`` naming another program's database: one line, status 2."""
        other = tmp_path / "app.sqlite"
        with closing(sqlite3.connect(other)) as db, db:
            db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        before = other.read_bytes()
        result = cli(
            "replay",
            archive,
            "--state",
            tmp_path / "s.sqlite",
            "--dedup",
            f"sqlite:{other}",
            braze=braze,
        )
        assert result.returncode == 2
        assert "is not an attribute cache" in _one_error_line(result)
        assert other.read_bytes() == before
        assert braze.accepted_events == []

    def test_state_file_as_cache_is_refused(self, tmp_path, archive, braze):
        """Another replay's state file given as the cache is not written into."""
        other = tmp_path / "other-state.sqlite"
        ReplayState(str(other)).close()
        before = other.read_bytes()
        result = cli(
            "replay",
            archive,
            "--state",
            tmp_path / "s.sqlite",
            "--dedup",
            f"sqlite:{other}",
            braze=braze,
        )
        assert result.returncode == 2
        assert "is not an attribute cache" in _one_error_line(result)
        assert other.read_bytes() == before

    def test_not_sqlite_is_refused(self, tmp_path, archive, braze):
        """A cache file that is not SQLite at all: one line, status 2."""
        other = tmp_path / "cache.sqlite"
        other.write_bytes(b"hello\n" * 1000)
        result = cli(
            "replay",
            archive,
            "--state",
            tmp_path / "s.sqlite",
            "--dedup",
            f"sqlite:{other}",
            braze=braze,
        )
        assert result.returncode == 2
        assert "cannot use the attribute cache" in _one_error_line(result)
        assert other.read_bytes() == b"hello\n" * 1000

    def test_our_cache_is_reused(self, tmp_path, archive, braze):
        """A cache this command wrote is opened again without complaint."""
        cache = tmp_path / "cache.sqlite"
        for state in ("a.sqlite", "b.sqlite"):
            result = cli(
                "replay",
                archive,
                "--state",
                tmp_path / state,
                "--dedup",
                f"sqlite:{cache}",
                braze=braze,
            )
            assert result.returncode == 0, result.stderr


class _FailingCommits:
    """The state's writer, whose COMMIT fails as on a full disk."""

    def __init__(self, db):
        self._db = db

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def _identity(n):
    return Identity(source="src", id=f"m:{n}", time=1_714_550_400_000 + n)


class TestFailedCommit:
    """A commit that fails keeps the state consistent and stops the run."""

    def test_failed_commit_stops_claims_and_keeps_what_was_committed(self, tmp_path):
        """Claims after it raise FileError; close() releases the file; earlier commits stay."""
        path = str(tmp_path / "state.sqlite")
        state = ReplayState(path, commit_after=3600)  # commits only when asked
        for n in range(3):
            assert state.claim(_identity(n), ("in.jsonl", n + 1, None)).claim is Claim.NEW
            state.finish(_identity(n), "delivered")
        state.commit()
        assert state.claim(_identity(3), ("in.jsonl", 4, None)).claim is Claim.NEW
        state.finish(_identity(3), "delivered")
        state._db = _FailingCommits(state._db)
        with pytest.raises(FileError, match="the disk is full"):
            state.commit()
        state._db = state._db._db  # room again: the run is still over
        with pytest.raises(FileError):
            state.claim(_identity(4), ("in.jsonl", 5, None))
        with pytest.raises(FileError):
            state.close()
        with ReplayState(path) as again:  # unlocked, and only the commit that worked
            assert again.recorded() == {"delivered": 3, "failed": 0}
