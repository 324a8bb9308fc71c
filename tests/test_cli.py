"""The segment-braze command, end to end: the real console script against BrazeStandIn.

The REST API key reaches the command through the environment only, and every
run checks that it never appears in what the command prints.
"""

from __future__ import annotations

import collections
import datetime as dt
import gc
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from commandline import (
    BATCH,
    KEY,
    WORKERS,
    child_processes,
    cli,
    command,
    environment,
    jsonl,
    numbers,
    output_lines,
    page,
    recorded,
    running,
    track,
    write_gz,
)

from segment_braze._replay import cli as cli_module
from segment_braze._replay import collector
from segment_braze._replay import processes as processes_module
from segment_braze._replay.cli import main
from segment_braze._replay.config import TimeWindow, attribute_cache, load_settings, parse_moment
from segment_braze._replay.progress import Progress
from segment_braze._replay.usage import UsageError
from segment_braze._settings import Settings
from segment_braze.exceptions import SettingsError
from segment_braze.testing import BrazeStandIn, Fault


@pytest.fixture
def braze():
    """A Braze stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


FORMATS = {
    "jsonl": lambda items: jsonl(items).encode(),
    "gzip": lambda items: gzip.compress(jsonl(items).encode()),
    "array": lambda items: json.dumps(items).encode(),
    "pretty array": lambda items: json.dumps(items, indent=2).encode(),
    "envelope per line": lambda items: jsonl([{"batch": items}]).encode(),
    "envelope file": lambda items: json.dumps({"batch": items}, indent=2).encode(),
}


class TestTranslate:
    """``translate`` prints one JSON line per input message, for every input format."""

    @pytest.mark.parametrize("form", FORMATS)
    def test_each_format(self, tmp_path, form):
        """Every format gives the same lines: messageId, requests, dropped, warnings."""
        path = tmp_path / "input.data"
        path.write_bytes(FORMATS[form]([track(1), page(2)]))
        result = cli("translate", path)
        assert result.returncode == 0, result.stderr
        first, second = output_lines(result)
        assert first["messageId"] == "msg-1"
        assert first["requests"] == [
            {
                "path": "/users/track",
                "body": {
                    "events": [
                        {
                            "external_id": "user-1",
                            "name": "Played",
                            "time": "2024-05-01T12:00:00.000Z",
                            "properties": {"n": 1},
                            "_update_existing_only": False,
                        }
                    ]
                },
            }
        ]
        assert (first["dropped"], first["warnings"], first["error"]) == (None, [], None)
        assert first["source"].startswith(f"{path}:")
        assert second["messageId"] == "page-2"
        assert second["requests"] == []
        assert second["dropped"].startswith("page calls are not tracked")

    def test_stdin(self):
        """Without a path, translate reads stdin."""
        result = cli("translate", stdin=jsonl([track(1)]))
        assert [line["source"] for line in output_lines(result)] == ["<stdin>:1"]

    def test_invalid_lines_keep_their_place(self, tmp_path):
        """A bad line gets an output line with its error; stderr names file and line."""
        path = tmp_path / "a.jsonl"
        path.write_text(jsonl([track(1), "{not json", {"type": "track", "messageId": "x"}]))
        result = cli("translate", path)
        assert result.returncode == 1
        lines = output_lines(result)
        assert [line["error"] is None for line in lines] == [True, False, False]
        assert lines[1]["error"].startswith("not JSON")
        assert lines[1]["source"] == f"{path}:2"
        assert lines[2]["messageId"] == "x"
        assert lines[2]["error"].startswith("invalid message: $.")
        assert f"{path}:2: not JSON" in result.stderr
        assert f"{path}:3: invalid message" in result.stderr

    def test_summary_counts_objects_and_data_points(self, tmp_path):
        """--summary: messages, drops by reason, objects and estimated data points."""
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"events_denylist": ["Ignored"]}))
        identify = {
            "type": "identify",
            "userId": "u",
            "timestamp": "2024-05-01T12:00:00Z",
            "traits": {"email": "a@example.com", "plan": "pro", "address": {"country": "DE"}},
        }
        order = track(3, event="Order Completed")
        order["properties"] = {
            "currency": "EUR",
            "products": [{"product_id": "a", "price": 1}, {"product_id": "b", "price": 2}],
        }
        items = [identify, track(1), track(2, event="Ignored"), order, page(4), "oops"]
        result = cli("translate", "--summary", "--settings", settings, stdin=jsonl(items))
        assert result.returncode == 1  # the unparseable line
        summary = result.stderr.splitlines()
        assert "segment-braze translate: 6 messages" in summary
        assert "           3  translated" in summary
        assert "           2  dropped" in summary
        assert "           1    filtered" in summary
        assert "           1  invalid input" in summary
        assert "Braze objects: 1 attributes object, 1 event, 2 purchases, 0 user operations" in (
            summary
        )
        # email, plan, country = 3; one event; two purchases.
        assert (
            "estimated data points: 6 (3 for attributes, 1 for events, 2 for purchases)" in summary
        )

    def test_summary_recommended_events_are_free(self, tmp_path):
        """--summary counts Braze's recommended eCommerce events at no data points."""
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"ecommerce": "recommended"}))
        viewed = track(1, event="Product Viewed")
        viewed["properties"] = {"product_id": "p1", "name": "Shirt", "price": 10}
        unnamed = track(2, event="Product Viewed")
        unnamed["properties"] = {"product_id": "p1", "price": 10}  # falls back: no name
        result = cli(
            "translate", "--summary", "--settings", settings, stdin=jsonl([viewed, unnamed])
        )
        assert result.returncode == 0
        assert (
            "estimated data points: 1 (0 for attributes, 1 for events"
            " (1 recommended event free), 0 for purchases)"
        ) in result.stderr.splitlines()

    def test_output_lines_match_input_messages(self, tmp_path):
        """Envelopes and arrays expand: one output line per message, never per input line."""
        path = tmp_path / "mixed.jsonl"
        path.write_text(jsonl([{"batch": [track(1), track(2)]}, [track(3), 4], track(5)]))
        result = cli("translate", path)
        lines = output_lines(result)
        assert [line["messageId"] for line in lines] == ["msg-1", "msg-2", "msg-3", None, "msg-5"]
        assert lines[3]["source"] == f"{path}:2 item 1"


