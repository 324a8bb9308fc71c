"""Inputs that cannot be read: each is reported, counts as invalid input, and the rest is read.

Running as root, permissions do not stop reads, so unreadable inputs are made
honestly otherwise: a symbolic link to nothing, a symbolic link loop, a file
whose reads fail (``/proc/self/mem`` fails with EIO at offset 0), and, for a
folder that cannot be listed, an OSError injected where ``os.walk`` lists it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from commandline import cli, jsonl, output_lines, track

from segment_braze._replay import inputs
from segment_braze._replay.inputs import expand_paths, read_source

_MEM = Path("/proc/self/mem")


@pytest.fixture
def folder(tmp_path):
    """A folder with two good files and three that cannot be read."""
    root = tmp_path / "archive"
    (root / "day").mkdir(parents=True)
    (root / "day" / "a.jsonl").write_text(jsonl([track(1)]))
    (root / "day" / "z.jsonl").write_text(jsonl([track(2)]))
    (root / "day" / "gone.jsonl").symlink_to(root / "day" / "missing.jsonl")
    (root / "day" / "loop.jsonl").symlink_to(root / "day" / "loop.jsonl")
    return root


class TestUnreadableInFolder:
    """Unreadable entries in an input folder are reported and make the exit status 1."""

    def test_reported_and_the_rest_read(self, folder):
        """A link to nothing and a loop are each reported; the good files are still read."""
        result = cli("translate", folder)
        assert result.returncode == 1
        assert "gone.jsonl: cannot read: a symbolic link to nothing" in result.stderr
        assert "loop.jsonl: cannot read: a symbolic link loop" in result.stderr
        lines = output_lines(result)
        assert [line["messageId"] for line in lines if line["error"] is None] == [
            "msg-1",
            "msg-2",
        ]

    @pytest.mark.skipif(not _MEM.exists(), reason="needs /proc/self/mem (Linux)")
    def test_file_whose_reads_fail(self, folder):
        """A file that opens but fails to read (EIO) is reported, not a traceback."""
        (folder / "day" / "mem.jsonl").symlink_to(_MEM)
        result = cli("translate", folder)
        assert result.returncode == 1
        assert "mem.jsonl:1: cannot read: [Errno 5] Input/output error" in result.stderr

    def test_named_loop(self, tmp_path):
        """A loop named on the command line is reported as a loop, status 1."""
        loop = tmp_path / "loop.jsonl"
        loop.symlink_to(loop)
        result = cli("translate", loop)
        assert result.returncode == 1
        assert "loop.jsonl: cannot read: a symbolic link loop" in result.stderr

    def test_folder_symlink_loop_is_not_followed(self, folder):
        """A folder linking to its parent is not walked into, so reading ends."""
        (folder / "day" / "up").symlink_to(folder)
        result = cli("translate", folder)
        assert result.returncode == 1  # the two unreadable files of the fixture
        assert len([line for line in output_lines(result) if line["error"] is None]) == 2


class TestUnlistableFolder:
    """A sub-folder that cannot be listed is kept as an input and reported when read."""

    def test_kept_by_expand_paths(self, folder, monkeypatch):
        """``os.walk``'s error for a sub-folder puts that folder in the inputs."""
        (folder / "locked").mkdir()
        real = os.scandir

        def scandir(path):
            if Path(path).name == "locked":
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        files, _ = expand_paths([str(folder)])
        assert str(folder / "locked") in files

    def test_reported_when_read(self, tmp_path, monkeypatch):
        """Reading a folder that cannot be listed gives one error record naming why."""
        locked = tmp_path / "locked"
        locked.mkdir()

        def listdir(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))

        monkeypatch.setattr(inputs.os, "listdir", listdir)
        (record,) = read_source(str(locked))
        assert record.error == "cannot read the folder: Permission denied"
