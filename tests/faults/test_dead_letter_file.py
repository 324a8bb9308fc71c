"""The dead-letter file: never an input, and an invalid line written once per state."""

from __future__ import annotations

import json

import pytest
from commandline import KEY, cli, jsonl, track

from segment_braze._replay.deadletter import DeadLetter
from segment_braze._replay.records import Record
from segment_braze._replay.usage import FileError
from segment_braze.testing import BrazeStandIn


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


@pytest.fixture
def archive(tmp_path):
    """Three good messages and two lines that are not JSON."""
    path = tmp_path / "archive.jsonl"
    path.write_text(jsonl([track(1), "not json {", track(2), "{broken", track(3)]))
    return path


def _entries(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestNotAnInput:
    """The dead-letter file may not be read as input, nor be a file the replay keeps."""

    def test_dead_letter_named_as_input(self, tmp_path, archive, braze):
        """``--dead-letter`` naming an input (by another path) is refused in one line, status 2."""
        before = archive.read_bytes()
        other_path = tmp_path / "." / "archive.jsonl"
        result = cli(
            "replay", archive, "--state", tmp_path / "s.sqlite",
            "--dead-letter", other_path, braze=braze,
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "is also an input" in result.stderr
        assert archive.read_bytes() == before
        assert braze.accepted_events == []

    def test_dead_letter_named_as_input_of_send(self, archive, braze):
        """``send`` refuses it too."""
        result = cli("send", archive, "--dead-letter", archive, braze=braze)
        assert result.returncode == 2
        assert "is also an input" in result.stderr

    def test_dead_letter_is_the_state(self, tmp_path, archive, braze):
        """The state file as the dead-letter file is refused."""
        state = tmp_path / "s.sqlite"
        result = cli("replay", archive, "--state", state, "--dead-letter", state, braze=braze)
        assert result.returncode == 2
        assert "a file the replay keeps" in result.stderr


class TestInvalidLinesOnce:
    """A resumed replay does not append the invalid lines an earlier run wrote."""

    def test_rerun_appends_no_invalid_line_again(self, tmp_path, archive, braze):
        """Two runs of one state: each invalid line is in the file once; both runs exit 1."""
        dead = tmp_path / "dead.jsonl"
        args = ("replay", archive, "--state", tmp_path / "s.sqlite", "--dead-letter", dead)
        for _ in range(2):
            result = cli(*args, braze=braze)
            assert result.returncode == 1, result.stderr
            assert "not JSON" in result.stderr  # still reported
        lines = [entry["line"] for entry in _entries(dead) if entry["outcome"] == "invalid"]
        assert sorted(lines) == ["not json {", "{broken"]

    def test_new_invalid_lines_are_appended(self, tmp_path, archive, braze):
        """An invalid line the file does not hold yet is appended."""
        dead = tmp_path / "dead.jsonl"
        args = ("replay", archive, "--state", tmp_path / "s.sqlite", "--dead-letter", dead)
        assert cli(*args, braze=braze).returncode == 1
        with archive.open("a") as file:
            file.write("garbage\n")
        assert cli(*args, braze=braze).returncode == 1
        lines = [entry["line"] for entry in _entries(dead) if entry["outcome"] == "invalid"]
        assert sorted(lines) == ["garbage", "not json {", "{broken"]


class TestWholeLines:
    """A line that cannot be written leaves nothing of itself in the file."""

    def test_failed_write_is_cut_off(self, tmp_path, monkeypatch):
        """A write that fails half-way is truncated away and raised as FileError."""
        path = tmp_path / "dead.jsonl"
        dead = DeadLetter(str(path))
        record = Record(source="a.jsonl", line=1, error="not JSON", text="x" * 100)
        dead.write(record, "invalid", "not JSON")
        whole = path.read_bytes()
        real_write = __import__("os").write

        def half_then_fail(fd, data):
            if len(data) > 10:
                return real_write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("segment_braze._replay.deadletter.os.write", half_then_fail)
        with pytest.raises(FileError, match="No space left on device"):
            dead.write(record, "invalid", "other reason")
        dead.close()
        assert path.read_bytes() == whole