class TestSend:
    """``send`` delivers with BrazeClient and accounts for every message."""

    def test_delivers_and_reports(self, braze):
        """Messages reach Braze; the delivery report is printed; exit 0."""
        result = cli("send", braze=braze, stdin=jsonl([track(n) for n in range(10)]))
        assert result.returncode == 0, result.stderr
        assert numbers(braze) == dict.fromkeys(range(10), 1)
        assert "          10  delivered" in result.stdout.splitlines()
        assert f"Braze requests: {len(braze.requests)} (0 retries)" in result.stdout

    def test_dead_letter_holds_failed_dropped_and_unreadable(self, braze, tmp_path):
        """--dead-letter gets every message not delivered, with its reason; exit 1."""
        braze.inject(Fault.status(400))
        dead = tmp_path / "dead.jsonl"
        items = [track(1), track(2, userId="user-1"), page(3), "{broken"]  # one request
        result = cli("send", "--dead-letter", dead, braze=braze, stdin=jsonl(items))
        assert result.returncode == 1
        entries = [json.loads(line) for line in dead.read_text().splitlines()]
        by_outcome = collections.defaultdict(list)
        for entry in entries:
            by_outcome[entry["outcome"]].append(entry)
        assert sorted(e["messageId"] for e in by_outcome["failed"]) == ["msg-1", "msg-2"]
        assert by_outcome["failed"][0]["message"]["type"] == "track"
        assert [e["messageId"] for e in by_outcome["dropped"]] == ["page-3"]
        (unreadable,) = by_outcome["invalid"]
        assert unreadable["source"] == "<stdin>:4"
        assert unreadable["line"] == "{broken"
        assert unreadable["message"] is None
        assert "<stdin>:4: not JSON" in result.stderr

    def test_refused_key(self, braze):
        """A key Braze refuses: exit 2 with one line naming the cause, key not shown."""
        wrong = "wrong-key-0f9e8d7c"
        result = cli("send", env=environment(braze, key=wrong), stdin=jsonl([track(1)]))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "Braze refused the REST API key (HTTP 401)" in result.stderr
        assert wrong not in result.stdout + result.stderr


class TestCollector:
    """The commands pace the garbage collector only while they run."""

    @pytest.mark.parametrize("outcome", ["returns", "raises"])
    def test_main_restores_the_callers_thresholds(self, monkeypatch, outcome):
        """A program calling main() gets its own gc thresholds back, whatever the command did."""
        seen = []

        def command(args, env):
            seen.append(gc.get_threshold())
            if outcome == "raises":
                raise UsageError("stopped")
            return 0

        monkeypatch.setattr(cli_module, "run_send", command)
        before = gc.get_threshold()
        assert before != collector.THRESHOLDS
        assert main(["send", "-"], environ={}) == (0 if outcome == "returns" else 2)
        assert seen == [collector.THRESHOLDS]
        assert gc.get_threshold() == before


class TestUnexpectedErrors:
    """A bug inside a command is one line on stderr, never a traceback."""

    def test_one_line_and_its_own_exit_status(self, monkeypatch, capsys):
        """An exception no rule foresaw: one line naming it, exit status 70."""

        def command(args, env):
            raise TypeError("a bug's own words")

        monkeypatch.setattr(cli_module, "run_send", command)
        assert main(["send", "-"], environ={}) == 70
        err = capsys.readouterr().err
        assert err.splitlines() == [
            "segment-braze: error: unexpected error (TypeError: a bug's own words);"
            " what a replay recorded is saved: please report this"
        ]


def archive(root):
    """Three gzipped archive files with duplicates, corrupt lines and a README.

    Returns:
        The numbers of the events that must each reach Braze once.
    """
    no_id = track(900, message_id=False)
    write_gz(root / "day-1" / "1714521600000.events.jsonl.gz", [
        track(1), track(2), track(1), "{corrupt", no_id, page(1), track(3),
    ])  # fmt: skip
    write_gz(root / "day-1" / "1714525200000.events.jsonl.gz", [
        track(2), track(4), {"batch": [track(5), track(6)]}, no_id, "not json at all",
    ])  # fmt: skip
    write_gz(root / "day-2" / "1714608000000.events.jsonl.gz", [track(7), track(4), track(8)])
    (root / "README.txt").write_text("not an archive\n")
    return {1, 2, 3, 4, 5, 6, 7, 8, 900}


