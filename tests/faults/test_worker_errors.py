"""An unexpected error anywhere in the sender ends send() promptly, every message accounted.

The sender's own methods are made to fail (monkeypatched private methods: the
only way to inject a bug); BrazeStandIn answers over real loopback sockets.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from segment_braze import DeliveryReport, SegmentBrazeError, SenderError
from segment_braze._deliver import client as _client
from segment_braze._deliver import delivery as _delivery
from segment_braze.testing import BrazeStandIn, Fault

from .support import KEY, Outcomes, accounted, bounded, send, track, tracks


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting the key."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def deletion(mid: str, *, user: str) -> dict[str, Any]:
    """A Segment deletion (a /users/delete entry, sent after the track batch)."""
    return {"type": "delete", "userId": user, "messageId": mid}


def mixed(count: int) -> list[dict[str, Any]]:
    """Tracks with a deletion every tenth message, over seven users."""
    return [
        deletion(f"m{n}", user=f"u{n % 7}") if n % 10 == 9 else track(f"m{n}", user=f"u{n % 7}")
        for n in range(count)
    ]


def fail_on_call(monkeypatch: pytest.MonkeyPatch, name: str, *, call: int = 1) -> list[int]:
    """Make ``_Worker.<name>`` raise RuntimeError on its ``call``-th call (any worker)."""
    original = getattr(_delivery._Worker, name)
    calls = [0]
    lock = threading.Lock()

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            now = calls[0]
        if now == call:
            raise RuntimeError(f"bug in {name}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_delivery._Worker, name, failing)
    return calls


def assert_stopped_with_sender_error(result: Any, messages: list[dict[str, Any]]) -> None:
    """send() raised SenderError, chained to the bug, with a full report."""
    assert isinstance(result, SenderError), result
    assert isinstance(result, SegmentBrazeError)
    assert isinstance(result.__cause__, RuntimeError)
    assert "RuntimeError" in str(result)
    assert isinstance(result.report, DeliveryReport)
    assert accounted(result.report, messages)


@pytest.mark.usefixtures("processes")
class TestLastFlush:
    """A failure in the final flush, after the input ended (it used to hang send())."""

    @pytest.mark.parametrize("workers", [1, 4])
    def test_raise_in_last_flush(self, braze, monkeypatch, workers):
        """send() raises SenderError promptly; every message failed exactly once."""
        fail_on_call(monkeypatch, "flush")
        messages = tracks(30)  # under 75 objects: nothing is sent before the last flush
        outcomes = Outcomes()
        result = bounded(lambda: send(braze.url, messages, workers=workers, **outcomes.hooks()))
        assert_stopped_with_sender_error(result, messages)
        assert outcomes.decided_once(messages)
        assert len(result.report.failed) + result.report.delivered == len(messages)

    def test_raise_sending_the_last_entries(self, braze, monkeypatch):
        """A failure sending the deferred /users/delete entries at the end fails them too."""
        fail_on_call(monkeypatch, "send_operations")
        messages = mixed(40)
        outcomes = Outcomes()
        result = bounded(lambda: send(braze.url, messages, workers=2, **outcomes.hooks()))
        assert_stopped_with_sender_error(result, messages)
        assert outcomes.decided_once(messages)
        failed = {mid for mid, fate, _ in outcomes.outcomes if fate == "failed"}
        assert {m["messageId"] for m in messages if m["type"] == "delete"} <= failed


@pytest.mark.usefixtures("processes")
class TestAnyPoint:
    """Wherever a worker fails, mid-stream included, the end is the same."""

    @pytest.mark.parametrize(
        "name", ["add", "flush", "flush_track", "send_track", "send_operations", "accepted"]
    )
    @pytest.mark.parametrize("call", [1, 3])
    def test_raise_anywhere(self, braze, monkeypatch, name, call):
        """The n-th call of a worker method raising ends send() with all accounted."""
        calls = fail_on_call(monkeypatch, name, call=call)
        messages = mixed(600)
        outcomes = Outcomes()
        # A small window: the reading thread waits on the workers, too.
        result = bounded(lambda: send(braze.url, messages, workers=3, window=8, **outcomes.hooks()))
        if calls[0] < call:
            pytest.fail(f"_Worker.{name} was called only {calls[0]} times")
        assert_stopped_with_sender_error(result, messages)
        assert outcomes.decided_once(messages)
        # What the stand-in accepted was reported delivered, never failed.
        delivered = {mid for mid, fate, _ in outcomes.outcomes if fate == "delivered"}
        assert len(delivered) == result.report.delivered

    def test_other_workers_stop_too(self, braze, monkeypatch):
        """One worker's failure stops the others: their later messages are not sent."""
        fail_on_call(monkeypatch, "send_track")
        messages = tracks(3_000, users=50)
        outcomes = Outcomes()
        result = bounded(
            lambda: send(braze.url, messages, workers=4, window=20, **outcomes.hooks())
        )
        assert_stopped_with_sender_error(result, messages)
        assert outcomes.decided_once(messages)
        assert result.report.delivered < len(messages) // 2
        assert any("unexpected error (RuntimeError)" in r for r in outcomes.reasons())


