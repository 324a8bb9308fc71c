"""Segment's S3 layout: which files are in it, their time order across sources, and skipping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from segment_braze._replay.inputs import expand_paths
from segment_braze._replay.layout import (
    ArchiveFile,
    archive_file,
    folder_source,
    received_long_before,
)

DAY = 86_400_000
MAY_1 = 1714521600000  # 2024-05-01T00:00:00Z in milliseconds


def touch(root, *names):
    """Create empty files under ``root``."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def relative(root, files):
    """The found files relative to ``root``, as POSIX paths."""
    return [Path(file).relative_to(root).as_posix() for file in files]


class TestArchiveFile:
    """A file is in the layout when its path ends in segment-logs/<source>/<day>/<file>."""

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (
                f"b/segment-logs/Zx8k/{MAY_1}/{MAY_1 + 3600000}.b8d1e2f4.gz",
                ArchiveFile(source="Zx8k", day=MAY_1, time=MAY_1 + 3600000),
            ),
            (
                f"segment-logs/Zx8k/{MAY_1}/events.gz",
                ArchiveFile(source="Zx8k", day=MAY_1, time=None),
            ),
            (f"b/segment-logs/Zx8k/2024-05-01/{MAY_1}.gz", None),  # the day is not a number
            (f"b/logs/Zx8k/{MAY_1}/{MAY_1}.gz", None),
            (f"b/segment-logs/Zx8k/{MAY_1}/deeper/{MAY_1}.gz", None),
            ("-", None),
        ],
    )
    def test_layout(self, path, expected):
        """The source, received day and file time come from the path, or nothing does."""
        assert archive_file(path) == expected

    def test_relative_paths_are_resolved(self, tmp_path, monkeypatch):
        """A path named from inside the layout is still in it."""
        folder = tmp_path / "segment-logs" / "src" / str(MAY_1)
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        assert archive_file("1.gz") == ArchiveFile(source="src", day=MAY_1, time=1)
        assert folder_source("1.gz") == "src"

    @pytest.mark.parametrize(
        ("path", "source"),
        [
            (f"bucket/segment-logs/Zx8k/{MAY_1}/a.gz", "Zx8k"),
            ("bucket/segment-logs/Zx8k/anything/else.json", "Zx8k"),
            ("bucket/segment-logs/a.gz", None),
            ("bucket/logs/Zx8k/a.gz", None),
            ("-", None),
        ],
    )
    def test_folder_source(self, path, source):
        """The source is the folder under segment-logs, at any depth below it."""
        assert folder_source(path) == source


class TestTimeOrder:
    """A folder's files in the layout are merged across sources by day, then file time."""

    def test_sources_interleave_by_day_and_file_time(self, tmp_path):
        """Day 1 of both sources comes before day 2 of either, each day by file time."""
        touch(
            tmp_path,
            f"segment-logs/A/{MAY_1}/{MAY_1 + 7200000}.x.gz",
            f"segment-logs/A/{MAY_1}/{MAY_1 + 100}.x.gz",
            f"segment-logs/A/{MAY_1 + DAY}/{MAY_1 + DAY + 5}.x.gz",
            f"segment-logs/B/{MAY_1}/{MAY_1 + 3600000}.y.gz",
            f"segment-logs/B/{MAY_1 + DAY}/{MAY_1 + DAY + 1}.y.gz",
            f"segment-logs/B/{MAY_1 + DAY}/manual.json",
        )
        files, skipped = expand_paths([str(tmp_path)])
        assert skipped == 0
        assert relative(tmp_path, files) == [
            f"segment-logs/A/{MAY_1}/{MAY_1 + 100}.x.gz",
            f"segment-logs/B/{MAY_1}/{MAY_1 + 3600000}.y.gz",
            f"segment-logs/A/{MAY_1}/{MAY_1 + 7200000}.x.gz",
            f"segment-logs/B/{MAY_1 + DAY}/{MAY_1 + DAY + 1}.y.gz",
            f"segment-logs/A/{MAY_1 + DAY}/{MAY_1 + DAY + 5}.x.gz",
            f"segment-logs/B/{MAY_1 + DAY}/manual.json",  # no time in its name: last of its day
        ]

    def test_numbers_compare_as_numbers(self, tmp_path):
        """Times of different lengths sort by value, not as text."""
        touch(tmp_path, "segment-logs/A/9/10.gz", "segment-logs/B/9/9.gz", "segment-logs/A/10/1.gz")
        files, _ = expand_paths([str(tmp_path)])
        assert relative(tmp_path, files) == [
            "segment-logs/B/9/9.gz",
            "segment-logs/A/9/10.gz",
            "segment-logs/A/10/1.gz",
        ]

    def test_a_source_folder_given_alone(self, tmp_path):
        """One source's folder is read by day and file time too."""
        touch(tmp_path, f"segment-logs/A/{MAY_1 + DAY}/1.gz", f"segment-logs/A/{MAY_1}/2.gz")
        root = tmp_path / "segment-logs" / "A"
        files, _ = expand_paths([str(root)])
        assert relative(root, files) == [f"{MAY_1}/2.gz", f"{MAY_1 + DAY}/1.gz"]

    def test_other_folders_keep_name_order(self, tmp_path):
        """Beside the layout, other files keep name order; so do named files, as given."""
        touch(
            tmp_path,
            "exports/b.jsonl",
            "exports/a.jsonl",
            f"segment-logs/B/{MAY_1}/1.gz",
            f"segment-logs/A/{MAY_1}/2.gz",
        )
        files, _ = expand_paths([str(tmp_path)])
        assert relative(tmp_path, files) == [
            "exports/a.jsonl",
            "exports/b.jsonl",
            f"segment-logs/B/{MAY_1}/1.gz",
            f"segment-logs/A/{MAY_1}/2.gz",
        ]
        named = [str(tmp_path / f"segment-logs/A/{MAY_1}/2.gz"), str(tmp_path / "exports/b.jsonl")]
        assert expand_paths(named) == (named, 0)


class TestReceivedLongBefore:
    """Files Segment received more than a day before --since hold nothing in the window."""

    @pytest.mark.parametrize(
        ("day", "since", "skipped"),
        [
            (MAY_1, "2024-05-03T00:00:00Z", True),  # the whole day ended a day before
            (MAY_1, "2024-05-02T23:59:59Z", False),  # within the day's margin
            (MAY_1, "2024-05-01T12:00:00Z", False),
            (MAY_1 + 10 * DAY, "2024-05-03T00:00:00Z", False),  # after --since: always read
        ],
    )
    def test_margin_of_a_day(self, day, since, skipped):
        """A received day is skipped only when it ended over a day before --since."""
        moment = dt.datetime.fromisoformat(since)
        assert received_long_before(f"segment-logs/A/{day}/1.gz", moment) is skipped

    def test_files_outside_the_layout_are_always_read(self):
        """Nothing is known of a file's time outside the layout, so it is read."""
        moment = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        assert not received_long_before("exports/2020.jsonl", moment)
        assert not received_long_before("-", moment)