class TestReplay:
    """``replay`` sends archives once, skips duplicates, reports bad lines, resumes."""

    def test_archive_with_duplicates_and_corrupt_lines(self, braze, tmp_path):
        """Each message reaches Braze once; corrupt lines are reported and dead-lettered."""
        expected = archive(tmp_path / "archive")
        state, dead = tmp_path / "state.sqlite", tmp_path / "dead.jsonl"
        args = ("replay", tmp_path / "archive", "--state", state, "--dead-letter", dead)
        result = cli(*args, braze=braze)
        assert result.returncode == 1  # two corrupt lines
        assert numbers(braze) == dict.fromkeys(expected, 1)
        first = tmp_path / "archive" / "day-1" / "1714521600000.events.jsonl.gz"
        second = tmp_path / "archive" / "day-1" / "1714525200000.events.jsonl.gz"
        assert f"{first}:4: not JSON" in result.stderr
        assert f"{second}:5: not JSON" in result.stderr
        assert "skipped 1 files in folders" in result.stderr
        report = result.stdout.splitlines()
        assert "           9  delivered" in report
        assert "           2  invalid input" in report
        assert "           1  dropped" in report
        assert (
            "           4  duplicates skipped (the same source and messageId within 24 hours)"
            in report
        )
        outcomes = collections.Counter(
            json.loads(line)["outcome"] for line in dead.read_text().splitlines()
        )
        assert outcomes == {"invalid": 2, "dropped": 1, "duplicate": 4}
        # Run again: nothing is sent twice.
        requests_before = len(braze.requests)
        again = cli(*args, braze=braze)
        assert len(braze.requests) == requests_before
        # Every copy of a message delivered earlier, duplicates included.
        assert "          13  skipped, delivered by an earlier run" in again.stdout.splitlines()
        assert again.returncode == 1  # the archive still holds the corrupt lines

    @pytest.mark.parametrize("processes", [1, 2])
    def test_killed_and_resumed(self, tmp_path, processes):
        """SIGKILL midway, then the same command: nothing lost, at most a window twice."""
        count = 1800
        for part in range(3):
            items = [track(n) for n in range(part * 600, (part + 1) * 600)]
            write_gz(tmp_path / "archive" / f"part-{part}.jsonl.gz", items)
        state = tmp_path / "state.sqlite"
        args = ("replay", tmp_path / "archive", "--state", state, "--workers", WORKERS)
        args += ("--processes", processes)
        workers = []
        with BrazeStandIn(api_key=KEY, latency=0.15) as braze:
            process = subprocess.Popen(
                command(*args),
                env=environment(braze),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                cmdline = Path(f"/proc/{process.pid}/cmdline")
                if cmdline.exists():  # the key is never in the process's arguments
                    assert KEY.encode() not in cmdline.read_bytes()
                deadline = time.monotonic() + 30
                while recorded(state) < count // 3 and time.monotonic() < deadline:
                    assert process.poll() is None, "finished before it could be killed"
                    time.sleep(0.01)
                assert recorded(state) < count, "finished before it could be killed"
                workers = child_processes(process.pid)
                assert len(workers) >= processes - 1
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
            # Worker processes end with the main process, even after kill -9.
            deadline = time.monotonic() + 10
            while any(map(running, workers)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(map(running, workers))
            sent_before_kill = len(braze.accepted_events)
            resumed = cli(*args, braze=braze)
            assert resumed.returncode == 0, resumed.stderr
            seen = numbers(braze)
        assert set(seen) == set(range(count))  # nothing lost
        twice = sum(seen.values()) - count
        assert twice <= WORKERS * BATCH  # at most one in-flight window
        assert sent_before_kill < count
        assert recorded(state) == count

    def test_time_window(self, braze, tmp_path):
        """--since (inclusive) and --until (exclusive) select by message time."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(n, day=n) for n in range(1, 6)])
        state = tmp_path / "state.sqlite"
        result = cli(
            "replay", path, "--state", state, "--since", "2024-05-02", "--until",
            "2024-05-04T12:00:00Z", braze=braze,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert sorted(numbers(braze)) == [2, 3]
        assert "           3  outside --since/--until" in result.stdout.splitlines()
        cli("replay", path, "--state", state, braze=braze)
        assert numbers(braze) == dict.fromkeys(range(1, 6), 1)

    def test_dry_run_sends_and_records_nothing(self, braze, tmp_path):
        """--dry-run needs no key, sends nothing and creates no state."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(1), track(1), track(2), page(3)])
        state = tmp_path / "state.sqlite"
        result = cli("replay", path, "--state", state, "--dry-run")
        assert result.returncode == 0, result.stderr
        report = result.stdout.splitlines()
        assert "           2  would be sent (dry run)" in report
        assert (
            "           1  duplicates skipped (the same source and messageId within 24 hours)"
            in report
        )
        assert "Braze objects: 0 attributes objects, 2 events, 0 purchases, 0 user operations" in (
            report
        )
        assert braze.requests == []
        assert not state.exists()

    def test_failed_messages_are_retried_only_when_asked(self, braze, tmp_path):
        """A failure is recorded; reruns skip it (exit 1) until --retry-failed."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(1), track(2, userId="user-1")])
        state = tmp_path / "state.sqlite"
        braze.inject(Fault.status(400))
        assert cli("replay", path, "--state", state, braze=braze).returncode == 1
        again = cli("replay", path, "--state", state, braze=braze)
        assert again.returncode == 1
        assert "           2  skipped, failed in an earlier run" in again.stdout
        assert numbers(braze) == {}
        retried = cli("replay", path, "--state", state, "--retry-failed", braze=braze)
        assert retried.returncode == 0, retried.stderr
        assert numbers(braze) == {1: 1, 2: 1}

    def test_refused_key_records_nothing(self, braze, tmp_path):
        """Messages never sent (key refused) are not recorded: the next run sends them."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(n) for n in range(5)])
        state = tmp_path / "state.sqlite"
        refused = cli("replay", path, "--state", state, env=environment(braze, key="wrong"))
        assert refused.returncode == 2
        assert recorded(state) == 0
        assert cli("replay", path, "--state", state, braze=braze).returncode == 0
        assert numbers(braze) == dict.fromkeys(range(5), 1)

    @pytest.mark.parametrize("processes", ["1", "2", "3"])
    def test_attribute_cache_next_to_the_state(self, braze, tmp_path, processes):
        """Replay keeps an attribute cache by the state (any --processes): unchanged traits stay."""
        self._unchanged_trait_stays(braze, tmp_path, "--processes", processes)

    def test_redis_cache_with_worker_processes(self, braze, tmp_path, redis_url):
        """A Redis cache stays in the main process with --processes 2: unchanged traits stay."""
        redis = pytest.importorskip("redis")
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
        self._unchanged_trait_stays(
            braze, tmp_path, "--processes", "2", "--dedup", redis_url, cache_file=False
        )

    def _unchanged_trait_stays(self, braze, tmp_path, *options, cache_file=True):
        """Replay two identifies of one user a run apart: only the changed trait goes."""
        identify = {
            "type": "identify",
            "userId": "u",
            "timestamp": "2024-05-01T12:00:00Z",
            "traits": {"plan": "pro", "city": "Berlin"},
        }
        first = write_gz(tmp_path / "a.jsonl.gz", [identify | {"messageId": "i-1"}])
        second = write_gz(
            tmp_path / "b.jsonl.gz",
            [identify | {"messageId": "i-2", "traits": {"plan": "max", "city": "Berlin"}}],
        )
        state = tmp_path / "replay.sqlite"
        cli("replay", first, "--state", state, *options, braze=braze)
        result = cli("replay", second, "--state", state, *options, braze=braze)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "replay.attributes.sqlite").exists() is cache_file
        last = braze.accepted_attributes[-1]
        assert last["plan"] == "max"
        assert "home_city" not in last
        assert "1 unchanged attribute not sent" in result.stdout

    def test_the_worker_holding_the_cache_saves_every_answer(self, braze, tmp_path):
        """With one worker process (it holds the cache), a rerun's unchanged traits all stay."""
        identifies = [
            {
                "type": "identify",
                "userId": f"user-{n}",
                "timestamp": "2024-05-01T12:00:00Z",
                "traits": {"plan": "pro", "seats": n},
            }
            for n in range(700)  # several chunks, answers arriving after the last one
        ]
        first = write_gz(
            tmp_path / "a.jsonl.gz", [m | {"messageId": f"a-{n}"} for n, m in enumerate(identifies)]
        )
        second = write_gz(
            tmp_path / "b.jsonl.gz", [m | {"messageId": f"b-{n}"} for n, m in enumerate(identifies)]
        )
        state = tmp_path / "replay.sqlite"
        args = ("--state", state, "--processes", "2")
        assert cli("replay", first, *args, braze=braze).returncode == 0
        sent = len(braze.accepted_attributes)
        result = cli("replay", second, *args, braze=braze)
        assert result.returncode == 0, result.stderr
        assert len(braze.accepted_attributes) == sent == 700
        assert "1,400 unchanged attributes not sent" in result.stdout

    def test_no_attribute_cache(self, braze, tmp_path):
        """--dedup none sends every attribute and keeps no cache file."""
        identify = {"type": "identify", "userId": "u", "traits": {"plan": "pro"}}
        path = write_gz(
            tmp_path / "a.jsonl.gz",
            [
                identify | {"messageId": f"i-{n}", "timestamp": "2024-05-01T12:00:00Z"}
                for n in (1, 2)
            ],
        )
        state = tmp_path / "replay.sqlite"
        assert cli("replay", path, "--state", state, "--dedup", "none", braze=braze).returncode == 0
        assert [a.get("plan") for a in braze.accepted_attributes] == ["pro", "pro"]
        assert not (tmp_path / "replay.attributes.sqlite").exists()


class TestInputShapes:
    """Every input shape reaches Braze: pretty-printed and concatenated streams, broken values."""

    def test_pretty_printed_stream(self, braze, tmp_path):
        """Pretty-printed output as jq writes it, piped in, is replayed message by message."""
        stream = "".join(json.dumps(track(n), indent=2) + "\n" for n in range(5))
        state = tmp_path / "state.sqlite"
        result = cli("replay", "-", "--state", state, braze=braze, stdin=stream)
        assert result.returncode == 0, result.stderr
        assert numbers(braze) == dict.fromkeys(range(5), 1)
        assert "           5  delivered" in result.stdout.splitlines()

    def test_concatenated_stream_with_one_broken_value(self, braze, tmp_path):
        """One broken value is reported and dead-lettered with file and line; the rest go."""
        values = [json.dumps(track(n), indent=2) for n in range(4)]
        values[2] = values[2].replace('"event": "Played",', '"event": "Played"')
        path = tmp_path / "webhooks.log"
        path.write_text(" ".join(values[:2]) + "\n" + "\n".join(values[2:]) + "\n")
        broken_line = path.read_text().splitlines().index("{", 2) + 1
        dead = tmp_path / "dead.jsonl"
        args = ("replay", path, "--state", tmp_path / "s.sqlite", "--dead-letter", dead)
        result = cli(*args, braze=braze)
        assert result.returncode == 1
        assert numbers(braze) == {0: 1, 1: 1, 3: 1}
        assert f"{path}:{broken_line}: not JSON: Expecting ',' delimiter at line" in result.stderr
        (entry,) = [json.loads(line) for line in dead.read_text().splitlines()]
        assert (entry["source"], entry["outcome"]) == (f"{path}:{broken_line}", "invalid")
        assert entry["line"] == values[2]


class TestReplayProcesses:
    """``replay --processes N``: the same guarantees as one process, the work spread."""

    def test_same_report_state_and_dead_letters_as_one_process(self, tmp_path):
        """Each message reaches Braze once; report, notes and dead letters match one process."""
        expected = archive(tmp_path / "archive")
        runs = {}
        for processes in (1, 2):
            state, dead = tmp_path / f"state-{processes}.sqlite", tmp_path / f"dead-{processes}"
            args = ("replay", tmp_path / "archive", "--state", state, "--dead-letter", dead)
            with BrazeStandIn(api_key=KEY) as braze:
                result = cli(*args, "--processes", processes, braze=braze)
                assert numbers(braze) == dict.fromkeys(expected, 1)
            assert result.returncode == 1  # two corrupt lines
            runs[processes] = (
                result.stdout.replace(str(state), "STATE"),
                result.stderr,
                dead.read_text(),
                recorded(state),
            )
        assert runs[2] == runs[1]
        assert (
            "           4  duplicates skipped (the same source and messageId within 24 hours)"
            in runs[2][0]
        )

    def test_resumes_a_replay_of_one_process(self, braze, tmp_path):
        """A replay resumed with --processes skips what was delivered and sends the rest once."""
        expected = archive(tmp_path / "archive")
        state = tmp_path / "state.sqlite"
        first_file = tmp_path / "archive" / "day-1" / "1714521600000.events.jsonl.gz"
        cli("replay", first_file, "--state", state, braze=braze)
        sent_first = set(numbers(braze))
        args = ("replay", tmp_path / "archive", "--state", state, "--processes", 2)
        result = cli(*args, braze=braze)
        assert result.returncode == 1  # the corrupt lines
        assert numbers(braze) == dict.fromkeys(expected, 1)
        report = result.stdout.splitlines()
        # Of the first file, all but the corrupt line and page(1) (drops are not
        # recorded); track(2) and no_id again in the second file.
        assert "           7  skipped, delivered by an earlier run" in report
        assert f"           {len(expected) - len(sent_first)}  delivered" in report
        again = cli(*args, braze=braze)
        assert numbers(braze) == dict.fromkeys(expected, 1)
        assert "          13  skipped, delivered by an earlier run" in again.stdout.splitlines()

    def test_retry_failed(self, braze, tmp_path):
        """Earlier failures are skipped untranslated, and sent once with --retry-failed."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(1), track(2, userId="user-1"), track(3)])
        state = tmp_path / "state.sqlite"
        braze.inject(Fault.status(400))
        cli("replay", path, "--state", state, "--workers", 1, braze=braze)
        args = ("replay", path, "--state", state, "--processes", 2)
        again = cli(*args, braze=braze)
        assert again.returncode == 1
        assert "           3  skipped, failed in an earlier run" in again.stdout
        assert numbers(braze) == {}
        retried = cli(*args, "--retry-failed", braze=braze)
        assert retried.returncode == 0, retried.stderr
        assert numbers(braze) == {1: 1, 2: 1, 3: 1}

    def test_dry_run_and_time_window(self, tmp_path):
        """A dry run with --processes reports what one process reports."""
        items = [track(n, day=n) for n in range(1, 6)] + [track(2, day=2), page(9), "{bad"]
        path = write_gz(tmp_path / "a.jsonl.gz", items)
        state = tmp_path / "state.sqlite"
        args = ("replay", path, "--state", state, "--dry-run", "--since", "2024-05-02")
        one, two = cli(*args), cli(*args, "--processes", 3)
        assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
        report = two.stdout.splitlines()
        assert "           4  would be sent (dry run)" in report
        assert "           2  outside --since/--until" in report  # track(1), page(9)
        assert (
            "           1  duplicates skipped (the same source and messageId within 24 hours)"
            in report
        )
        assert not state.exists()

    def test_refused_key_records_nothing(self, braze, tmp_path):
        """With worker processes too, a refused key records nothing and exits 2."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(n) for n in range(5)])
        state = tmp_path / "state.sqlite"
        args = ("replay", path, "--state", state, "--processes", 2)
        refused = cli(*args, env=environment(braze, key="wrong"))
        assert refused.returncode == 2
        assert recorded(state) == 0
        assert cli(*args, braze=braze).returncode == 0
        assert numbers(braze) == dict.fromkeys(range(5), 1)

    @pytest.mark.parametrize("command", ["send", "replay"])
    def test_defaults_use_the_cores_and_32_workers(self, command, monkeypatch):
        """--processes defaults to the cores this process may run on, --workers to 32."""
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
        argv = [command, "x", "--state", "s"] if command == "replay" else [command, "x"]
        args = cli_module._parser().parse_args(argv)
        assert (args.processes, args.workers) == (3, 32)

    @pytest.mark.parametrize("value", ["0", "two"])
    def test_processes_must_be_positive(self, capsys, value):
        """--processes takes a whole number of at least 1."""
        assert main(["replay", "x", "--state", "s", "--processes", value], {}) == 2
        assert "--processes: must be a whole number of at least 1" in capsys.readouterr().err


class TestExitStatus:
    """0: all delivered or deliberately dropped; 1: any failed or invalid; 2: usage."""

    def test_zero_with_deliberate_drops(self, braze, tmp_path):
        """Filtered events and untracked pages do not make a run fail."""
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"events_allowlist": ["Played"]}))
        items = [track(1), track(2, event="Other"), page(3)]
        result = cli("send", "--settings", settings, braze=braze, stdin=jsonl(items))
        assert result.returncode == 0, result.stderr
        assert "           1    filtered" in result.stdout.splitlines()

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((), "the following arguments are required: COMMAND"),
            (("replay", "x.jsonl"), "required: --state"),
            (("send", "--workers", "0"), "--workers: must be a whole number of at least 1"),
            (("replay", "a", "--state", "s", "--since", "yesterday"), "not an ISO 8601 time"),
            (("translate", "no-such-file.jsonl"), "no such file or folder: no-such-file.jsonl"),
            (("explode",), "invalid choice: 'explode'"),
            (("send", "--dedup", "sometimes"), "--dedup must be none, memory"),
        ],
    )
    def test_usage_errors(self, capsys, args, message, tmp_path, monkeypatch):
        """Usage errors exit 2 with one line on stderr and nothing on stdout."""
        monkeypatch.chdir(tmp_path)
        env = {"BRAZE_REST_API_KEY": KEY, "BRAZE_DATACENTER": "US-01"}
        assert main(list(args), env) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith("segment-braze: error: ")
        assert message in err

    def test_settings_error_in_a_subprocess(self, tmp_path):
        """A settings error exits 2 with one line, from the real script."""
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"datacenter": "MARS-01", "rest_api_key": KEY}))
        result = cli("send", "--settings", settings, stdin="")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "datacenter 'MARS-01' is not a Braze cluster" in result.stderr

    def test_missing_key(self):
        """Sending without a key says where to put it."""
        result = cli("send", env=environment(BRAZE_DATACENTER="US-01"), stdin="")
        assert result.returncode == 2
        assert "set BRAZE_REST_API_KEY" in result.stderr

    def test_python_dash_m(self):
        """``python -m segment_braze`` is the same command."""
        result = subprocess.run(
            [sys.executable, "-m", "segment_braze", "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        assert result.stdout.startswith("segment-braze ")


class TestSecrets:
    """The REST API key is never a flag and never printed."""

    @pytest.mark.parametrize("flag", ["--rest-api-key", "--api-key", "--key"])
    def test_no_flag_takes_the_key(self, capsys, flag):
        """A key flag is refused, without echoing its value."""
        assert main(["send", f"{flag}={KEY}"], {}) == 2
        out, err = capsys.readouterr()
        assert KEY not in out + err
        assert "BRAZE_REST_API_KEY" in err

    def test_key_from_the_settings_file_is_not_echoed(self, tmp_path):
        """A settings file holding the key and an error: the error omits the key."""
        settings = tmp_path / "export.json"
        settings.write_text(json.dumps({"apiKey": "app", "appGroupId": KEY, "datacenter": 5}))
        result = cli("send", "--settings", settings, stdin="")
        assert result.returncode == 2
        assert "datacenter must be a string" in result.stderr


class TestProgress:
    """Progress on stderr: periodic lines in logs, a bar on a terminal, none when quiet."""

    def test_periodic_lines_when_stderr_is_not_a_terminal(self, tmp_path):
        """Without a terminal, a one-line status appears every --progress-every seconds."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(n) for n in range(400)])
        with BrazeStandIn(api_key=KEY, latency=0.05) as braze:
            result = cli(
                "replay", path, "--state", tmp_path / "s.sqlite", "--progress-every", "0.05",
                "--workers", "1", braze=braze,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if "messages done" in line]
        assert lines
        assert lines[0].startswith("segment-braze replay: ")
        assert "read (" in lines[0]
        assert "ETA" in lines[0]

    def test_quiet(self, braze, tmp_path):
        """--quiet prints no progress (the report still goes to stdout)."""
        path = write_gz(tmp_path / "a.jsonl.gz", [track(n) for n in range(50)])
        result = cli(
            "replay", path, "--state", tmp_path / "s.sqlite", "--quiet", "--progress-every",
            "0.001", braze=braze,
        )  # fmt: skip
        assert result.stderr == ""
        assert "delivered" in result.stdout

    @pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
    def test_bar_on_a_terminal(self, tmp_path):
        """On a terminal, stderr shows a tqdm bar with bytes read and messages done."""
        import fcntl  # noqa: PLC0415 (POSIX only)
        import pty  # noqa: PLC0415
        import struct  # noqa: PLC0415
        import termios  # noqa: PLC0415

        path = tmp_path / "a.jsonl"
        path.write_text(jsonl([track(n) for n in range(20000)]))
        leader, follower = pty.openpty()
        # A new pseudo-terminal is 0 columns wide: give it a size, as a terminal has.
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        process = subprocess.Popen(
            command("translate", path),
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=environment(),
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        assert process.wait(timeout=60) == 0
        text = shown.decode(errors="replace")
        assert "segment-braze translate:" in text
        assert "100%|" in text
        assert "messages done" in text


class TestInProcess:
    """The same commands called as ``main(argv, environ)``, for branch coverage."""

    def env(self, braze):
        """The stand-in's connection, as environment variables."""
        return {
            "BRAZE_REST_API_KEY": KEY,
            "BRAZE_REST_ENDPOINT": braze.url,
            "BRAZE_ALLOW_CUSTOM_ENDPOINT": "1",
        }

    def test_no_worker_processes_here(self, braze, tmp_path, capsys, monkeypatch):
        """Where worker processes cannot start (no /dev/shm) a replay runs in one, with a note."""

        def no_processes(*args: object, **kwargs: object) -> None:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(processes_module, "WorkerProcess", no_processes)
        expected = archive(tmp_path / "archive")
        args = ["replay", str(tmp_path / "archive"), "--state", str(tmp_path / "s.sqlite")]
        assert main([*args, "--processes", "2"], self.env(braze)) == 1  # the corrupt lines
        out, err = capsys.readouterr()
        assert "worker processes could not start (OSError); translating in this process" in err
        assert numbers(braze) == dict.fromkeys(expected, 1)
        assert "           4  duplicates skipped" in out

    def test_replay_and_dry_run(self, braze, tmp_path, capsys):
        """A replay with every kind of message, then a dry run of it, in one process."""
        expected = archive(tmp_path / "archive")
        state, dead = tmp_path / "state.sqlite", tmp_path / "dead.jsonl"
        args = ["replay", str(tmp_path / "archive"), "--state", str(state)]
        assert main([*args, "--dead-letter", str(dead)], self.env(braze)) == 1
        out, err = capsys.readouterr()
        assert numbers(braze) == dict.fromkeys(expected, 1)
        assert "           4  duplicates skipped" in out
        assert err.count(": not JSON") == 2
        assert main([*args, "--dry-run"], {}) == 1
        out, _ = capsys.readouterr()
        assert "          13  skipped, delivered by an earlier run" in out
        assert KEY not in out + err

    def test_replay_and_dry_run_in_processes(self, braze, tmp_path, capsys):
        """The same replay and dry run with worker processes, in one process."""
        expected = archive(tmp_path / "archive")
        state, dead = tmp_path / "state.sqlite", tmp_path / "dead.jsonl"
        args = ["replay", str(tmp_path / "archive"), "--state", str(state), "--processes", "2"]
        assert main([*args, "--dry-run"], {}) == 1
        out, _ = capsys.readouterr()
        assert "           9  would be sent (dry run)" in out
        assert main([*args, "--dead-letter", str(dead)], self.env(braze)) == 1
        out, err = capsys.readouterr()
        assert numbers(braze) == dict.fromkeys(expected, 1)
        assert "           4  duplicates skipped" in out
        assert err.count(": not JSON") == 2
        assert main([*args, "--dry-run"], {}) == 1
        out, _ = capsys.readouterr()
        assert "          13  skipped, delivered by an earlier run" in out

    def test_send_with_a_failed_batch(self, braze, capsys):
        """A failed batch is counted by reason and makes the exit status 1."""
        braze.inject(Fault.status(400))
        stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(jsonl([track(1)]).encode())))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "stdin", stdin)
            assert main(["send", "--dedup", "memory"], self.env(braze)) == 1
        out, _ = capsys.readouterr()
        assert "           1  failed" in out
        assert "           1    HTTP 400" in out

    def test_translate_summary(self, tmp_path, capsys):
        """The translate summary in process: lines on stdout, totals on stderr."""
        path = tmp_path / "a.jsonl"
        path.write_text(jsonl([track(1), page(2)]))
        assert main(["translate", "--summary", str(path)], {}) == 0
        out, err = capsys.readouterr()
        assert len(out.splitlines()) == 2
        assert "           1    page calls are not tracked" in err


