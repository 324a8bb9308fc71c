"""Replays faithful to Segment's archives: time order across sources, Segment's duplicate rule.

Each test replays a bucket laid out as Segment's S3 destination writes it
(``segment-logs/<source>/<received-day>/<file>.gz``) into ``BrazeStandIn``, and
checks what Braze would have kept.
"""

from __future__ import annotations

import datetime as dt

import pytest
from commandline import KEY, cli, write_gz

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
