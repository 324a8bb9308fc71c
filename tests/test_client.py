"""BrazeClient end to end, against BrazeStandIn over real loopback sockets.

Every test checks exact accounting: each input message is delivered, failed or
dropped exactly once in the report, and what the stand-in kept matches what the
report says was delivered. Expectations come from issue 4 and Braze's REST
documentation, not from the implementation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import logging
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

import segment_braze
from segment_braze import (
    AttributeCache,
    AuthenticationError,
    BrazeClient,
    DeliveryReport,
    Event,
    Identifier,
    Purchase,
    SenderError,
    Settings,
    SettingsError,
    Translation,
    UserAttributes,
    UserOperation,
    translate,
)
from segment_braze._deliver import delivery as _delivery
from segment_braze._deliver.transport import RetryPolicy
from segment_braze.testing import BrazeStandIn, Fault, RecordedRequest

KEY = "test-key"
TIME = "2024-05-01T12:00:00Z"
BRAZE_TIME = "2024-05-01T12:00:00.000Z"
TRACK = "/users/track"
MAX_BODY = 4 * 1024 * 1024
# How much later than its start a request may reach the stand-in: scheduling on a
# busy machine, and a worker's first connection (see TestClientRateLimit).
LAG = 0.2
# Small backoffs and seeded jitter: retries are quick and reproducible. A long
# linger keeps batch boundaries exact: inputs here are lists, read at once, so
# batches close only when full or at the end, never because the input paused.
FAST: dict[str, Any] = {"backoff_initial": 0.001, "backoff_max": 0.01, "seed": 7, "linger": 5.0}


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a class's tests in one process and with two translation processes.

    With processes, the children hand back bundles of messages per worker
    shard: every guarantee below must hold for them too.
    """
    count: int = request.param
    monkeypatch.setitem(FAST, "processes", count)
    return count


# -- building inputs ---------------------------------------------------------------


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def settings_for(braze: BrazeStandIn, **options: Any) -> Settings:
    """Settings pointing at the stand-in."""
    return Settings(
        rest_api_key=KEY, rest_endpoint=braze.url, allow_custom_endpoint=True, **options
    )