class TestSettingsFile:
    """--settings reads our field names or a Segment export; the environment wins."""

    def write(self, tmp_path, config):
        """Write ``config`` as the settings file."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(config))
        return str(path)

    def test_our_field_names(self, tmp_path):
        """A file with Settings field names is read as is."""
        path = self.write(tmp_path, {"app_id": "app", "events_denylist": ["A"]})
        settings = load_settings(path, {}).settings
        assert (settings.app_id, settings.events_denylist) == ("app", frozenset({"A"}))

    def test_segment_export(self, tmp_path):
        """Segment's camelCase keys are read with from_segment; unused keys are noted."""
        path = self.write(
            tmp_path,
            {"apiKey": "app", "appGroupId": KEY, "datacenter": "us03", "trackAllPages": True,
             "someNewSegmentOption": 1, "events_denylist": ["A"]},
        )  # fmt: skip
        loaded = load_settings(path, {})
        settings = loaded.settings
        assert settings.app_id == "app"
        assert settings.rest_api_key == KEY
        assert settings.datacenter == "US-03"
        assert settings.track_all_pages is True
        assert settings.events_denylist == frozenset({"A"})
        assert loaded.notes == (
            "settings: skipped Segment settings this tool does not use: someNewSegmentOption",
        )

    def test_wrapped_segment_export(self, tmp_path):
        """An API answer {"destination": {"settings": {...}}} is unwrapped."""
        path = self.write(tmp_path, {"destination": {"settings": {"apiKey": "app"}}})
        assert load_settings(path, {}).settings.app_id == "app"

    def test_environment_wins(self, tmp_path):
        """Environment values override the file; an endpoint replaces its datacenter."""
        path = self.write(tmp_path, {"app_id": "file", "datacenter": "EU-01"})
        env = {
            "BRAZE_APP_ID": "env",
            "BRAZE_REST_API_KEY": KEY,
            "BRAZE_REST_ENDPOINT": "http://127.0.0.1:9",
            "BRAZE_ALLOW_CUSTOM_ENDPOINT": "yes",
        }
        settings = load_settings(path, env).settings
        assert settings.app_id == "env"
        assert settings.rest_api_key == KEY
        assert settings.rest_endpoint == "http://127.0.0.1:9"
        assert settings.datacenter is None

    def test_environment_alone(self):
        """Without a file, the environment fills the basics."""
        env = {"BRAZE_DATACENTER": "us-02", "BRAZE_REST_API_KEY": " "}
        settings = load_settings(None, env).settings
        assert settings.rest_endpoint == "https://rest.iad-02.braze.com"
        assert settings.rest_api_key is None  # blank means unset

    def test_unknown_field(self, tmp_path):
        """A key that is neither ours nor Segment's is an error naming it."""
        path = self.write(tmp_path, {"app_id": "a", "colour": "blue"})
        with pytest.raises(SettingsError, match=r"unknown settings in .*: colour"):
            load_settings(path, {})

    @pytest.mark.parametrize(
        ("content", "error", "message"),
        [
            ("{oops", SettingsError, "is not JSON"),
            ("[1, 2]", SettingsError, "must hold a JSON object"),
        ],
    )
    def test_unreadable_file(self, tmp_path, content, error, message):
        """A file that is not a JSON object is a settings error."""
        path = tmp_path / "settings.json"
        path.write_text(content)
        with pytest.raises(error, match=message):
            load_settings(str(path), {})

    def test_missing_file(self, tmp_path):
        """A missing settings file is a usage error."""
        with pytest.raises(UsageError, match="cannot read the settings file"):
            load_settings(str(tmp_path / "nope.json"), {})

    def test_bad_custom_endpoint_flag(self):
        """BRAZE_ALLOW_CUSTOM_ENDPOINT takes 1/0 (or true/false), nothing else."""
        with pytest.raises(SettingsError, match="BRAZE_ALLOW_CUSTOM_ENDPOINT must be 1 or 0"):
            load_settings(None, {"BRAZE_ALLOW_CUSTOM_ENDPOINT": "maybe"})


