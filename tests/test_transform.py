"""--transform MODULE:FUNCTION: the user's function on each message, before anything else."""

from __future__ import annotations

import collections
import json
import sys
import textwrap

import pytest
from commandline import KEY, cli, environment, jsonl, output_lines, write_gz

from segment_braze._replay.transform import DROPPED, Transformed, apply, load
from segment_braze._replay.usage import UsageError
from segment_braze.testing import BrazeStandIn

MAPPINGS = '''
def actions(message):
    """Rename an event, move a field, leave test users out, fail on one."""
    if message.get("userId", "").startswith("test-"):
        return None
    if message.get("event") == "Song Played":
        message["event"] = "Track Played"
    properties = message.get("properties", {})
    if "song_title" in properties:
        properties["title"] = properties.pop("song_title")
    if properties.get("explode"):
        raise ValueError("cannot map " + message["messageId"])
    return message


def same_id(message):
    """Give every message one messageId: the state sees duplicates."""
    return message | {"messageId": "one"}


def not_a_message(message):
    return [message]


number = 7
'''


@pytest.fixture
def mappings(tmp_path, monkeypatch):
    """A module of transforms, importable by name (as ``mappings``)."""
    (tmp_path / "mappings.py").write_text(textwrap.dedent(MAPPINGS))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mappings", None)
    load.cache_clear()
    yield tmp_path
    sys.modules.pop("mappings", None)
    load.cache_clear()


def song(n, **fields):
    """A Song Played track numbered ``n``."""
    return {
        "type": "track",
        "event": "Song Played",
        "userId": f"user-{n % 3}",
        "properties": {"n": n},
        "timestamp": "2024-05-01T12:00:00Z",
        "messageId": f"m-{n}",
    } | fields


class TestLoad:
    """The function is imported by name; anything else is a one-line usage error."""

    def test_imported_by_name(self, mappings):
        """MODULE:FUNCTION finds the function."""
        assert load("mappings:actions").__name__ == "actions"

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("mappings", "--transform must be MODULE:FUNCTION, not 'mappings'"),
            (":actions", "--transform must be MODULE:FUNCTION"),
            ("no_such_module:f", "cannot import no_such_module: No module named"),
            ("mappings:missing", "mappings has no missing"),
            ("mappings:number", "number is not a function"),
        ],
    )
    def test_usage_errors(self, mappings, spec, message):
        """A bad spec, a missing module or function, or a non-function: a usage error."""
        with pytest.raises(UsageError, match=message):
            load(spec)

    def test_module_that_raises_on_import(self, mappings):
        """A module whose import raises is a usage error naming the exception."""
        (mappings / "broken.py").write_text("raise RuntimeError('no config')\n")
        with pytest.raises(UsageError, match="importing broken raised RuntimeError: no config"):
            load("broken:f")


class TestApply:
    """What the function returns decides the message's fate."""

    def test_changed_message(self, mappings):
        """The returned message goes on; the one read is left as it was."""
        message = song(1, properties={"n": 1, "song_title": "Alabama"})
        applied = apply(load("mappings:actions"), message, copy=True)
        assert applied.message["event"] == "Track Played"
        assert applied.message["properties"] == {"n": 1, "title": "Alabama"}
        assert message == song(1, properties={"n": 1, "song_title": "Alabama"})

    def test_none_drops(self, mappings):
        """None means drop."""
        assert apply(load("mappings:actions"), song(1, userId="test-1"), copy=True) == (None, None)

    def test_exception_makes_it_invalid(self, mappings):
        """An exception is the message's error, with its type and text."""
        applied = apply(load("mappings:actions"), song(1, properties={"explode": 1}), copy=True)
        assert applied == Transformed(None, "transform raised ValueError: cannot map m-1")

    def test_not_a_message(self, mappings):
        """A value that is neither a message nor None makes the message invalid."""
        applied = apply(load("mappings:not_a_message"), song(1), copy=False)
        assert applied.error == "transform returned a list, not a message or None"


def actions_input():
    """Messages for mappings:actions: renamed, moved, dropped, failing."""
    return [
        song(1),
        song(2, userId="test-9"),
        song(3, properties={"n": 3, "explode": True}),
        song(4, properties={"n": 4, "song_title": "Alabama"}),
    ]