def send(
    braze: BrazeStandIn,
    messages: Any,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> DeliveryReport:
    """Send ``messages`` to the stand-in with a fresh client."""
    with BrazeClient(settings or settings_for(braze), **{**FAST, **options}) as client:
        return client.send(messages)


def track(mid: str, *, user: str = "u1", **fields: Any) -> dict[str, Any]:
    """A Segment track call whose event carries its messageId as property ``mid``."""
    return {
        "type": "track",
        "userId": user,
        "event": "Signed Up",
        "timestamp": TIME,
        "messageId": mid,
        "properties": {"mid": mid, **fields},
    }


def identify(mid: str, *, user: str = "u1", **traits: Any) -> dict[str, Any]:
    """A Segment identify call whose attributes carry its messageId as ``mid``."""
    return {
        "type": "identify",
        "userId": user,
        "messageId": mid,
        "traits": {"mid": mid, **traits},
    }


def tracks(count: int, *, users: int = 7, prefix: str = "m") -> list[dict[str, Any]]:
    """``count`` track calls spread over ``users`` users."""
    return [track(f"{prefix}{n}", user=f"u{n % users}") for n in range(count)]


def who(user: str) -> Identifier:
    """An external_id identifier."""
    return Identifier(kind="external_id", value=user)


def objects(
    mid: str,
    *,
    attributes: int = 0,
    events: int = 0,
    purchases: int = 0,
    user: str = "u1",
    **extra: Any,
) -> Translation:
    """A hand-built Translation with that many objects, each tagged with ``mid``."""
    return Translation(
        message_id=mid,
        attributes=tuple(
            UserAttributes(identifier=who(user), attributes={"mid": mid, "i": i, **extra})
            for i in range(attributes)
        ),
        events=tuple(
            Event(
                identifier=who(user),
                name="Viewed",
                time=BRAZE_TIME,
                properties={"mid": mid, "i": i, **extra},
            )
            for i in range(events)
        ),
        purchases=tuple(
            Purchase(
                identifier=who(user),
                product_id="sku-1",
                currency="USD",
                price=1,
                quantity=1,
                time=BRAZE_TIME,
                properties={"mid": mid, "i": i, **extra},
            )
            for i in range(purchases)
        ),
    )


def deletion(mid: str, user: str) -> Translation:
    """A Translation deleting ``user`` (``""`` is an entry Braze refuses)."""
    operation = UserOperation(path="/users/delete", key="external_ids", entry=user)
    return Translation(message_id=mid, operations=(operation,))


# -- reading what happened ---------------------------------------------------------


def mid_of(obj: dict[str, Any]) -> str | None:
    """The ``mid`` tag of a /users/track object (attributes or properties)."""
    if "mid" in obj:
        return obj["mid"]
    return obj.get("properties", {}).get("mid")


def kept(braze: BrazeStandIn) -> Counter[str]:
    """How many objects the stand-in kept for each message, by ``mid``."""
    found = [*braze.accepted_attributes, *braze.accepted_events, *braze.accepted_purchases]
    return Counter(mid for mid in map(mid_of, found) if mid is not None)


def body_objects(request: RecordedRequest) -> list[tuple[str, dict[str, Any]]]:
    """The ``(array, object)`` pairs of a recorded /users/track body."""
    body = request.body or {}
    return [
        (array, obj)
        for array in ("attributes", "events", "purchases")
        for obj in body.get(array, [])
    ]


def entries(request: RecordedRequest) -> list[Any]:
    """The entries of a recorded user-management body."""
    body = request.body or {}
    return [entry for value in body.values() if isinstance(value, list) for entry in value]


def message_id(message: Any) -> str | None:
    """The messageId of an input message, if it has one."""
    if isinstance(message, Translation):
        return message.message_id
    return message.get("messageId") if isinstance(message, dict) else None


class Outcomes:
    """Records ``on_outcome`` and ``on_failure`` calls (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[tuple[Any, str, str | None]] = []
        self.failures: list[tuple[Any, str]] = []

    def on_outcome(self, message: Any, outcome: str, reason: str | None) -> None:
        """Record one outcome."""
        with self.lock:
            self.outcomes.append((message, outcome, reason))

    def on_failure(self, message: Any, reason: str) -> None:
        """Record one dead letter."""
        with self.lock:
            self.failures.append((message, reason))

    def hooks(self) -> dict[str, Any]:
        """Keyword arguments for BrazeClient."""
        return {"on_outcome": self.on_outcome, "on_failure": self.on_failure}

    def ids(self, outcome: str, labels: dict[int, str]) -> Counter[str]:
        """Report labels of the messages with that outcome."""
        return Counter(labels[id(m)] for m, o, _ in self.outcomes if o == outcome)


def assert_accounted(
    report: DeliveryReport, inputs: list[Any], outcomes: Outcomes | None = None
) -> None:
    """Every input is in the report exactly once (and in on_outcome, if recorded)."""
    assert report.total == len(inputs)
    # The report names a message by its messageId, else by its input position.
    labels = {id(m): message_id(m) or f"#{n}" for n, m in enumerate(inputs)}
    reported = Counter(
        [*(f.message_id for f in report.failed), *(mid for mid, _ in report.dropped)]
    )
    assert all(count == 1 for count in reported.values()), reported
    assert set(reported) <= set(labels.values())
    if outcomes is not None:
        assert len(outcomes.outcomes) == len(inputs)
        assert Counter(id(m) for m, _, _ in outcomes.outcomes) == Counter(map(id, inputs))
        assert sum(outcomes.ids("delivered", labels).values()) == report.delivered
        assert outcomes.ids("failed", labels) == Counter(f.message_id for f in report.failed)
        assert outcomes.ids("dropped", labels) == Counter(mid for mid, _ in report.dropped)


def assert_kept_once(braze: BrazeStandIn, delivered: set[str], per_message: int = 1) -> None:
    """The stand-in kept exactly the delivered messages' objects, once each."""
    assert kept(braze) == Counter(dict.fromkeys(delivered, per_message))


def ids(prefix: str, count: int) -> set[str]:
    """``{prefix0, ..., prefix<count-1>}``."""
    return {f"{prefix}{n}" for n in range(count)}


# -- a server that only redirects -------------------------------------------------
# BrazeStandIn never redirects, so the redirect test needs this one small server.


class _Redirector(http.server.ThreadingHTTPServer):
    """A loopback server answering every request with a redirect to ``target``."""

    daemon_threads = True

    def __init__(self, target: str, status: int) -> None:
        self.target, self.status = target, status
        super().__init__(("127.0.0.1", 0), _RedirectHandler)

    def server_bind(self) -> None:
        """Bind without a host-name lookup."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Redirector

    def do_POST(self) -> None:
        """Read the body, then redirect to the same path on the target."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.server.status)
        self.send_header("Location", self.server.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@contextlib.contextmanager
def _redirecting(target: str, status: int) -> Iterator[str]:
    """Run a redirecting server; yield its URL."""
    server = _Redirector(target, status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def do_POST(self) -> None:
        """Record the request line's target; answer as Braze does."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append(self.path)
        body = b'{"message":"success"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


class _Proxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def server_bind(self) -> None:
        """Bind without a host-name lookup."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


@contextlib.contextmanager
def _proxy() -> Iterator[_Proxy]:
    """Run a forward proxy that answers every POST itself."""
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- tests -------------------------------------------------------------------------


@pytest.mark.usefixtures("processes")
class TestAccounting:
    """Every message ends delivered, failed or dropped, exactly once."""

    def test_all_delivered_once(self, braze):
        """With no faults every message is delivered and kept exactly once."""
        inputs = [
            identify(f"i{n}", user=f"u{n % 11}")
            if n % 3 == 0
            else track(f"t{n}", user=f"u{n % 11}")
            for n in range(300)
        ]
        outcomes = Outcomes()
        report = send(braze, inputs, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert report.delivered == 300
        assert (report.failed, report.dropped) == ((), ())
        assert_kept_once(braze, {m["messageId"] for m in inputs})
        assert report.requests == len(braze.requests)
        assert report.retries == 0

    def test_python_values_delivered(self, braze):
        """Messages built in Python (a datetime, a Decimal, a date) reach Braze as JSON."""
        inputs = [
            {
                **track(f"p{n}", user=f"u{n % 3}", amount=Decimal("1.50"), day=dt.date(2026, 1, n)),
                "timestamp": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            }
            for n in range(1, 7)
        ]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        assert report.delivered == 6
        assert sorted(
            (e["properties"]["mid"], e["time"], e["properties"]["amount"], e["properties"]["day"])
            for e in braze.accepted_events
        ) == [(f"p{n}", "2026-01-02T03:04:05.000Z", 1.5, f"2026-01-0{n}") for n in range(1, 7)]

    def test_translations_accepted_as_input(self, braze):
        """Translation objects, from translate() or built by hand, mix with dicts."""
        settings = settings_for(braze)
        inputs: list[Any] = [
            track("d0"),
            translate(track("t0"), settings),
            objects("h0", attributes=1, events=2, purchases=1),
            translate(identify("t1", user="u2"), settings),
            track("d1", user="u3"),
        ]
        report = send(braze, inputs, settings=settings)
        assert_accounted(report, inputs)
        assert report.delivered == 5
        assert kept(braze) == Counter({"d0": 1, "t0": 1, "h0": 4, "t1": 1, "d1": 1})

    def test_requests_and_retries_counted(self, braze):
        """report.requests counts every HTTP request, report.retries the repeats."""
        braze.inject(Fault.status(503), times=2)
        report = send(braze, [track("m0")])
        assert (report.requests, report.retries) == (3, 2)
        assert report.requests == len(braze.requests)

    def test_empty_input(self, braze):
        """Sending nothing sends nothing and reports nothing."""
        report = send(braze, [])
        assert report == DeliveryReport()
        assert braze.requests == []


class TestBatching:
    """Requests respect Braze's per-request limits and never split a message."""

    def assert_never_split(self, braze: BrazeStandIn) -> None:
        """Each message's objects arrived together, in one request."""
        where: dict[str, set[int]] = {}
        for index, request in enumerate(braze.requests):
            for _, obj in body_objects(request):
                where.setdefault(mid_of(obj) or "?", set()).add(index)
        assert all(len(found) == 1 for found in where.values()), where

    def test_75_objects_in_total_by_default(self, braze):
        """By default a /users/track request carries at most 75 objects in total."""
        shapes = [(n % 4, (n * 7) % 11, (n * 5) % 3) for n in range(80)]
        inputs = [
            objects(f"m{n}", attributes=a, events=e, purchases=p, user=f"u{n % 9}")
            for n, (a, e, p) in enumerate(shapes)
            if a + e + p
        ]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        assert report.delivered == len(inputs)
        sizes = [len(body_objects(r)) for r in braze.requests]
        assert max(sizes) <= 75
        assert all(r.status == 201 for r in braze.requests)
        self.assert_never_split(braze)
        assert kept(braze) == Counter({t.message_id: t.object_count for t in inputs})

    def test_legacy_limits_75_per_array(self):
        """With legacy_track_limits a request carries up to 75 of each array."""
        with BrazeStandIn(api_key=KEY, legacy_limits=True) as braze:
            settings = settings_for(braze, legacy_track_limits=True)
            inputs = [
                objects(f"m{n}", attributes=20, events=20, purchases=20, user=f"u{n}")
                for n in range(10)
            ]
            report = send(braze, inputs, settings=settings, workers=1)
            assert_accounted(report, inputs)
            assert report.delivered == 10
            for request in braze.requests:
                counts = Counter(array for array, _ in body_objects(request))
                assert max(counts.values()) <= 75
            # The legacy allowance is used: more than 75 objects in one request.
            assert max(len(body_objects(r)) for r in braze.requests) > 75
            self.assert_never_split(braze)
            assert kept(braze) == Counter(dict.fromkeys(ids("m", 10), 60))

    @pytest.mark.parametrize(
        ("legacy", "shape"),
        [
            (False, {"events": 76}),
            (False, {"attributes": 25, "events": 26, "purchases": 25}),
            (True, {"events": 76}),
            (True, {"purchases": 76}),
        ],
    )
    def test_message_over_the_object_limit_fails_unsent(self, legacy, shape):
        """A message with more objects than one request may carry fails, unsent."""
        with BrazeStandIn(api_key=KEY, legacy_limits=legacy) as braze:
            settings = settings_for(braze, legacy_track_limits=legacy)
            big = objects("big", **shape)
            inputs = [track("a"), big, track("b")]
            outcomes = Outcomes()
            report = send(braze, inputs, settings=settings, **outcomes.hooks())
            assert_accounted(report, inputs, outcomes)
            [failure] = report.failed
            assert failure.message_id == "big"
            assert failure.status is None
            assert "not sent" in failure.reason
            assert str(big.object_count) in failure.reason
            assert "75" in failure.reason
            assert_kept_once(braze, {"a", "b"})
            assert all(mid_of(o) != "big" for r in braze.requests for _, o in body_objects(r))

    def test_legacy_limits_take_75_of_each(self):
        """Under legacy limits a message of 75+75+75 objects goes in one request."""
        with BrazeStandIn(api_key=KEY, legacy_limits=True) as braze:
            settings = settings_for(braze, legacy_track_limits=True)
            inputs = [objects("full", attributes=75, events=75, purchases=75)]
            report = send(braze, inputs, settings=settings)
            assert report.delivered == 1
            assert [len(body_objects(r)) for r in braze.requests] == [225]

    @pytest.mark.parametrize(
        ("path", "settings_options", "make"),
        [
            ("/users/delete", {}, lambda n: {"type": "delete", "userId": f"u{n}"}),
            (
                "/users/identify",
                {},
                lambda n: {"type": "alias", "userId": f"u{n}", "previousId": f"anon-{n}"},
            ),
            (
                "/users/merge",
                {"alias_calls": "merge"},
                lambda n: {"type": "alias", "userId": f"u{n}", "previousId": f"old-{n}"},
            ),
        ],
    )
    def test_user_management_50_entries_per_request(self, path, settings_options, make):
        """/users/delete, /users/identify and /users/merge get at most 50 entries each."""
        with BrazeStandIn(api_key=KEY) as braze:
            settings = settings_for(braze, **settings_options)
            inputs = [{**make(n), "messageId": f"m{n}"} for n in range(120)]
            report = send(braze, inputs, settings=settings, workers=1)
            assert_accounted(report, inputs)
            assert report.delivered == 120
            assert {r.path for r in braze.requests} == {path}
            assert [len(entries(r)) for r in braze.requests] == [50, 50, 20]
            assert len(braze.accepted_entries(path)) == 120

    def test_user_management_limit_with_workers(self, braze):
        """With several workers no user-management request exceeds 50 entries."""
        inputs = [{"type": "delete", "userId": f"u{n}", "messageId": f"m{n}"} for n in range(400)]
        report = send(braze, inputs)
        assert report.delivered == 400
        assert max(len(entries(r)) for r in braze.requests) <= 50
        assert sorted(braze.accepted_entries("/users/delete")) == sorted(
            f"u{n}" for n in range(400)
        )

    def test_bodies_stay_under_4_mb(self, braze):
        """Large messages are packed so that no body exceeds Braze's 4 MB."""
        wide = {f"k{n}": "x" * 250 for n in range(1000)}  # about 260 KB per message
        inputs = [
            Translation(
                message_id=f"m{n}",
                attributes=(
                    UserAttributes(identifier=who(f"u{n}"), attributes={"mid": f"m{n}", **wide}),
                ),
            )
            for n in range(20)
        ]
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert report.delivered == 20
        assert len(braze.requests) > 1
        assert all(r.status == 201 for r in braze.requests)
        assert all(int(r.headers["content-length"]) <= MAX_BODY for r in braze.requests)
        assert_kept_once(braze, ids("m", 20))

    def test_message_over_4_mb_fails_unsent(self, braze):
        """A message whose objects alone exceed 4 MB fails without being sent."""
        huge = {f"k{n}": "x" * 250 for n in range(17_000)}
        big = Translation(
            message_id="big",
            attributes=(UserAttributes(identifier=who("u1"), attributes={"mid": "big", **huge}),),
        )
        inputs = [track("a"), big]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        [failure] = report.failed
        assert (failure.message_id, failure.status) == ("big", None)
        assert "4 MB" in failure.reason
        assert_kept_once(braze, {"a"})


class TestHeaders:
    """Every request carries Braze's headers; redirects are not followed."""

    def test_headers(self, braze):
        """Authorization Bearer, Content-Type JSON and a User-Agent naming the library."""
        send(braze, [track("m0"), {"type": "delete", "userId": "u1", "messageId": "d"}])
        assert {r.path for r in braze.requests} == {TRACK, "/users/delete"}
        for request in braze.requests:
            assert request.headers["authorization"] == f"Bearer {KEY}"
            assert request.headers["content-type"] == "application/json"
            assert f"segment-braze/{segment_braze.__version__}" in request.headers["user-agent"]

    @pytest.mark.parametrize("session", [False, True])
    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirect_not_followed(self, braze, status, session):
        """A redirect fails the request's messages with its status; nothing follows it."""
        with _redirecting(braze.url, status) as url:
            settings = Settings(rest_api_key=KEY, rest_endpoint=url, allow_custom_endpoint=True)
            inputs = [track("m0"), track("m1")]
            options = {"session": requests.Session()} if session else {}
            report = send(braze, inputs, settings=settings, **options)
        assert_accounted(report, inputs)
        assert report.delivered == 0
        assert {f.status for f in report.failed} == {status}
        assert all("redirect" in f.reason for f in report.failed)
        assert report.retries == 0
        assert braze.requests == []


@pytest.mark.usefixtures("processes")
class TestPartialErrors:
    """A 2xx with ``errors`` fails only the messages owning the named objects."""

    def test_only_the_named_message_fails(self, braze):
        """One rejected event fails its message; the others are delivered."""
        braze.inject(Fault.partial_errors(("events", 1)))
        inputs = [track("m0"), track("m1"), track("m2")]
        outcomes = Outcomes()
        report = send(braze, inputs, workers=1, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert report.delivered == 2
        [failure] = report.failed
        assert failure.message_id == "m1"
        assert failure.status == 201
        assert "Injected fault: Braze could not process this object" in failure.reason
        assert report.retries == 0
        assert_kept_once(braze, {"m0", "m2"})

    def test_error_index_maps_to_its_message(self, braze):
        """An error's index into an array is traced to the message that owns it."""
        inputs = [
            objects("a", events=2),
            objects("b", events=1, purchases=1),
            objects("c", events=1, purchases=1),
        ]
        # events: a, a, b, c; purchases: b, c
        braze.inject(Fault.partial_errors(("events", 2), ("purchases", 1)))
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert report.delivered == 1
        assert sorted(f.message_id for f in report.failed) == ["b", "c"]
        assert {f.status for f in report.failed} == {201}
        # Braze kept the objects it did not name, though their messages failed.
        assert kept(braze) == Counter({"a": 2, "b": 1, "c": 1})

    def test_braze_rule_violation_reported(self, braze):
        """An object Braze's own rules reject fails its message with Braze's error type."""
        bad = Translation(
            message_id="bad",
            events=(Event(identifier=who("u1"), name="x" * 256, time=BRAZE_TIME),),
        )
        inputs = [track("m0"), bad, track("m1")]
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        [failure] = report.failed
        assert (failure.message_id, failure.status) == ("bad", 201)
        assert "Event name must be a string of 1 to 255 characters" in failure.reason
        assert_kept_once(braze, {"m0", "m1"})


class TestRateLimited:
    """A 429 is waited out as Braze says, then retried."""

    @pytest.mark.parametrize(
        "fault",
        [
            Fault.rate_limited(retry_after=1),
            Fault.rate_limited(reset_in=1, reset_style="epoch"),
            Fault.rate_limited(reset_in=1, reset_style="seconds"),
        ],
        ids=["retry-after", "reset-epoch", "reset-seconds"],
    )
    def test_429_retried_and_delivered(self, braze, fault):
        """After a 429 in any of Braze's header styles the batch is retried and delivered."""
        braze.inject(fault)
        inputs = [track("m0"), track("m1")]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        assert report.delivered == 2
        assert [r.status for r in braze.requests] == [429, 201]
        assert (report.requests, report.retries) == (2, 1)
        assert_kept_once(braze, {"m0", "m1"})

    def test_endless_429_fails(self, braze):
        """Past max_rate_limit_waits consecutive 429s the messages fail with 429."""
        braze.inject(Fault.rate_limited(retry_after=0), times=3)
        inputs = [track("m0")]
        report = send(braze, inputs, max_rate_limit_waits=2)
        assert_accounted(report, inputs)
        [failure] = report.failed
        assert failure.status == 429
        assert "rate limited" in failure.reason
        assert [r.status for r in braze.requests] == [429, 429, 429]


@pytest.mark.usefixtures("processes")
class TestRetries:
    """5xx and dropped connections are retried with backoff, up to max_attempts."""

    @pytest.mark.parametrize(
        "fault",
        [*(Fault.status(code) for code in (500, 502, 503, 504)), Fault.disconnect()],
        ids=["500", "502", "503", "504", "disconnect"],
    )
    def test_retried_then_delivered(self, braze, fault):
        """Two failures, then success: the batch is delivered once."""
        braze.inject(fault, times=2)
        inputs = [track("m0"), track("m1"), track("m2")]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        assert report.delivered == 3
        assert (report.requests, report.retries) == (3, 2)
        assert [r.fault for r in braze.requests] == [fault, fault, None]
        assert_kept_once(braze, {"m0", "m1", "m2"})

    @pytest.mark.parametrize(
        ("faults", "status", "reason"),
        [
            ((Fault.status(500), Fault.disconnect(), Fault.status(503)), 503, "HTTP 503"),
            ((Fault.status(503), Fault.status(502), Fault.disconnect()), None, "connection error"),
            ((Fault.disconnect(), Fault.disconnect(), Fault.status(500)), 500, "HTTP 500"),
        ],
    )
    def test_gives_up_with_the_last_reason(self, braze, faults, status, reason):
        """After max_attempts failures the messages fail with the last answer's reason."""
        for fault in faults:
            braze.inject(fault)
        inputs = [track("m0"), track("m1")]
        outcomes = Outcomes()
        report = send(braze, inputs, max_attempts=3, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert report.delivered == 0
        assert {f.status for f in report.failed} == {status}
        assert all(reason in f.reason for f in report.failed)
        assert all("3 attempts" in f.reason for f in report.failed)
        assert len(braze.requests) == 3
        assert kept(braze) == Counter()

    def test_default_policy(self, braze):
        """Defaults: backoff 0.5 s doubling to 30 s, 6 attempts, 10 s/30 s, 32 workers."""
        with BrazeClient(settings_for(braze)) as client:
            assert client.policy == RetryPolicy(
                max_attempts=6,
                backoff_initial=0.5,
                backoff_max=30.0,
                connect_timeout=10.0,
                read_timeout=30.0,
            )
            assert (client.workers, client.window) == (32, 125)


class TestTimeouts:
    """A timeout after Braze received the request is retried: at least once."""

    def test_timeout_after_receipt_retried(self, braze):
        """The batch is delivered; Braze may hold it twice (no idempotency key)."""
        # A second apart, so that a loaded machine's ordinary answer is never late.
        braze.inject(Fault.timeout_after_receipt(delay=2.0))
        inputs = [track("m0"), track("m1")]
        report = send(braze, inputs, read_timeout=1.0)
        assert_accounted(report, inputs)
        assert report.delivered == 2
        assert report.retries == 1
        copies = kept(braze)
        assert set(copies) == {"m0", "m1"}
        assert all(1 <= count <= 2 for count in copies.values())

    def test_timeouts_exhausted_fail_without_status(self, braze):
        """Timeouts until max_attempts fail the messages with status None."""
        braze.inject(Fault.timeout_after_receipt(delay=1.0), times=2)
        inputs = [track("m0")]
        report = send(braze, inputs, read_timeout=0.3, max_attempts=2)
        assert_accounted(report, inputs)
        [failure] = report.failed
        assert failure.status is None
        assert "timed out" in failure.reason
        # At-least-once: Braze kept both attempts although the client could not know.
        assert kept(braze) == Counter({"m0": 2})

    def test_slow_answer_within_timeout(self, braze):
        """A slow answer inside the read timeout is neither retried nor duplicated."""
        braze.inject(Fault.slow(delay=0.05))
        report = send(braze, [track("m0")])
        assert (report.delivered, report.retries) == (1, 0)
        assert_kept_once(braze, {"m0"})


@pytest.mark.usefixtures("processes")
class TestTooLarge:
    """413 splits the batch; a single message that is too large fails."""

    def test_413_splits_and_resends(self, braze):
        """After a 413 the halves are sent and every message delivered once."""
        braze.inject(Fault.too_large())
        inputs = tracks(10)
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert report.delivered == 10
        assert [r.status for r in braze.requests] == [413, 201, 201]
        assert [len(body_objects(r)) for r in braze.requests] == [10, 5, 5]
        assert_kept_once(braze, ids("m", 10))

    def test_split_until_it_fits(self):
        """Batches over the server's size limit are halved until they fit."""
        with BrazeStandIn(api_key=KEY, max_body_bytes=2_000) as braze:
            inputs = tracks(40)
            report = send(braze, inputs, workers=1)
            assert_accounted(report, inputs)
            assert report.delivered == 40
            accepted = [r for r in braze.requests if r.status == 201]
            assert all(int(r.headers["content-length"]) <= 2_000 for r in accepted)
            assert_kept_once(braze, ids("m", 40))

    def test_single_message_too_large_fails(self):
        """One message over the size limit fails with 413; the others are delivered."""
        with BrazeStandIn(api_key=KEY, max_body_bytes=1_000) as braze:
            big = track("big", padding=["y" * 200] * 6)
            inputs = [track("m0"), big, track("m1"), track("m2")]
            report = send(braze, inputs, workers=1)
            assert_accounted(report, inputs)
            [failure] = report.failed
            assert (failure.message_id, failure.status) == ("big", 413)
            assert_kept_once(braze, {"m0", "m1", "m2"})


class TestRefused:
    """400, 404, 415: the request's messages fail with Braze's message, no retry."""

    @pytest.mark.parametrize(
        ("code", "text"), [(400, "Bad Request"), (404, "Not Found"), (415, "Unsupported")]
    )
    def test_request_fails_without_retry(self, braze, code, text):
        """Only the refused request's messages fail; later requests are delivered."""
        braze.inject(Fault.status(code))
        inputs = tracks(150, users=1)
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert report.delivered == 75
        assert len(report.failed) == 75
        assert {f.status for f in report.failed} == {code}
        assert all(f"HTTP {code}" in f.reason and text in f.reason for f in report.failed)
        assert report.retries == 0
        assert [r.status for r in braze.requests] == [code, 201]
        assert_kept_once(braze, ids("m", 150) - {f.message_id for f in report.failed})

    def test_400_naming_every_object(self, braze):
        """A 400 whose errors name each object fails each message with its own error."""
        inputs = [
            Translation(
                message_id=f"bad{n}",
                events=(Event(identifier=who("u1"), name="x" * (256 + n), time=BRAZE_TIME),),
            )
            for n in range(3)
        ]
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert {f.message_id for f in report.failed} == {"bad0", "bad1", "bad2"}
        assert {f.status for f in report.failed} == {400}
        assert all("255 characters" in f.reason for f in report.failed)
        assert [r.status for r in braze.requests] == [400]

    def test_400_naming_one_entry_fails_only_it(self, braze):
        """A user-management 400 naming one entry fails that message; the rest are resent."""
        inputs = [deletion(f"d{n}", f"u{n}") for n in range(5)]
        inputs.insert(2, deletion("bad", ""))
        report = send(braze, inputs, workers=1)
        assert_accounted(report, inputs)
        assert [f.message_id for f in report.failed] == ["bad"]
        assert report.failed[0].status == 400
        assert report.delivered == 5
        assert sorted(braze.accepted_entries("/users/delete")) == [f"u{n}" for n in range(5)]


class TestAuthentication:
    """401/403 stop everything with an AuthenticationError carrying the report."""

    def test_wrong_key(self):
        """A key Braze does not know raises AuthenticationError naming the likely cause."""
        with BrazeStandIn(api_key="the-right-key") as braze:
            inputs = tracks(300)
            outcomes = Outcomes()
            with pytest.raises(AuthenticationError) as caught:
                send(braze, inputs, workers=1, **outcomes.hooks())
            error = caught.value
            assert error.status == 401
            text = str(error)
            assert "401" in text
            assert "cluster" in text
            assert KEY not in text
            report = error.report
            assert_accounted(report, inputs, outcomes)
            assert report.delivered == 0
            assert len(report.failed) == 300
            assert len(outcomes.failures) == 300
            assert report.retries == 0
            assert [r.status for r in braze.requests] == [401]
            assert kept(braze) == Counter()

    @pytest.mark.parametrize(("code", "cause"), [(401, "cluster"), (403, "permission")])
    def test_refusal_mid_send(self, braze, code, cause):
        """Delivered messages stay delivered; the refused ones fail; nothing is retried."""
        braze.inject(Fault.status(code), path="/users/delete")
        inputs: list[Any] = [
            *tracks(75, prefix="a"),
            *({"type": "delete", "userId": f"gone{n}", "messageId": f"d{n}"} for n in range(10)),
            *tracks(75, prefix="b"),
            *tracks(75, prefix="c"),
        ]
        outcomes = Outcomes()
        with pytest.raises(AuthenticationError) as caught:
            send(braze, inputs, workers=1, **outcomes.hooks())
        error = caught.value
        assert error.status == code
        assert cause in str(error)
        report = error.report
        assert_accounted(report, inputs, outcomes)
        # The deletes wait for 50 entries or the end of the input, so every track
        # batch is sent before the refused /users/delete.
        assert report.delivered == 225
        assert {f.message_id for f in report.failed} == ids("d", 10)
        assert len(outcomes.failures) == 10
        assert report.retries == 0
        assert braze.requests[-1].status == code
        assert [r.path for r in braze.requests] == [TRACK, TRACK, TRACK, "/users/delete"]
        assert_kept_once(braze, ids("a", 75) | ids("b", 75) | ids("c", 75))

    def test_refused_request_reports_its_status(self, braze):
        """Messages in the refused request fail with 401; never-sent ones with None."""
        braze.inject(Fault.status(401), path="/users/delete")
        # The tracks are for the deleted users, so the deletes go first.
        inputs: list[Any] = [
            *({"type": "delete", "userId": f"u{n}", "messageId": f"d{n}"} for n in range(10)),
            *tracks(75, prefix="c"),
        ]
        with pytest.raises(AuthenticationError) as caught:
            send(braze, inputs, workers=1)
        statuses = {f.message_id: f.status for f in caught.value.report.failed}
        assert {statuses[m] for m in ids("d", 10)} == {401}
        assert {statuses[m] for m in ids("c", 75)} == {None}


@pytest.mark.usefixtures("processes")
class TestDropped:
    """Invalid and untranslatable messages are dropped; the rest are still sent."""

    def test_invalid_messages_dropped(self, braze):
        """An InvalidMessage lands in dropped with its JSON path; others are delivered."""
        inputs: list[Any] = [
            track("m0"),
            {"type": "track", "userId": "u1", "timestamp": TIME, "messageId": "no-event"},
            {"type": "nonsense", "messageId": "bad-type"},
            {"type": "track", "userId": "u1", "timestamp": TIME},  # no messageId: position
            track("m1"),
        ]
        outcomes = Outcomes()
        report = send(braze, inputs, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert report.delivered == 2
        dropped = dict(report.dropped)
        assert set(dropped) == {"no-event", "bad-type", "#3"}
        assert all(reason.startswith("invalid message:") for reason in dropped.values())
        assert "$.event" in dropped["no-event"]
        assert outcomes.failures == []
        assert_kept_once(braze, {"m0", "m1"})

    def test_untranslatable_messages_dropped(self, braze):
        """Messages that translate to nothing are dropped with the translation's reason."""
        inputs: list[Any] = [
            {
                "type": "track",
                "anonymousId": "a1",
                "event": "E",
                "timestamp": TIME,
                "messageId": "anon",
            },
            {"type": "page", "userId": "u1", "timestamp": TIME, "messageId": "page"},
            Translation(message_id="given", dropped="not for Braze"),
            track("m0"),
        ]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        dropped = dict(report.dropped)
        assert set(dropped) == {"anon", "page", "given"}
        assert "anonymous" in dropped["anon"]
        assert dropped["given"] == "not for Braze"
        assert_kept_once(braze, {"m0"})

    def test_empty_translation_dropped(self, braze):
        """A Translation with no objects and no operations is dropped, not delivered."""
        inputs = [Translation(message_id="empty"), track("m0")]
        report = send(braze, inputs)
        assert_accounted(report, inputs)
        assert report.delivered == 1
        assert [mid for mid, _ in report.dropped] == ["empty"]


@pytest.mark.usefixtures("processes")
class TestCallbacks:
    """on_failure gets each failed message once; on_outcome every message once."""

    def test_on_failure_once_per_failed_message(self, braze):
        """The dead-letter hook receives the original message object and its reason."""
        braze.inject(Fault.partial_errors(("events", 0), ("events", 2)))
        inputs = [track("m0"), track("m1"), track("m2"), {"type": "bad", "messageId": "x"}]
        outcomes = Outcomes()
        report = send(braze, inputs, workers=1, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert sorted(map(id, (m for m, _ in outcomes.failures))) == sorted(
            [id(inputs[0]), id(inputs[2])]
        )
        reasons = {f.message_id: f.reason for f in report.failed}
        assert {message_id(m): r for m, r in outcomes.failures} == reasons

    def test_on_outcome_once_per_message(self, braze):
        """Each message's fate is told once, with a reason unless delivered."""
        braze.inject(Fault.partial_errors(("events", 1)))
        inputs = [track("m0"), track("m1"), {"type": "bad", "messageId": "x"}, track("m2")]
        outcomes = Outcomes()
        report = send(braze, inputs, workers=1, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        fates = {message_id(m): (o, r is None) for m, o, r in outcomes.outcomes}
        assert fates == {
            "m0": ("delivered", True),
            "m1": ("failed", False),
            "x": ("dropped", False),
            "m2": ("delivered", True),
        }

    @pytest.mark.parametrize("hook", ["on_failure", "on_outcome"])
    def test_raising_hook_does_not_hang(self, braze, hook):
        """A hook that raises never hangs send(): it raises the error or reports all."""
        braze.inject(Fault.status(400))
        inputs = tracks(2_000)
        ended: list[Any] = []

        def hook_that_fails(*args: Any) -> None:
            raise LookupError("the hook failed")

        def run() -> None:
            try:
                ended.append(send(braze, inputs, workers=1, window=10, **{hook: hook_that_fails}))
            except LookupError as err:
                ended.append(err)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        # A guard against a hang, not a timing assertion: the send takes well
        # under a second.
        thread.join(timeout=20)
        assert not thread.is_alive(), "send() hung after a hook raised"
        [end] = ended
        assert isinstance(end, LookupError) or end.total == len(inputs)


@pytest.mark.usefixtures("processes")
class TestOrdering:
    """One user's messages reach Braze in input order, even with several workers."""

    def test_per_user_order_with_four_workers(self, braze):
        """Events and attribute updates of each user arrive in input order."""
        braze.inject(Fault.status(503), times=3)
        inputs = []
        for n in range(200):
            user = f"u{n % 5}"
            if n % 4 == 3:
                inputs.append(identify(f"i{n}", user=user, seq=n))
            else:
                inputs.append(track(f"t{n}", user=user, seq=n))
        report = send(braze, inputs, workers=4)
        assert_accounted(report, inputs)
        assert report.delivered == 200
        for user in (f"u{k}" for k in range(5)):
            seqs = [
                e["properties"]["seq"] for e in braze.accepted_events if e["external_id"] == user
            ]
            assert seqs == sorted(seqs)
            assert len(seqs) == 30
            last = max(n for n in range(200) if n % 5 == int(user[1:]) and n % 4 == 3)
            assert braze.profiles[("external_id", user)]["seq"] == last

    def test_alias_visitor_before_identify(self, braze):
        """A visitor's anonymous events reach Braze before the identify that merges them."""
        settings = settings_for(braze, anonymous_users="alias")
        inputs: list[dict[str, Any]] = []
        for step in range(4):
            for visitor in range(20):
                anon = f"anon-{visitor}"
                mid = f"v{visitor}-{step}"
                if step < 3:
                    inputs.append(
                        {
                            "type": "track",
                            "anonymousId": anon,
                            "event": "Viewed",
                            "timestamp": TIME,
                            "messageId": mid,
                            "properties": {"mid": mid},
                        }
                    )
                else:
                    inputs.append(
                        {
                            "type": "identify",
                            "anonymousId": anon,
                            "userId": f"user-{visitor}",
                            "messageId": mid,
                            "traits": {"mid": mid},
                        }
                    )
        report = send(braze, inputs, settings=settings, workers=4)
        assert_accounted(report, inputs)
        assert report.delivered == 80
        assert braze.ignored == []
        last_event: dict[str, int] = {}
        identified_at: dict[str, int] = {}
        for index, request in enumerate(braze.requests):
            for _, obj in body_objects(request):
                if obj.get("name") == "Viewed":
                    last_event[obj["user_alias"]["alias_name"]] = index
            for entry in entries(request) if request.path == "/users/identify" else ():
                identified_at[entry["user_alias"]["alias_name"]] = index
        assert len(identified_at) == 20
        assert all(last_event[anon] < at for anon, at in identified_at.items())
        assert len(braze.accepted_entries("/users/identify")) == 20
        assert len(braze.accepted_events) == 60
        for visitor in range(20):
            assert ("external_id", f"user-{visitor}") in braze.profiles
            assert ("user_alias", f"anon-{visitor}", "segment_anonymous_id") not in braze.profiles


class TestLookupIdentifierOrder:
    """Users known only by email or phone keep their order too."""

    def test_email_users_in_input_order(self, braze):
        """Each email user's events arrive in input order, however the address is spelled."""
        settings = settings_for(braze, fallback_identifiers=("email", "phone"))
        inputs = []
        for n in range(120):
            person = n % 6
            spelled = f"Person{person}@Example.com" if n % 2 else f" person{person}@example.com"
            properties = {"seq": n, "email": spelled} if person % 3 else {"seq": n}
            if person % 3 == 0:
                properties["phone"] = f"+1415555{person:04d}"
            inputs.append(
                {
                    "type": "track",
                    "anonymousId": f"a{n}",
                    "event": "Viewed",
                    "timestamp": TIME,
                    "messageId": f"m{n}",
                    "properties": properties,
                }
            )
        report = send(braze, inputs, settings=settings, workers=4)
        assert_accounted(report, inputs)
        assert report.delivered == 120
        by_user: dict[str, list[int]] = {}
        for event in braze.accepted_events:
            user = event.get("email") or event["phone"]
            by_user.setdefault(user, []).append(event["properties"]["seq"])
        assert len(by_user) == 6
        assert all(seqs == sorted(seqs) and len(seqs) == 20 for seqs in by_user.values())


def email_identify(mid: str, user: str, email: str, **traits: Any) -> dict[str, Any]:
    """An identify of ``user`` with an email (merging its email-only profile first)."""
    return identify(mid, user=user, email=email, **traits)


def request_log(braze: BrazeStandIn) -> list[tuple[str, str]]:
    """``(path, what)`` for each request: the mids of track objects, or the entry keys."""
    log = []
    for request in braze.requests:
        if request.path == TRACK:
            mids = ",".join(str(mid_of(obj)) for _, obj in body_objects(request))
            log.append((TRACK, mids))
        else:
            log.append((request.path, ",".join(request.body or {})))
    return log


@pytest.mark.usefixtures("processes")
class TestEntriesBeforeTrack:
    """Entries marked before_track (emails_to_identify) go before the message's objects."""

    def test_email_profile_merged_before_the_email_is_written(self, braze):
        """The merge precedes the identify's track request, so Braze really merges."""
        settings = settings_for(braze, fallback_identifiers=("email",))
        visitor = {
            "type": "track",
            "event": "Viewed",
            "timestamp": TIME,
            "messageId": "v1",
            "properties": {"mid": "v1", "email": "Ann@Example.com"},
        }
        assert send(braze, [visitor], settings=settings).delivered == 1
        report = send(braze, [email_identify("i1", "u1", "ann@example.com")], settings=settings)
        assert report.delivered == 1
        assert request_log(braze)[1:] == [
            ("/users/identify", "emails_to_identify"),
            (TRACK, "i1"),
        ]
        assert list(braze.profiles) == [("external_id", "u1")]

    def test_one_users_order_kept_around_the_entry(self, braze):
        """The user's earlier objects go first; the batch's other users are not split."""
        settings = settings_for(braze, fallback_identifiers=("email",))
        inputs = [
            track("t1", user="u1"),
            track("t2", user="u2"),
            email_identify("i1", "u1", "a@example.com"),
            email_identify("i2", "u3", "c@example.com"),
            track("t3", user="u1"),
        ]
        report = send(braze, inputs, settings=settings, workers=1)
        assert report.delivered == 5
        assert request_log(braze) == [
            (TRACK, "t1,t2"),
            ("/users/identify", "emails_to_identify"),
            (TRACK, "i1,i2,t3"),
        ]
        assert [entry["external_id"] for entry in entries(braze.requests[1])] == ["u1", "u3"]

    def test_failed_entry_keeps_its_objects_back(self, braze):
        """If the entry is refused, the message fails and its objects are not sent."""
        settings = settings_for(braze, fallback_identifiers=("email",))
        braze.inject(Fault.status(400), path="/users/identify")
        inputs = [email_identify("i1", "u1", "a@example.com"), track("t1", user="u2")]
        outcomes = Outcomes()
        report = send(braze, inputs, settings=settings, workers=1, **outcomes.hooks())
        assert_accounted(report, inputs, outcomes)
        assert [(f.message_id, f.status) for f in report.failed] == [("i1", 400)]
        assert kept(braze) == Counter({"t1": 1})

    def test_entry_sent_when_the_cache_leaves_no_attribute(self, braze):
        """An identify whose attributes are all known still sends its merge entry."""
        settings = settings_for(braze, fallback_identifiers=("email",))
        with AttributeCache.memory() as cache:
            for mid in ("i1", "i2"):
                message = identify(mid, user="u1", email="a@example.com")
                message["traits"].pop("mid")
                report = send(braze, [message], settings=settings, attribute_cache=cache)
                assert report.delivered == 1
        assert [path for path, _ in request_log(braze)] == [
            "/users/identify",
            TRACK,
            "/users/identify",
        ]


class TestStreaming:
    """send() consumes its input lazily, holding a bounded window."""

    def test_generator_consumed_lazily(self, braze):
        """A generator of 200,000 messages is never read far ahead of what is decided."""
        workers, window, total = 4, 50, 200_000
        lock = threading.Lock()
        decided = [0]
        furthest = [0]

        def on_outcome(message: Any, outcome: str, reason: str | None) -> None:
            with lock:
                decided[0] += 1

        def messages() -> Iterator[Translation]:
            for n in range(total):
                with lock:
                    furthest[0] = max(furthest[0], n - decided[0])
                yield Translation(
                    events=(Event(identifier=who(f"u{n % 64}"), name="E", time=BRAZE_TIME),)
                )

        report = send(braze, messages(), workers=workers, window=window, on_outcome=on_outcome)
        assert report.delivered == total
        assert len(braze.accepted_events) == total
        # Each worker holds at most its queue (window) and the batch it is sending;
        # the reading loop holds one more message.
        assert furthest[0] <= workers * (window + 75) + workers + 1

    def test_slow_input_is_not_held_back(self, braze):
        """A message goes out after ``linger`` while the input blocks before the next one."""
        requests_before_second: list[int] = []

        def messages() -> Iterator[dict[str, Any]]:
            yield track("m0")
            # Block like a live source with nothing new, until m0 arrives (or 10 s).
            for _ in range(1000):
                if braze.requests:
                    break
                threading.Event().wait(0.01)
            requests_before_second.append(len(braze.requests))
            yield track("m1")

        report = send(braze, messages(), linger=0.05)
        assert report.delivered == 2
        assert requests_before_second == [1]


class TestInternalError:
    """A bug in a worker stops sending cleanly: every message still gets its fate."""

    def test_every_message_accounted_when_a_worker_fails(self, braze, monkeypatch):
        """Messages behind a failing one, already handed to its worker, are failed, not lost."""
        original = _delivery._Worker.add

        def add(self: Any, message: Any) -> None:
            if message.label == "m50":
                raise RuntimeError("bug in the sender")
            original(self, message)

        monkeypatch.setattr(_delivery._Worker, "add", add)
        outcomes = Outcomes()
        inputs = tracks(200, users=1)
        with pytest.raises(SenderError, match="RuntimeError") as caught:
            send(braze, inputs, workers=1, window=500, **outcomes.hooks())
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert caught.value.report.total == len(inputs)
        decided = Counter(message["messageId"] for message, _, _ in outcomes.outcomes)
        assert decided == Counter(message["messageId"] for message in inputs)


class TestClientRateLimit:
    """The client-side limiter keeps every endpoint group under its rate."""

    @pytest.mark.parametrize("endpoint", ["track", "users"])
    def test_never_more_than_the_limit_in_a_window(self, braze, endpoint):
        """No 0.5 s window of arrivals holds more than 20 requests of the group."""
        if endpoint == "track":
            inputs: list[Any] = [objects(f"m{n}", events=40, user=f"u{n}") for n in range(50)]
            options = {"track_rate_limit": (20, 0.5)}
        else:
            inputs = [deletion(f"m{n}", f"u{n}") for n in range(2_500)]
            options = {"users_rate_limit": (20, 0.5)}
        report = send(braze, inputs, **options)
        assert report.delivered == len(inputs)
        arrivals = sorted(r.received_at for r in braze.requests)
        assert len(arrivals) >= 50
        # The limiter spaces request starts; a request reaches the stand-in some
        # milliseconds later (tens, more on a busy machine or for a worker's first
        # request, which opens its connection). The allowance covers that lag and
        # still fails a limiter that is per worker, per fixed window, or absent:
        # each lets 21 requests arrive within far less than 0.3 s.
        spans = [later - first for first, later in zip(arrivals, arrivals[20:], strict=False)]
        assert min(spans) >= 0.5 - LAG, [round(t - arrivals[0], 3) for t in arrivals]


class TestSession:
    """A caller's requests.Session is used for every request."""

    def test_given_session_used(self, braze):
        """Requests go through the session passed in."""
        with requests.Session() as session:
            session.headers["X-Pipeline"] = "nightly"
            inputs = [track("m0"), {"type": "delete", "userId": "u9", "messageId": "d"}]
            report = send(braze, inputs, session=session)
        assert report.delivered == 2
        assert [r.headers.get("x-pipeline") for r in braze.requests] == ["nightly", "nightly"]

    def test_session_hooks_run_for_every_request(self, braze):
        """A response hook on the caller's session sees each request's answer."""
        statuses: list[int] = []
        with requests.Session() as session:
            session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
            inputs = [track("m0"), {"type": "delete", "userId": "u9", "messageId": "d"}]
            report = send(braze, inputs, session=session)
        assert report.delivered == 2
        assert sorted(statuses) == sorted(r.status for r in braze.requests)
        assert len(statuses) == 2

    def test_proxy_from_the_environment(self, monkeypatch):
        """HTTP_PROXY is honoured as requests honours it: the body goes to the proxy."""
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        with _proxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
            # Plain http:// is allowed for loopback hosts only (the key is never
            # sent in clear text elsewhere); port 9 has no server, so only the
            # proxy can have answered.
            settings = Settings(
                rest_api_key=KEY, rest_endpoint="http://localhost:9", allow_custom_endpoint=True
            )
            with BrazeClient(settings, **FAST) as client:
                report = client.send([track("m0")])
        assert report.delivered == 1
        assert proxy.seen == ["http://localhost:9/users/track"]

    @pytest.mark.parametrize("session", [False, True])
    def test_no_proxy_from_the_environment(self, braze, monkeypatch, session):
        """NO_PROXY sends a listed host around the proxy, in both transports."""
        for name in ("no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        with _proxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            options = {"session": requests.Session()} if session else {}
            report = send(braze, [track("m0")], **options)
        assert report.delivered == 1
        assert proxy.seen == []
        assert len(braze.requests) == 1

    @pytest.mark.parametrize("session", [False, True])
    def test_proxy_for_both_transports(self, monkeypatch, session):
        """HTTP_PROXY reaches the proxy with or without a session of the caller's."""
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        with _proxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
            settings = Settings(
                rest_api_key=KEY, rest_endpoint="http://localhost:9", allow_custom_endpoint=True
            )
            options = {"session": requests.Session()} if session else {}
            with BrazeClient(settings, **FAST, **options) as client:
                report = client.send([track("m0")])
        assert report.delivered == 1
        assert proxy.seen == ["http://localhost:9/users/track"]


class TestSettingsRequired:
    """A client needs a key and an endpoint."""

    @pytest.mark.parametrize(
        ("options", "missing"),
        [
            ({"datacenter": "US-01"}, "rest_api_key"),
            ({"rest_api_key": KEY}, "endpoint"),
            ({}, "rest_api_key"),
        ],
    )
    def test_settings_error(self, options, missing):
        """BrazeClient refuses settings without rest_api_key or endpoint."""
        with pytest.raises(SettingsError, match=missing):
            BrazeClient(Settings(**options))

    @pytest.mark.parametrize("option", ["workers", "max_attempts", "window"])
    def test_counts_must_be_positive(self, braze, option):
        """workers, max_attempts and window below 1 are refused."""
        with pytest.raises(ValueError, match=option):
            BrazeClient(settings_for(braze), **{option: 0})


class TestLogging:
    """The library logs through the segment_braze logger only, with no handlers."""

    def test_segment_braze_logger_only(self, braze, caplog):
        """Records from the library's modules all come from the segment_braze logger."""
        caplog.set_level(logging.DEBUG)
        braze.inject(Fault.status(503))
        send(braze, [track("m0")])
        package = str(Path(segment_braze.__file__).parent)
        ours = [r for r in caplog.records if r.pathname.startswith(package)]
        assert ours
        assert {r.name for r in ours} == {"segment_braze"}
        assert logging.getLogger("segment_braze").handlers == []