class TestDedupOption:
    """--dedup names the attribute cache store."""

    def settings(self):
        """Settings that can send."""
        return Settings(rest_api_key=KEY, datacenter="US-01")

    def make(self, spec, **options):
        """Build the cache ``spec`` names, with defaults for the rest."""
        defaults = {"default_sqlite": None, "ttl_days": 30.0, "namespace": None}
        return attribute_cache(spec, settings=self.settings(), **(defaults | options))

    def test_none(self):
        """``none`` means no cache."""
        assert self.make("none") is None

    def test_memory(self):
        """``memory`` is an in-process cache with the TTL in seconds."""
        with self.make("memory", ttl_days=2) as cache:
            assert cache.ttl == 2 * 86400

    def test_sqlite_default_and_path(self, tmp_path):
        """``sqlite`` uses the default file; ``sqlite:PATH`` another."""
        with self.make("sqlite", default_sqlite=str(tmp_path / "a.sqlite")):
            pass
        with self.make(f"sqlite:{tmp_path / 'b.sqlite'}"):
            pass
        assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["a.sqlite", "b.sqlite"]

    def test_sqlite_needs_a_path_for_send(self):
        """Without a state file there is no default SQLite path."""
        with pytest.raises(UsageError, match="sqlite:PATH"):
            self.make("sqlite")

    def test_namespace_is_per_workspace_and_hides_the_key(self):
        """The default namespace derives from the key without containing it."""
        with self.make("memory") as cache, self.make("memory", namespace="shared") as named:
            assert KEY not in cache.namespace
            assert cache.namespace.startswith("k")
            assert named.namespace == "shared"

    def test_unreachable_redis(self):
        """A Redis that cannot be reached is a usage error, before anything is sent."""
        pytest.importorskip("redis")
        with pytest.raises(UsageError, match="cannot use Redis"):
            self.make("redis://127.0.0.1:1/0")

    @pytest.mark.parametrize("days", [0, -1])
    def test_ttl_must_be_positive(self, days):
        """A TTL of zero days or less is refused."""
        with pytest.raises(UsageError, match="must be positive"):
            self.make("memory", ttl_days=days)