class TestCommands:
    """translate, send and replay all take --transform; replay in worker processes too."""

    def test_translate(self, mappings):
        """Its output shows the transformed message, the drop and the failure."""
        env = environment(PYTHONPATH=str(mappings))
        result = cli("translate", "--transform", "mappings:actions", env=env,
                     stdin=jsonl(actions_input()))  # fmt: skip
        assert result.returncode == 1  # the message the transform failed on
        lines = output_lines(result)
        assert lines[0]["requests"][0]["body"]["events"][0]["name"] == "Track Played"
        assert (lines[1]["messageId"], lines[1]["dropped"]) == ("m-2", DROPPED)
        assert lines[2]["error"] == "transform raised ValueError: cannot map m-3"
        assert "<stdin>:3: transform raised ValueError: cannot map m-3" in result.stderr

    def test_send(self, mappings):
        """A send applies it before sending."""
        with BrazeStandIn(api_key=KEY) as braze:
            env = environment(braze, PYTHONPATH=str(mappings))
            result = cli("send", "--transform", "mappings:actions", env=env,
                         stdin=jsonl([song(1), song(2, userId="test-9")]))  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert [e["name"] for e in braze.accepted_events] == ["Track Played"]
            assert "           1    dropped by transform" in result.stdout.splitlines()

    def test_replay_in_one_and_in_two_processes(self, mappings):
        """The same events, report, notes and dead letters with worker processes."""
        path = write_gz(mappings / "archive" / "a.jsonl.gz", actions_input())
        runs = {}
        for processes in (1, 2):
            state, dead = mappings / f"s{processes}.sqlite", mappings / f"dead{processes}.jsonl"
            with BrazeStandIn(api_key=KEY) as braze:
                result = cli(
                    "replay", path, "--state", state, "--dead-letter", dead, "--transform",
                    "mappings:actions", "--processes", processes, braze=braze, cwd=mappings,
                )  # fmt: skip
                events = [(e["name"], e["properties"]) for e in braze.accepted_events]
            assert result.returncode == 1  # the message the transform failed on
            runs[processes] = (
                result.stdout.replace(str(state), "STATE"),
                result.stderr,
                dead.read_text(),
                sorted(events, key=str),
            )
        assert runs[2] == runs[1]
        report, stderr, dead_letters, events = runs[1]
        assert events == [
            ("Track Played", {"n": 1}),
            ("Track Played", {"n": 4, "title": "Alabama"}),
        ]
        assert "           1    dropped by transform" in report.splitlines()
        assert "           1  invalid input" in report.splitlines()
        assert f"{path}:3: transform raised ValueError: cannot map m-3" in stderr
        entries = [json.loads(line) for line in dead_letters.splitlines()]
        assert [(e["outcome"], e["reason"]) for e in entries] == [
            ("dropped", DROPPED),
            ("invalid", "transform raised ValueError: cannot map m-3"),
        ]
        assert entries[0]["message"] == song(2, userId="test-9")  # as read, not as changed

    @pytest.mark.parametrize("processes", [1, 2])
    def test_runs_before_de_duplication(self, mappings, processes):
        """The state de-duplicates what the transform returns (here: one messageId for all)."""
        path = write_gz(mappings / "a.jsonl.gz", [song(1), song(2), song(3)])
        with BrazeStandIn(api_key=KEY) as braze:
            result = cli(
                "replay", path, "--state", mappings / f"s{processes}.sqlite", "--transform",
                "mappings:same_id", "--processes", processes, braze=braze, cwd=mappings,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert collections.Counter(e["properties"]["n"] for e in braze.accepted_events) == {
                1: 1
            }
        assert (
            "           2  duplicates skipped (the same source and messageId within 24 hours)"
            in result.stdout.splitlines()
        )

    def test_a_module_that_cannot_be_imported(self, tmp_path):
        """A transform that cannot be imported: exit 2, one line, no state file made."""
        state = tmp_path / "state.sqlite"
        result = cli("replay", "-", "--state", state, "--transform", "nowhere:fix", stdin="",
                     env=environment(BRAZE_REST_API_KEY=KEY, BRAZE_DATACENTER="US-01"))  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "--transform nowhere:fix: cannot import nowhere" in result.stderr
        assert not state.exists()
