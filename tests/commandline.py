"""Running the segment-braze console script in tests, and the messages and archives it reads.

The REST API key reaches the command through the environment only, and every
run checks that it never appears in what the command prints.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

KEY = "rest-key-5e1d2c3b-never-printed"
SCRIPT = Path(sys.executable).with_name("segment-braze")
WORKERS = 2
BATCH = 75  # Braze: at most 75 objects per /users/track request


def environment(braze=None, *, key=KEY, **extra):
    """The command's environment: ours without BRAZE_*, plus the stand-in's endpoint."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BRAZE_")}
    if braze is not None:
        env |= {
            "BRAZE_REST_API_KEY": key,
            "BRAZE_REST_ENDPOINT": braze.url,
            "BRAZE_ALLOW_CUSTOM_ENDPOINT": "1",
        }
    return env | extra


def command(*args):
    """The argv of the installed console script (``python -m`` where it is missing)."""
    if SCRIPT.exists():
        return [str(SCRIPT), *map(str, args)]
    return [sys.executable, "-m", "segment_braze", *map(str, args)]  # pragma: no cover


def cli(*args, braze=None, env=None, stdin=None, timeout=60, cwd=None):
    """Run segment-braze; check the key never shows and no traceback escapes."""
    result = subprocess.run(
        command(*args),
        env=env if env is not None else environment(braze),
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert KEY not in result.stdout
    assert KEY not in result.stderr
    assert "Traceback" not in result.stderr
    return result


def track(n, *, day=1, message_id=True, **fields):
    """A track call numbered ``n`` (properties.n), for one of seven users."""
    message = {
        "type": "track",
        "event": "Played",
        "userId": f"user-{n % 7}",
        "properties": {"n": n},
        "timestamp": f"2024-05-{day:02d}T12:00:00Z",
    }
    if message_id:
        message["messageId"] = f"msg-{n}"
    return message | fields


def page(n):
    """A page call, which default settings drop (page tracking is off)."""
    return {
        "type": "page",
        "userId": "user-1",
        "name": "Home",
        "timestamp": "2024-05-01T12:00:00Z",
        "messageId": f"page-{n}",
    }


def jsonl(items):
    """JSON Lines of messages; strings are written as they are (corrupt lines)."""
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


def write_gz(path, items):
    """Write a gzipped JSON Lines archive, as Segment's S3 archives are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(jsonl(items).encode()))
    return path


def numbers(braze):
    """How many times each numbered event reached Braze."""
    return collections.Counter(event["properties"]["n"] for event in braze.accepted_events)


def recorded(state):
    """Messages the state file records as delivered or failed, as another process sees it."""
    try:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
            # The keyed tables, oldest first, then the log not merged yet, in
            # order: the last one wins.
            query = (
                "SELECT source, id, time, status FROM messages"
                " UNION ALL SELECT source, id, time, status FROM recent"
                " UNION ALL SELECT * FROM (SELECT source, id, time, status FROM log ORDER BY rowid)"
            )
            statuses = {
                (source, key, time): status for source, key, time, status in db.execute(query)
            }
            return sum(status in {1, 2} for status in statuses.values())  # delivered, failed
    except sqlite3.Error:
        return 0  # not created yet


def child_processes(pid):
    """The process ids of a process's children (Linux), or [] where unknown."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(child) for child in task.read_text().split()]
    return children


def running(pid):
    """Whether a process exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def output_lines(result):
    """The JSON lines a translate run printed."""
    return [json.loads(line) for line in result.stdout.splitlines()]