class TestTimeWindow:
    """--since is inclusive, --until exclusive, on the message's own time."""

    window = TimeWindow(
        since=parse_moment("2024-05-02"), until=parse_moment("2024-05-03T00:00:00+02:00")
    )

    @pytest.mark.parametrize(
        ("message", "inside"),
        [
            ({"timestamp": "2024-05-02T00:00:00Z"}, True),
            ({"timestamp": "2024-05-01T23:59:59Z"}, False),
            ({"timestamp": "2024-05-02T21:59:59Z"}, True),
            ({"timestamp": "2024-05-02T22:00:00Z"}, False),
            ({"timestamp": "bad", "originalTimestamp": "2024-05-02T10:00:00Z"}, True),
            ({"sentAt": "2024-05-02T10:00:00Z"}, True),
            ({}, False),
        ],
    )
    def test_contains(self, message, inside):
        """The first usable time field decides; no time at all is outside."""
        assert self.window.contains(message) is inside

    def test_naive_time_is_utc(self):
        """A time without an offset is UTC, never the local clock's zone."""
        assert parse_moment("2024-05-02T10:00") == dt.datetime(2024, 5, 2, 10, tzinfo=dt.UTC)

    def test_since_after_until(self, capsys):
        """--since after --until is a usage error."""
        args = ["replay", "a", "--state", "s", "--since", "2024-05-02", "--until", "2024-05-01"]
        assert main(args, {}) == 2
        assert "--since must be before --until" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        """Pretend to be a terminal."""
        return True


