"""The command under stops and hostile settings: SIGTERM, the endpoint switch, the key."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from commandline import KEY, cli, command, environment, jsonl, numbers, recorded, track

from segment_braze.testing import BrazeStandIn


def wait_until(condition, *, seconds=30):
    """Poll a condition (not a duration), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def start(*args, braze, **env):
    """Start segment-braze in the background, with the stand-in's environment."""
    return subprocess.Popen(
        command(*args),
        env=environment(braze, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def slow_braze():
    """A stand-in that answers after 50 ms, so a run lasts long enough to be stopped."""
    with BrazeStandIn(api_key=KEY, latency=0.05) as braze:
        yield braze


class TestSigterm:
    """SIGTERM stops a run like Ctrl-C: state saved, exit status 143, nothing re-sent."""

    def test_replay_saves_state_and_resumes_without_resending(self, tmp_path, slow_braze):
        """A replay stopped by SIGTERM exits 143; the rerun sends each message exactly once."""
        archive = tmp_path / "archive.jsonl"
        archive.write_text(jsonl([track(n) for n in range(3000)]))
        state = tmp_path / "state.sqlite"
        args = ("replay", archive, "--state", state, "--workers", "2", "--quiet")
        process = start(*args, braze=slow_braze)
        wait_until(lambda: len(slow_braze.requests) >= 2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 143
        assert "Traceback" not in err
        assert KEY not in out + err
        assert "terminated (SIGTERM): the state is saved" in err
        assert "delivered" in out  # the summary of what was done
        assert 0 < recorded(state) < 3000
        again = cli(*args, braze=slow_braze, timeout=120)
        assert again.returncode == 0
        assert set(numbers(slow_braze).values()) == {1}
        assert len(numbers(slow_braze)) == 3000

    def test_send_prints_its_partial_report(self, tmp_path, slow_braze):
        """An interrupted send prints what it sent and does not advise running it again."""
        archive = tmp_path / "archive.jsonl"
        archive.write_text(jsonl([track(n) for n in range(3000)]))
        process = start("send", archive, "--workers", "2", "--quiet", braze=slow_braze)
        wait_until(lambda: len(slow_braze.requests) >= 2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 143
        assert "Traceback" not in err
        assert "send keeps no state" in err
        assert "run the same command again" not in err
        assert "segment-braze send:" in out


class TestCustomEndpointSwitch:
    """Only the environment may send the key to a non-Braze host."""

    def settings_file(self, tmp_path, braze):
        """A settings file naming the stand-in and asking for a custom endpoint itself."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps({"rest_endpoint": braze.url, "allow_custom_endpoint": True}))
        return path

    @pytest.mark.parametrize("flag", [None, "0"], ids=["unset", "zero"])
    def test_settings_file_is_not_enough(self, tmp_path, flag):
        """Without BRAZE_ALLOW_CUSTOM_ENDPOINT=1 the file's switch is ignored, with CLI advice."""
        archive = tmp_path / "a.jsonl"
        archive.write_text(jsonl([track(0)]))
        with BrazeStandIn(api_key=KEY) as braze:
            env = environment(None, BRAZE_REST_API_KEY=KEY)
            if flag is not None:
                env["BRAZE_ALLOW_CUSTOM_ENDPOINT"] = flag
            result = cli(
                "send", archive, "--settings", self.settings_file(tmp_path, braze), env=env
            )
            assert braze.requests == []
        assert result.returncode == 2
        assert "BRAZE_ALLOW_CUSTOM_ENDPOINT=1" in result.stderr
        assert "allow_custom_endpoint=True" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_environment_allows_it(self, tmp_path):
        """BRAZE_ALLOW_CUSTOM_ENDPOINT=1 with the file's endpoint sends to the stand-in."""
        archive = tmp_path / "a.jsonl"
        archive.write_text(jsonl([track(0)]))
        with BrazeStandIn(api_key=KEY) as braze:
            env = environment(None, BRAZE_REST_API_KEY=KEY, BRAZE_ALLOW_CUSTOM_ENDPOINT="1")
            result = cli(
                "send", archive, "--settings", self.settings_file(tmp_path, braze), env=env
            )
            assert len(braze.accepted_events) == 1
        assert result.returncode == 0


class TestWorkerProcesses:
    """Worker processes never hold the key, and a message they cannot take costs only time."""

    def test_workers_do_not_inherit_the_key(self, tmp_path, monkeypatch):
        """A --transform run in worker processes sees no BRAZE_REST_API_KEY in its environment."""
        (tmp_path / "peek.py").write_text(
            "import os\n"
            "def look(message):\n"
            "    message['properties'] = {'key_seen': 'BRAZE_REST_API_KEY' in os.environ,\n"
            "                             'pid': os.getpid()}\n"
            "    return message\n"
        )
        archive = tmp_path / "a.jsonl"
        archive.write_text(jsonl([track(n) for n in range(300)]))
        with BrazeStandIn(api_key=KEY) as braze:
            env = environment(braze)
            env["PYTHONPATH"] = str(tmp_path)
            result = cli(
                "replay", archive, "--state", tmp_path / "s.sqlite", "--processes", "2",
                "--transform", "peek:look", "--quiet", env=env, timeout=120,
            )  # fmt: skip
            events = braze.accepted_events
        assert result.returncode == 0, result.stderr
        assert len(events) == 300
        assert {event["properties"]["key_seen"] for event in events} == {False}

    def test_message_too_deep_to_pickle(self, tmp_path):
        """A message nested 1,000 deep (too deep to hand to a worker) is translated anyway."""
        deep = '{"a":' * 1000 + "1" + "}" * 1000
        line = (
            '{"type":"track","userId":"u","event":"E","messageId":"deep",'
            f'"timestamp":"2024-01-01T00:00:00Z","properties":{{"deep":{deep},"ok":1}}}}'
        )
        archive = tmp_path / "a.jsonl"
        archive.write_text(jsonl([track(1)]) + line + "\n" + jsonl([track(2)]))
        with BrazeStandIn(api_key=KEY) as braze:
            result = cli(
                "replay", archive, "--state", tmp_path / "s.sqlite", "--processes", "2",
                braze=braze, timeout=120,
            )  # fmt: skip
            events = braze.accepted_events
        assert result.returncode == 0, result.stderr
        assert len(events) == 3
        deep_event = next(event for event in events if event["name"] == "E")
        assert deep_event["properties"] == {"ok": 1}
