"""BrazeClient(processes=N): translation in child processes, everything else as before."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from segment_braze import AttributeCache, BrazeClient, SenderError, Settings, translate
from segment_braze._deliver import child as child_module
from segment_braze._deliver import pool as pool_module
from segment_braze._deliver.bundles import ONE, RUN, bundle_chunk
from segment_braze.testing import BrazeStandIn

KEY = "pool-key-9c1e-SECRET-never-in-a-child"
TIME = "2024-05-01T12:00:00Z"
POOL = "segment_braze._deliver.pool"


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def settings_for(braze: BrazeStandIn) -> Settings:
    """Settings pointing at the stand-in."""
    return Settings(rest_api_key=KEY, rest_endpoint=braze.url, allow_custom_endpoint=True)


def track(n: int, *, users: int = 7) -> dict[str, Any]:
    """Track call ``m<n>`` for user ``u<n % users>``, carrying its sequence number."""
    return {
        "type": "track",
        "userId": f"u{n % users}",
        "event": "Viewed",
        "timestamp": TIME,
        "messageId": f"m{n}",
        "properties": {"seq": n},
    }


def children() -> list[int]:
    """The pids of this process's translation children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and POOL.encode() in command:
            found.append(int(entry.name))
    return found


class Outcomes:
    """Every on_outcome call, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, str, str | None]] = []

    def __call__(self, item: Any, outcome: str, reason: str | None) -> None:
        """Record one."""
        self.seen.append((item, outcome, reason))


class TestSameAsOneProcess:
    """With processes the same objects reach Braze, in each user's order."""

    def test_delivered_in_order(self, braze):
        """Dicts, JSON text and Translations: all delivered, each user's events in order."""
        settings = settings_for(braze)
        inputs: list[Any] = []
        for n in range(1500):
            message = track(n)
            if n % 3 == 1:
                inputs.append(json.dumps(message))
            elif n % 3 == 2:
                inputs.append(json.dumps(message).encode())
            else:
                inputs.append(message)
        inputs[7] = translate(track(7), settings)
        outcomes = Outcomes()
        with BrazeClient(settings, processes=2, workers=4, on_outcome=outcomes) as client:
            report = client.send(inputs)
        assert report.delivered == 1500
        # The caller's own items, by identity.
        assert Counter(map(id, (item for item, _, _ in outcomes.seen))) == Counter(map(id, inputs))
        for user in range(7):
            seqs = [
                e["properties"]["seq"]
                for e in braze.accepted_events
                if e["external_id"] == f"u{user}"
            ]
            assert seqs == sorted(seqs)
            assert len(seqs) == len(range(user, 1500, 7))

    def test_drops_and_invalid(self, braze):
        """Invalid messages and bad JSON text are dropped with reasons, the rest delivered."""
        inputs: list[Any] = [track(0), {"type": "track"}, "not json", b"[1]", track(1)]
        outcomes = Outcomes()
        with BrazeClient(settings_for(braze), processes=2, on_outcome=outcomes) as client:
            report = client.send(inputs)
        assert report.delivered == 2
        assert report.total == len(inputs)
        reasons = [reason for _, outcome, reason in outcomes.seen if outcome == "dropped"]
        assert len(reasons) == 3
        assert any("not JSON" in (reason or "") for reason in reasons)
        assert any("not a JSON object" in (reason or "") for reason in reasons)

    def test_a_message_the_pipe_cannot_carry_is_prepared_here(self, braze):
        """A message nested too deeply to pickle is delivered as in one process, not raised."""
        deep: dict[str, Any] = {}
        inner = deep
        for _ in range(5000):
            inner["a"] = {}
            inner = inner["a"]
        inputs = [track(n) for n in range(6)]
        inputs[3]["properties"]["deep"] = deep
        with pytest.raises(RecursionError):
            pickle.dumps(inputs[3])
        outcomes = Outcomes()
        with BrazeClient(settings_for(braze), processes=2, on_outcome=outcomes) as client:
            report = client.send(inputs)
        assert report.delivered == 6
        assert [outcome for _, outcome, _ in outcomes.seen] == ["delivered"] * 6
        seqs = [event["properties"]["seq"] for event in braze.accepted_events]
        assert sorted(seqs) == list(range(6))
        (sent,) = [e for e in braze.accepted_events if e["properties"]["seq"] == 3]
        assert "deep" not in sent["properties"]  # dropped with a warning, as in one process

    def test_a_message_the_children_cannot_rebuild_is_prepared_here(self, braze, monkeypatch):
        """A Mapping of a class in the caller's __main__ costs only time, not the send."""

        class Message(Mapping[str, Any]):
            """A read-only message, as a caller's own class."""

            def __init__(self, data: dict[str, Any]) -> None:
                self.data = data

            def __getitem__(self, key: str) -> Any:
                return self.data[key]

            def __iter__(self) -> Iterator[str]:
                return iter(self.data)

            def __len__(self) -> int:
                return len(self.data)

        # Picklable here (by reference to __main__), not in a child, whose __main__ differs.
        Message.__module__ = "__main__"
        Message.__qualname__ = "Message"
        monkeypatch.setattr(sys.modules["__main__"], "Message", Message, raising=False)
        inputs: list[Any] = [track(n) for n in range(600)]
        inputs[300] = Message(track(300))
        outcomes = Outcomes()
        with BrazeClient(settings_for(braze), processes=2, on_outcome=outcomes) as client:
            report = client.send(inputs)
        assert report.delivered == 600
        assert Counter(map(id, (item for item, _, _ in outcomes.seen))) == Counter(map(id, inputs))
        assert sorted(e["properties"]["seq"] for e in braze.accepted_events) == list(range(600))

    def test_attribute_cache_keeps_translation_here(self, braze):
        """With an attribute cache, messages are translated here and the cache still saves."""
        identify = {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}
        with AttributeCache.memory() as cache:
            for _ in range(2):
                with BrazeClient(settings_for(braze), processes=2, attribute_cache=cache) as client:
                    report = client.send([identify])
        assert report.attributes_saved == 1

    def test_at_least_one(self, braze):
        """Processes below 1 is refused."""
        with pytest.raises(ValueError, match="processes"):
            BrazeClient(settings_for(braze), processes=0)


