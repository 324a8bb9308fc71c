"""A full disk under the state, the attribute cache or the dead-letter file.

Each file in turn runs out of room mid-run: the command stops with one line
and exit status 2, the state holds only what Braze decided, the dead-letter
file holds only whole lines, and once there is room again the same command
goes on and delivers everything.

Two ways to run out of room, each test runs with both: a small tmpfs filled up
to a few kB (mounting needs root; skipped, saying so, without it), and a
file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored so writes fail with
EFBIG) set in the command's process only, which works anywhere on POSIX.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from commandline import KEY, cli, command, environment, jsonl, numbers, recorded, track

from segment_braze.testing import BrazeStandIn

resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE needs POSIX")

MESSAGES = 3000
# What a full disk says: ENOSPC on a tmpfs; EFBIG, or SQLite's I/O error, at a size limit.
FULL = ("disk is full", "No space left on device", "File too large", "disk I/O error")


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


class Tmpfs:
    """A small tmpfs, filled up by a file named ``filler``."""

    def __init__(self, path):
        self.path = path

    def fill(self, *, leave):
        """Fill the disk up to ``leave`` bytes free."""
        stat = os.statvfs(self.path)
        free = stat.f_bavail * stat.f_frsize
        (self.path / "filler").write_bytes(b"\0" * max(0, free - leave))

    def empty(self):
        """Remove the filler: room again."""
        (self.path / "filler").unlink(missing_ok=True)

    def run(self, *args, braze):
        """Run the command."""
        return cli(*args, braze=braze, timeout=120)


class SizeLimit:
    """A folder where the command may grow no file past a limit (RLIMIT_FSIZE)."""

    def __init__(self, path):
        self.path = path
        self.limit = None

    def fill(self, *, leave):
        """Let each file grow by at most ``leave`` bytes past the largest there now."""
        sizes = [entry.stat().st_size for entry in self.path.iterdir() if entry.is_file()]
        self.limit = max(sizes, default=0) + leave

    def empty(self):
        """No limit: room again."""
        self.limit = None

    def run(self, *args, braze):
        """Run the command with the limit (the test process keeps none)."""
        limit = self.limit

        def limited():
            if limit is not None:
                import signal  # noqa: PLC0415 (in the child, before exec)

                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        result = subprocess.run(
            command(*args),
            env=environment(braze),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=limited,  # only signal() and setrlimit() run in the child
        )
        assert KEY not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result


def _mount(*args):
    return subprocess.run(
        ["mount", *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.fixture(params=["tmpfs", "size limit"])
def disk(request, tmp_path):
    """Room that runs out: a 4 MB tmpfs (needs root), or a file-size limit."""
    path = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    if request.param == "size limit":
        yield SizeLimit(path)
        return
    mounted = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", path)
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a small tmpfs to fill (needs root), so only the file-size-limit"
            f" variant runs: {mounted.stderr.strip()}"
        )
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def archive(tmp_path):
    """An archive of MESSAGES track calls, each a new user's."""
    path = tmp_path / "archive.jsonl"
    path.write_text(jsonl([track(n, userId=f"user-{n}") for n in range(MESSAGES)]))
    return path


def _one_error_line(result, what):
    """The run's stderr holds exactly one error line, naming ``what`` and a full disk."""
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert what in errors[0], errors[0]
    assert any(words in errors[0] for words in FULL), errors[0]
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
        result = disk.run(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "state file")
        delivered = numbers(braze)
        assert 0 < len(delivered) < MESSAGES, result.stderr  # it stopped mid-run
        # The state records only what Braze decided (no message is recorded unsent).
        assert recorded(state) <= len(delivered)

        disk.empty()
        again = disk.run(*args, braze=braze)
        assert again.returncode == 0, again.stderr
        assert set(numbers(braze)) == set(range(MESSAGES))  # nothing lost
        assert recorded(state) == MESSAGES

    def test_full_at_the_start(self, disk, archive, braze):
        """A state that cannot even start its run is one line, and nothing is sent."""
        state = disk.path / "state.sqlite"
        disk.fill(leave=0)
        result = disk.run("replay", archive, "--state", state, "--dedup", "none", braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "state file")
        assert braze.accepted_events == []


class TestCacheOnAFullDisk:
    """The attribute cache's disk fills up mid-run.

    ``send`` keeps no state, so the cache is the only file that grows, with either
    way of running out of room.
    """

    @pytest.mark.parametrize("processes", ["1", "2"])  # 2: the worker process holds the cache
    def test_stops_in_one_line_and_the_next_run_goes_on(self, tmp_path, disk, braze, processes):
        """One line, exit 2; the cache opens again, and the rerun delivers everything."""
        archive = tmp_path / "identify.jsonl"
        archive.write_text(jsonl([_identify(n) for n in range(MESSAGES)]))
        cache = disk.path / "cache.sqlite"
        args = ("send", archive, "--dedup", f"sqlite:{cache}", "--workers", "1")
        args += ("--processes", processes)
        disk.fill(leave=96 * 1024)  # the cache starts, then fills it
        result = disk.run(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "attribute cache")
        assert 0 < len(_users(braze)) < MESSAGES, result.stderr

        disk.empty()
        again = disk.run(*args, braze=braze)
        assert again.returncode == 0, again.stderr
        assert _users(braze) == {f"user-{n}" for n in range(MESSAGES)}


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
        result = disk.run(*args, braze=braze)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, "dead-letter file")
        data = dead.read_bytes()
        assert data.endswith(b"\n")
        first = [json.loads(line) for line in data.splitlines()]
        assert 0 < len(first) < len(bad)

        disk.empty()
        again = disk.run(*args, braze=braze)
        assert again.returncode == 1, again.stderr  # invalid lines: status 1
        lines = [json.loads(line) for line in dead.read_bytes().splitlines()]
        # Each invalid line once: those of the first run are not appended again.
        assert sorted(entry["line"] for entry in lines) == sorted(bad)
