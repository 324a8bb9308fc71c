"""Replays faithful to Segment's archives: time order across sources, Segment's duplicate rule.

Each test replays a bucket laid out as Segment's S3 destination writes it
(``segment-logs/<source>/<received-day>/<file>.gz``) into ``BrazeStandIn``, and
checks what Braze would have kept.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time as time_module

import pytest
from commandline import (
    BATCH,
    KEY,
    WORKERS,
    cli,
    command,
    environment,
    numbers,
    recorded,
    write_gz,
)
from test_replay import version_1_state

from segment_braze.testing import BrazeStandIn

HOUR = 3_600_000
DAY = 24 * HOUR
MAY_1 = 1714521600000  # 2024-05-01T00:00:00Z in milliseconds


def iso(ms):
    """A Segment timestamp for a Unix time in milliseconds."""
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def archive_path(root, source, day, time):
    """Where Segment's S3 destination writes a file of ``source`` received on ``day``."""
    return root / "segment-logs" / source / str(day) / f"{time}.{source[-4:]}.gz"


def identify(user, step, time, source, **fields):
    """An identify of ``user`` setting trait ``step``, as Segment archives it."""
    return {
        "type": "identify",
        "userId": user,
        "traits": {"step": step},
        "timestamp": iso(time),
        "receivedAt": iso(time),
        "messageId": f"{source}-{step}-{user}",
        "projectId": source,
    } | fields


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def two_source_bucket(root, *, days=3, slots=4, users=5):
    """Two sources writing in turn, so that only time order gives the last write.

    Every message sets the trait ``step`` to its place in time. Slot ``s`` of each
    day belongs to one source, in turn; the last slot of all is ``src-a``'s,
    which sorts first by name: read source by source, ``src-b``'s older values
    would be written last.

    Returns:
        The steps each user must end with, read in time order and read by name.
    """
    step = 0
    by_file = []
    for day in range(days):
        received = MAY_1 + day * DAY
        for slot in range(slots):
            source = ("src-b", "src-a")[slot % 2]
            time = received + (slot + 1) * HOUR
            items = []
            for user in range(users):
                step += 1
                items.append(identify(f"user-{user}", step, time + user * 1000, source))
            path = write_gz(archive_path(root, source, received, time), items)
            by_file.append((source, received, time, path, items))
    in_time = {}
    for *_, items in by_file:
        in_time |= {item["userId"]: item["traits"]["step"] for item in items}
    by_name = {}
    for *_, items in sorted(by_file, key=lambda entry: entry[:3]):
        by_name |= {item["userId"]: item["traits"]["step"] for item in items}
    return in_time, by_name