class TestSlowInput:
    """A slow input's messages are sent after ``linger``, not held for a full chunk."""

    def test_sent_while_the_input_waits(self, braze):
        """Three messages reach Braze while the input is still waiting for more."""
        delivered = threading.Event()
        seen: list[bool] = []

        def on_outcome(item: Any, outcome: str, reason: str | None) -> None:
            if outcome == "delivered" and item["messageId"] == "m2":
                delivered.set()

        def messages() -> Iterator[dict[str, Any]]:
            yield from (track(n) for n in range(3))
            seen.append(delivered.wait(20.0))  # a bound against a hang, not a timing
            yield track(3)

        client = BrazeClient(settings_for(braze), processes=2, linger=0.05, on_outcome=on_outcome)
        with client:
            report = client.send(messages())
        assert seen == [True]
        assert report.delivered == 4


class TestChildren:
    """The children never hold the key, and a dead child is a SenderError, all accounted."""

    def test_no_key_in_the_environment(self, braze, monkeypatch):
        """BRAZE_REST_API_KEY and any variable holding the key are not in a child's environment."""
        monkeypatch.setenv("BRAZE_REST_API_KEY", KEY)
        monkeypatch.setenv("SOME_OTHER_NAME", KEY)
        seen: list[bytes] = []

        def messages() -> Iterator[dict[str, Any]]:
            for n in range(2000):
                if n == 1000:
                    seen.extend(Path(f"/proc/{pid}/environ").read_bytes() for pid in children())
                yield track(n)

        with BrazeClient(settings_for(braze), processes=2) as client:
            report = client.send(messages())
        assert report.delivered == 2000
        assert len(seen) == 2
        for environ in seen:
            assert KEY.encode() not in environ
            assert b"BRAZE_REST_API_KEY=" not in environ

    def test_stopped_child(self, braze, monkeypatch):
        """A child that stops reading (SIGSTOP): SenderError after the stall, never a hang."""
        monkeypatch.setattr(child_module, "STALL", 2.0)
        monkeypatch.setattr(child_module, "_CLOSE_WAIT", 1.0)
        total = 20_000
        stopped: list[int] = []
        raised: list[SenderError] = []

        def messages() -> Iterator[dict[str, Any]]:
            for n in range(total):
                if n == 0:  # before the first chunk is written to them
                    stopped.extend(children())
                    for pid in stopped:
                        os.kill(pid, signal.SIGSTOP)
                message = track(n)
                # Distinct strings (pickle writes a shared one once): a chunk fills the pipe.
                message["properties"]["pad"] = f"{n:>1000}"
                yield message

        def run() -> None:
            client = BrazeClient(settings_for(braze), processes=2)
            try:
                with client:
                    client.send(messages())
            except SenderError as err:
                raised.append(err)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(60.0)  # a bound against a hang, not a timing
        hung = thread.is_alive()
        if hung:  # free the send, so the suite goes on
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert not hung, "send() waited for ever on a child that stopped reading"
        assert len(raised) == 1
        assert "did not answer within 2 s" in str(raised[0])
        report = raised[0].report
        assert report is not None
        assert report.total == total
        assert children() == []

    def test_killed_child(self, braze):
        """A child killed mid-send: SenderError, every message accounted exactly once."""
        outcomes = Outcomes()
        total = 3000

        def messages() -> Iterator[dict[str, Any]]:
            for n in range(total):
                if n == 1200:
                    for pid in children():
                        os.kill(pid, signal.SIGKILL)
                yield track(n)

        client = BrazeClient(settings_for(braze), processes=2, on_outcome=outcomes)
        with client, pytest.raises(SenderError, match="translation process ended") as raised:
            client.send(messages())
        report = raised.value.report
        assert report is not None
        assert report.total == total
        assert report.failed
        mids = Counter(item["messageId"] for item, _, _ in outcomes.seen)
        assert mids == Counter(f"m{n}" for n in range(total))
        assert all("translation process" in f.reason for f in report.failed)
        assert children() == []