class TestProgressDisplay:
    """The progress display itself, with a controlled clock."""

    def make(self, stream, **options):
        """A Progress over 1000 bytes, half read, with 40 messages done."""
        clock = iter(float(n) for n in range(100))
        defaults = {
            "label": "segment-braze replay",
            "total": 1000,
            "position": lambda: 500,
            "status": lambda: (40, "3 failed"),
            "stream": stream,
            "every": 1.0,
            "clock": lambda: next(clock),
        }
        return Progress(**(defaults | options))

    def test_line(self):
        """A status line: messages, rate, bytes read, ETA, elapsed."""
        progress = self.make(io.StringIO())
        assert progress.mode == "lines"
        assert progress.line(4.0) == (
            "segment-braze replay: 40 messages done (10/s), 3 failed, 500B of 0.98kB read"
            " (50%), ETA 00:04, elapsed 00:04"
        )

    def test_lines_are_periodic(self):
        """tick() prints only when the interval has passed."""
        stream = io.StringIO()
        progress = self.make(stream, every=2.5)
        for _ in range(6):
            progress.tick()
        assert stream.getvalue().count("\n") == 2

    def test_ticker_refreshes_without_calls(self):
        """Started, the display refreshes on its own (the reader may be blocked)."""
        stream = io.StringIO()
        progress = self.make(stream, every=0.01, clock=time.monotonic).start()
        deadline = time.monotonic() + 10
        while "messages done" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        progress.close()
        assert "40 messages done" in stream.getvalue()

    def test_quiet_shows_nothing(self):
        """Quiet means no output, terminal or not."""
        stream = FakeTerminal()
        progress = self.make(stream, quiet=True)
        progress.tick()
        progress.note("x")
        progress.close()
        assert progress.mode == "off"
        assert stream.getvalue() == "x\n"  # notes (invalid input) still show

    def test_bar_on_a_terminal(self):
        """On a terminal the bar shows the bytes read and the messages done."""
        stream = FakeTerminal()
        progress = self.make(stream)
        assert progress.mode == "bar"
        progress.tick()
        progress.note("file:3: not JSON")
        progress.close()
        shown = stream.getvalue()
        assert "50%|" in shown
        assert "40 messages done" in shown
        assert "file:3: not JSON" in shown

    def test_unknown_total_counts_messages(self):
        """Reading stdin, the bar counts messages instead of bytes."""
        stream = FakeTerminal()
        progress = self.make(stream, total=None, position=lambda: 40)
        progress.tick()
        progress.close()
        assert "40 messages read" in stream.getvalue()