class TestTimeOrder:
    """Sources are interleaved in time order, so Braze keeps the last write."""

    @pytest.mark.parametrize("processes", [1, 2])
    def test_final_profiles_follow_time_across_sources(self, braze, tmp_path, processes):
        """Each profile ends with the latest identify of either source, not of the last source."""
        in_time, by_name = two_source_bucket(tmp_path / "bucket")
        assert in_time != by_name  # read by name, the profiles would end stale
        state = tmp_path / "state.sqlite"
        args = ("replay", tmp_path / "bucket", "--state", state, "--processes", processes)
        result = cli(*args, braze=braze)
        assert result.returncode == 0, result.stderr
        profiles = braze.profiles
        assert {user: profiles[("external_id", user)]["step"] for user in in_time} == in_time

    def test_since_skips_files_received_long_before(self, braze, tmp_path):
        """--since skips whole received days ended over a day before it, and says so."""
        for day in range(5):
            received = MAY_1 + day * DAY
            path = archive_path(tmp_path / "bucket", "src-a", received, received + HOUR)
            write_gz(path, [identify("u", day, received + HOUR, "src-a")])
        # Received on 2024-05-05, after --until, but it happened on 2024-05-04 (a phone
        # was offline): files received after --until are read.
        late = archive_path(tmp_path / "bucket", "src-b", MAY_1 + 4 * DAY, MAY_1 + 4 * DAY + 1)
        write_gz(late, [identify("v", 99, MAY_1 + 3 * DAY + 10 * HOUR, "src-b")])
        state = tmp_path / "state.sqlite"
        result = cli(
            "replay", tmp_path / "bucket", "--state", state, "--since", "2024-05-04",
            "--until", "2024-05-05", braze=braze,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = result.stdout.splitlines()
        # Days 1 and 2 ended over a day before 2024-05-04; day 3 is within the margin.
        assert report[0] == "segment-braze replay: 4 messages read from 4 inputs"
        assert report[1] == (
            "2 files skipped unread: Segment received them more than a day before --since"
        )
        assert "           2  delivered" in report  # 2024-05-04's, and the late one
        assert "           2  outside --since/--until" in report
        assert braze.profiles[("external_id", "v")]["step"] == 99
        result = cli("replay", tmp_path / "bucket", "--state", state, braze=braze)
        assert result.returncode == 0, result.stderr
        assert "skipped unread" not in result.stdout
        assert "           4  delivered" in result.stdout.splitlines()
        assert braze.profiles[("external_id", "u")]["step"] == 4


def event(n, message_id, time, source, *, project=True):
    """A track call numbered ``n`` with a given messageId, time and source."""
    message = {
        "type": "track",
        "event": "Order Completed" if n % 2 else "Song Played",
        "userId": f"user-{n % 3}",
        "properties": {"n": n},
        "timestamp": iso(time),
        "messageId": message_id,
    }
    return message | ({"projectId": source} if project else {})


def reused_ids_bucket(root):
    """A bucket where ids are reused: copies, within the window, later, in another source.

    Returns:
        The first file, where the first occurrences are.
    """
    a, b = "src-a", "src-b"
    first = write_gz(
        archive_path(root, a, MAY_1, MAY_1 + HOUR),
        [event(1, "order-1", MAY_1 + 10 * HOUR, a), event(2, "song-2", MAY_1 + 11 * HOUR, a)],
    )
    write_gz(
        archive_path(root, a, MAY_1, MAY_1 + 20 * HOUR),
        [
            event(3, "order-1", MAY_1 + 20 * HOUR, a),  # 10 hours after: Segment's duplicate
            event(2, "song-2", MAY_1 + 11 * HOUR, a),  # delivered twice: the same message
        ],
    )
    write_gz(
        archive_path(root, a, MAY_1 + 2 * DAY, MAY_1 + 2 * DAY + HOUR),
        [event(4, "order-1", MAY_1 + 2 * DAY + 10 * HOUR, a)],  # 48 hours after: new
    )
    write_gz(  # another source, no projectId: the folder names the source
        archive_path(root, b, MAY_1, MAY_1 + 2 * HOUR),
        [event(5, "order-1", MAY_1 + 10 * HOUR, b, project=False)],
    )
    return first


class TestDuplicates:
    """Segment's rule: same source, same messageId, within the window of the first."""

    def test_inside_and_outside_the_window_and_across_sources(self, braze, tmp_path):
        """Only Segment's duplicates are skipped, each dead-lettered naming the first; exit 0."""
        first = reused_ids_bucket(tmp_path / "bucket")
        state, dead = tmp_path / "state.sqlite", tmp_path / "dead.jsonl"
        args = ("replay", tmp_path / "bucket", "--state", state, "--dead-letter", dead)
        result = cli(*args, braze=braze)
        assert result.returncode == 0, result.stderr  # only duplicates were skipped
        assert numbers(braze) == {1: 1, 2: 1, 4: 1, 5: 1}
        report = result.stdout.splitlines()
        assert "           4  delivered" in report
        assert (
            "           2  duplicates skipped (the same source and messageId within 24 hours)"
            in report
        )
        entries = [json.loads(line) for line in dead.read_text().splitlines()]
        assert [(e["outcome"], e["messageId"], e["duplicate_of"]) for e in entries] == [
            ("duplicate", "order-1", f"{first}:1"),
            ("duplicate", "song-2", f"{first}:2"),
        ]
        assert [e["reason"] for e in entries] == [
            f"duplicate of {first}:1 (same source and messageId within 24 hours)",
            f"duplicate of {first}:2 (same source, messageId and time)",
        ]
        assert entries[0]["message"]["properties"] == {"n": 3}

        # Again: nothing is sent; what was delivered is done, the duplicate is one again.
        requests = len(braze.requests)
        again = cli(*args, braze=braze)
        assert (again.returncode, len(braze.requests)) == (0, requests)
        report = again.stdout.splitlines()
        assert "           5  skipped, delivered by an earlier run" in report
        assert (
            "           1  duplicates skipped (the same source and messageId within 24 hours)"
            in report
        )

    @pytest.mark.parametrize(
        ("hours", "sent"), [("0", {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}), ("72", {1: 1, 2: 1, 5: 1})]
    )
    def test_the_window_is_an_option(self, braze, tmp_path, hours, sent):
        """--dedup-window 0 skips only the same message again; a wider one skips more."""
        reused_ids_bucket(tmp_path / "bucket")
        state = tmp_path / "state.sqlite"
        args = ("replay", tmp_path / "bucket", "--state", state, "--dedup-window", hours)
        result = cli(*args, braze=braze)
        assert result.returncode == 0, result.stderr
        assert numbers(braze) == sent

    def test_a_later_run_with_another_window_sends_nothing_twice(self, braze, tmp_path):
        """Messages delivered with no window are never sent again with Segment's window."""
        reused_ids_bucket(tmp_path / "bucket")
        state = tmp_path / "state.sqlite"
        args = ("replay", tmp_path / "bucket", "--state", state)
        assert cli(*args, "--dedup-window", "0", braze=braze).returncode == 0
        result = cli(*args, braze=braze)
        assert result.returncode == 0, result.stderr
        assert numbers(braze) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
        # The five, and the copy of song-2: the same message as one of them.
        assert "           6  skipped, delivered by an earlier run" in result.stdout.splitlines()

    def test_stdin_is_one_source(self, braze, tmp_path):
        """Without projectId or segment-logs folders, the whole input is one source."""
        items = [event(1, "x", MAY_1, "a", project=False), event(2, "x", MAY_1 + HOUR, "b")]
        items.append(event(3, "x", MAY_1 + 2 * HOUR, "b", project=False))
        stdin = "".join(json.dumps(item) + "\n" for item in items)
        result = cli("replay", "-", "--state", tmp_path / "s.sqlite", braze=braze, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert numbers(braze) == {1: 1, 2: 1}  # 3 duplicates 1; 2 has its own source


class TestStateOfVersion1:
    """A replay state written by 0.1.0 keeps working."""

    def test_resumes_without_sending_what_it_delivered(self, braze, tmp_path):
        """Messages a 0.1.0 state records are skipped; the rest are sent, and recorded anew."""
        reused_ids_bucket(tmp_path / "bucket")
        state = tmp_path / "state.sqlite"
        version_1_state(state, [("m:order-1", 1, 1)])
        args = ("replay", tmp_path / "bucket", "--state", state)
        result = cli(*args, braze=braze)
        assert result.returncode == 0, result.stderr
        # 0.1.0 knew order-1 by its messageId alone: every order-1 counts as delivered.
        assert numbers(braze) == {2: 1}
        assert "           4  skipped, delivered by an earlier run" in result.stdout.splitlines()
        assert f"state: {state} records 2 delivered and 0 failed messages" in result.stdout
        again = cli(*args, braze=braze)
        assert again.returncode == 0, again.stderr
        assert numbers(braze) == {2: 1}


class TestKilledAndResumed:
    """A multi-source replay killed with SIGKILL and run again: nothing lost, little twice."""

    @pytest.mark.parametrize("processes", [1, 2])
    def test_killed_during_a_multi_source_replay(self, tmp_path, processes):
        """After SIGKILL and the same command: every message once, at most a window twice."""
        root, count, steps = tmp_path / "bucket", 0, {}
        for day in range(2):
            received = MAY_1 + day * DAY
            for slot in range(3):
                for source in ("src-a", "src-b"):
                    time = received + (slot + 1) * HOUR + (source == "src-b") * 60_000
                    items = [
                        event(count + k, f"{source}-{count + k}", time + k, source)
                        for k in range(150)
                    ]
                    items += items[:5]  # copies Segment delivered twice
                    items.append(identify("user-p", count, time + 200, source))
                    steps["user-p"] = count
                    count += 150
                    write_gz(archive_path(root, source, received, time), items)
        state = tmp_path / "state.sqlite"
        args = ("replay", root, "--state", state, "--workers", WORKERS, "--processes", processes)
        with BrazeStandIn(api_key=KEY, latency=0.15) as braze:
            process = subprocess.Popen(
                command(*args),
                env=environment(braze),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time_module.monotonic() + 30
                while recorded(state) < count // 3 and time_module.monotonic() < deadline:
                    assert process.poll() is None, "finished before it could be killed"
                    time_module.sleep(0.01)
                assert recorded(state) < count, "finished before it could be killed"
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
            resumed = cli(*args, braze=braze)
            assert resumed.returncode == 0, resumed.stderr
            seen = numbers(braze)
            profile = braze.profiles[("external_id", "user-p")]
        assert set(seen) == set(range(count))  # nothing lost
        assert sum(seen.values()) - count <= WORKERS * BATCH  # at most one window twice
        assert recorded(state) == count + 12  # the events and the identifies
        assert profile["step"] == steps["user-p"]  # the last write is still the last