@pytest.mark.usefixtures("processes")
class TestCallersErrors:
    """The caller's own errors are not ours to wrap: they come back as they are."""

    def test_before_request_error_reraised(self, braze):
        """A before_request hook that raises stops sending; send() re-raises it."""

        def commit() -> None:
            raise OSError("disk full")

        messages = tracks(200)
        outcomes = Outcomes()
        result = bounded(
            lambda: send(braze.url, messages, workers=2, before_request=commit, **outcomes.hooks())
        )
        assert isinstance(result, OSError)
        assert str(result) == "disk full"
        # As documented, no hook is called once one has raised: nothing is told.
        assert outcomes.outcomes == []
        assert braze.requests == []


class TestPreparing:
    """An unexpected error preparing one message costs only that message (in this process).

    With processes the children prepare; tests/test_pool.py pins the same there.
    """

    def test_translation_bug_fails_one_message(self, braze, monkeypatch):
        """The message whose translation raised fails with a reason; the rest are delivered."""
        original = _client.translate

        def translate(message: Any, settings: Any) -> Any:
            if message["messageId"] == "m7":
                raise TypeError("bug in translate")
            return original(message, settings)

        monkeypatch.setattr(_client, "translate", translate)
        messages = tracks(20)
        report = bounded(lambda: send(braze.url, messages))
        assert report.delivered == 19
        [failure] = report.failed
        assert failure.message_id == "m7"
        assert failure.reason == "not sent: unexpected error preparing it (TypeError)"
        assert failure.status is None
        assert len(braze.accepted_events) == 19


class WaitWarned(logging.Handler):
    """Sets ``event`` when the sender warns that it is about to wait (retry or 429)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        """Note the warning."""
        self.event.set()


def users_on_two_workers() -> tuple[str, str]:
    """Two users the client sends from different workers of two."""
    by_worker: dict[int, str] = {}
    for n in range(100):
        user = f"u{n}"
        by_worker.setdefault(zlib.crc32(f"external_id:{user}".encode()) % 2, user)
    return by_worker[0], by_worker[1]


@pytest.mark.usefixtures("processes")
class TestWaitsEnd:
    """When one worker fails, another waiting out a backoff or a 429 pause stops at once."""

    @pytest.mark.parametrize(
        "fault",
        [Fault.status(503), Fault.rate_limited(retry_after=120)],
        ids=["backoff", "rate-limit-pause"],
    )
    def test_wait_ends_when_another_worker_fails(self, braze, monkeypatch, caplog, fault):
        """Worker 0 waits a minute or two; worker 1 fails: send() ends well before."""
        waiting_user, failing_user = users_on_two_workers()
        braze.inject(fault)
        waiting = WaitWarned()
        original = _delivery._Worker.send_track

        def send_track(self: Any, messages: Any) -> None:
            # One message, or a bundle of one worker's messages (processes=2).
            if f"external_id:{failing_user}" in messages[0].user_keys():
                # Fail once the other worker has started its long wait.
                waiting.event.wait(10.0)
                raise RuntimeError("bug in send_track")
            original(self, messages)

        monkeypatch.setattr(_delivery._Worker, "send_track", send_track)
        logger = logging.getLogger("segment_braze")
        caplog.set_level(logging.WARNING, logger="segment_braze")
        logger.addHandler(waiting)
        try:
            messages = [track("w", user=waiting_user), track("f", user=failing_user)]
            outcomes = Outcomes()
            result = bounded(
                lambda: send(
                    braze.url,
                    messages,
                    workers=2,
                    backoff_initial=60.0,
                    backoff_max=60.0,
                    **outcomes.hooks(),
                ),
                bound=10.0,
            )
        finally:
            logger.removeHandler(waiting)
        assert waiting.event.is_set()
        assert_stopped_with_sender_error(result, messages)
        assert outcomes.decided_once(messages)
        assert outcomes.reasons() == {
            "not sent: sending stopped",
            "not sent: the sender stopped on an unexpected error (RuntimeError)",
        }
        assert len(braze.requests) == 1
