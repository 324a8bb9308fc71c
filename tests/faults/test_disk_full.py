"""A full disk under the state, the attribute cache or the dead-letter file.

Each file in turn sits on a small tmpfs that fills up mid-run: the command
stops with one line and exit status 2, the state holds only what Braze
decided, the dead-letter file holds only whole lines, and once there is room
again the same command goes on and delivers everything. Mounting needs root
(CAP_SYS_ADMIN); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from commandline import KEY, cli, jsonl, numbers, recorded, track

from segment_braze.testing import BrazeStandIn

MESSAGES = 3000


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


class Disk:
    """A tmpfs of a given size, mounted for one test."""

    def __init__(self, path):
        self.path = path

    def fill(self, *, leave):
        """Fill the disk up to ``leave`` bytes free, with a file named ``filler``."""
        stat = os.statvfs(self.path)
        free = stat.f_bavail * stat.f_frsize
        (self.path / "filler").write_bytes(b"\0" * max(0, free - leave))

    def empty(self):
        """Remove the filler: room again."""
        (self.path / "filler").unlink(missing_ok=True)


def _mount(*args):
    return subprocess.run(
        ["mount", *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.fixture
def disk(tmp_path):
    """A 4 MB tmpfs (skipped, saying why, where mounting is not allowed)."""
    path = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", path)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def archive(tmp_path):
    """An archive of MESSAGES track calls, each a new user's (so the cache grows too)."""
    path = tmp_path / "archive.jsonl"
    path.write_text(jsonl([track(n, userId=f"user-{n}", traits={"n": n}) for n in range(MESSAGES)]))
    return path


def _one_error_line(result, *words):
    """The run's stderr holds exactly one error line, naming ``words``; returns it."""
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


class TestStateOnAFullDisk:
    """The state's disk fills up mid-run."""

    def test_stops_in_one_line_and_the_next_run_goes_on(self, disk, archive, braze):
        """One line, exit 2; every recorded message was delivered; the rerun sends the rest."""
        state = disk.path / "state.sqlite"
        args = ("replay", archive, "--state", state, "--dedup", "none", "--workers", "1")
        # A first run on an empty archive creates the state, then the disk fills.
        empty = disk.path.parent / "empty.jsonl"
        empty.write_text("")
        assert cli("replay", empty, "--state", state, braze=braze).returncode == 0
        disk.fill(leave=96 * 1024)  # the run starts, then fills it
        result = cli(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "state file", "disk is full")
        delivered = numbers(braze)
        assert 0 < len(delivered) < MESSAGES, result.stderr  # it stopped mid-run
        # The state records only what Braze decided (no message is recorded unsent).
        assert recorded(state) <= len(delivered)

        disk.empty()
        again = cli(*args, braze=braze)
        assert again.returncode == 0, again.stderr
        assert set(numbers(braze)) == set(range(MESSAGES))  # nothing lost
        assert recorded(state) == MESSAGES

    def test_full_at_the_start(self, disk, archive, braze):
        """A state that cannot even start its run is one line, and nothing is sent."""
        state = disk.path / "state.sqlite"
        disk.fill(leave=0)
        result = cli("replay", archive, "--state", state, "--dedup", "none", braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "state file")
        assert braze.accepted_events == []


class TestCacheOnAFullDisk:
    """The attribute cache's disk fills up mid-run (the state is elsewhere)."""

    def test_stops_in_one_line_and_the_next_run_goes_on(self, tmp_path, disk, braze):
        """One line, exit 2; the rerun delivers the rest, each message once recorded."""
        archive = tmp_path / "identify.jsonl"
        archive.write_text(jsonl([_identify(n) for n in range(MESSAGES)]))
        state = tmp_path / "state.sqlite"
        cache = disk.path / "cache.sqlite"
        args = ("replay", archive, "--state", state, "--dedup", f"sqlite:{cache}")
        disk.fill(leave=96 * 1024)  # the cache starts, then fills it
        result = cli(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "attribute cache", "disk is full")
        assert 0 < len(_users(braze)) < MESSAGES, result.stderr

        disk.empty()
        again = cli(*args, braze=braze)
        assert again.returncode == 0, again.stderr
        assert _users(braze) == {f"user-{n}" for n in range(MESSAGES)}
        assert recorded(state) == MESSAGES


def _identify(n):
    """An identify call of a new user with a few traits (so the cache grows)."""
    return {
        "type": "identify",
        "userId": f"user-{n}",
        "traits": {"plan": f"plan-{n}-" + "p" * 40, "seats": n},
        "messageId": f"identify-{n}",
        "timestamp": "2024-05-01T12:00:00Z",
    }


def _users(braze):
    """The users whose attributes reached Braze."""
    return {attributes["external_id"] for attributes in braze.accepted_attributes}


class TestDeadLetterOnAFullDisk:
    """The dead-letter file's disk fills up mid-run."""

    def test_no_half_written_line(self, tmp_path, disk, braze):
        """One line, exit 2, every line of the file whole; the rerun adds only what is missing."""
        archive = tmp_path / "bad.jsonl"
        bad = [f"not json {n} " + "x" * 200 for n in range(2000)]
        archive.write_text(jsonl(bad))
        state = tmp_path / "state.sqlite"
        dead = disk.path / "dead.jsonl"
        args = ("replay", archive, "--state", state, "--dead-letter", dead, "--quiet")
        disk.fill(leave=100 * 1024)
        result = cli(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "dead-letter file", "No space left on device")
        data = dead.read_bytes()
        assert data.endswith(b"\n")
        first = [json.loads(line) for line in data.splitlines()]
        assert 0 < len(first) < len(bad)

        disk.empty()
        again = cli(*args, braze=braze)
        assert again.returncode == 1, again.stderr  # invalid lines: status 1
        lines = [json.loads(line) for line in dead.read_bytes().splitlines()]
        # Each invalid line once: those of the first run are not appended again.
        assert sorted(entry["line"] for entry in lines) == sorted(bad)