class TestChildBugs:
    """An unexpected error preparing one message in a child costs only that message."""

    def test_translation_bug_fails_one_message(self, monkeypatch):
        """The child's answer for a message whose translation raised is a failure, alone."""
        original = pool_module.translate

        def translate(message: Any, settings: Any) -> Any:
            if message["messageId"] == "m3":
                raise TypeError("bug in translate")
            return original(message, settings)

        monkeypatch.setattr(pool_module, "translate", translate)
        settings = Settings(app_id="app")
        prepared = [pool_module.prepare_message(track(n), settings) for n in range(6)]
        assert prepared[3].failed
        assert prepared[3].dropped == "unexpected error preparing it (TypeError)"
        units = bundle_chunk(prepared, workers=2, legacy_limits=False)
        alone = [unit for unit in units if unit[0] == ONE]
        assert [unit[1] for unit in alone] == [3]
        covered = sorted(i for unit in units for i in (unit[2] if unit[0] == RUN else [unit[1]]))
        assert covered == list(range(6))


class TestStreamingBound:
    """With processes the input is still read only a bounded way ahead."""

    def test_generator_read_a_bounded_way_ahead(self, braze):
        """Undecided messages never exceed the queues, the batches and the pool's chunks."""
        workers, window, processes, total = 4, 50, 2, 20_000
        lock = threading.Lock()
        decided = [0]
        furthest = [0]

        def on_outcome(item: Any, outcome: str, reason: str | None) -> None:
            with lock:
                decided[0] += 1

        def messages() -> Iterator[str]:
            for n in range(total):
                with lock:
                    furthest[0] = max(furthest[0], n - decided[0])
                yield json.dumps(track(n, users=64))

        client = BrazeClient(
            settings_for(braze),
            processes=processes,
            workers=workers,
            window=window,
            on_outcome=on_outcome,
        )
        with client:
            report = client.send(messages())
        assert report.delivered == total
        # docs/sending.md#streaming: with processes, workers x (window + three
        # bundles of up to 75: two batches on their way, one more in the packer),
        # one bundle over a window, and 2 x processes + 4 chunks of 256.
        held = workers * (window + 225) + 75 + (2 * processes + 4) * 256
        assert furthest[0] <= held + 1
