"""A 2xx that is not Braze's JSON is a failure with a reason: never delivered, never cached.

Braze answers every accepted request with ``{"message": "success", ...}``. A
captive portal, a proxy's page, an empty body or JSON that is not that object
came from something in the way: retried like a transport fault, then failed.
"""

from __future__ import annotations

from typing import Any

import pytest

from segment_braze import AttributeCache, BrazeClient, DeliveryReport
from segment_braze.testing import BrazeStandIn

from .hostile import Conn, answer, serving
from .support import KEY, Outcomes, accounted, bounded, client_options, send, settings_for, tracks

pytestmark = pytest.mark.usefixtures("processes")

PORTAL = b"<!DOCTYPE html><html><head><title>Sign in to Hotel WiFi</title></head></html>"
JSON = "Content-Type: application/json"

NOT_BRAZE = [
    (answer("200 OK", PORTAL, "Content-Type: text/html; charset=utf-8"), "(text/html; charset"),
    (answer("200 OK", b""), "(an empty body)"),
    (answer("201 Created", b"[]", JSON), "(JSON array, not an object)"),
    (answer("201 Created", b'"success"', JSON), "(JSON string, not an object)"),
    (answer("201 Created", b'{"ok": true}', JSON), '(a JSON object without "message")'),
    (answer("204 No Content", b""), "HTTP 204 but the answer is not Braze's JSON"),
    (answer("200 OK", b"\xff\xfe garbage \x00", "Content-Type: application/octet-stream"), "bytes"),
]


def identify(mid: str, user: str) -> dict[str, Any]:
    """An identify call with one trait (an attribute the cache would remember)."""
    return {"type": "identify", "userId": user, "messageId": mid, "traits": {"plan": "pro"}}


class TestNotBrazeJson:
    """Each kind of non-Braze 2xx: retried, then every message failed with the reason."""

    @pytest.mark.parametrize(("behaviour", "reason"), NOT_BRAZE, ids=[r for _, r in NOT_BRAZE])
    def test_failed_after_retries(self, behaviour, reason):
        """Failed (not delivered) after max_attempts, the 2xx status and a reason."""
        messages = tracks(6)
        outcomes = Outcomes()
        with serving(behaviour) as server:
            report = bounded(lambda: send(server.url, messages, workers=1, **outcomes.hooks()))
            assert server.requests == 2
        assert isinstance(report, DeliveryReport)
        assert accounted(report, messages)
        assert outcomes.decided_once(messages)
        assert report.delivered == 0
        assert {fate for _, fate, _ in outcomes.outcomes} == {"failed"}
        for failure in report.failed:
            assert "not Braze's JSON" in failure.reason
            assert reason in failure.reason
            assert "(gave up after 2 attempts)" in failure.reason
            assert 200 <= failure.status < 300

    def test_another_message_is_not_retried(self):
        """A JSON object whose message is not "success" fails at once, naming the message."""
        messages = tracks(3)
        with serving(answer("201 Created", b'{"message": "queued"}', JSON)) as server:
            report = bounded(lambda: send(server.url, messages, workers=1))
            assert server.requests == 1
        assert report.delivered == 0
        assert {f.reason for f in report.failed} == {
            'HTTP 201 but Braze\'s message is "queued", not "success"'
        }

    def test_user_management_entries_too(self):
        """A /users/delete answered by a captive portal fails its message too."""
        messages = [{"type": "delete", "userId": "u1", "messageId": "d1"}]
        with serving(answer("200 OK", PORTAL, "Content-Type: text/html")) as server:
            report = bounded(lambda: send(server.url, messages))
        assert report.delivered == 0
        [failure] = report.failed
        assert "not Braze's JSON (text/html" in failure.reason

    def test_portal_then_braze_delivers(self):
        """A portal that goes away before the retry: the retry delivers."""
        attempts = []

        def portal_once(conn: Conn) -> None:
            attempts.append(1)
            body = PORTAL if len(attempts) == 1 else b'{"message":"success"}'
            answer("200 OK", body, "Content-Type: text/html")(conn)

        messages = tracks(4)
        with serving(portal_once) as server:
            report = bounded(lambda: send(server.url, messages, workers=1))
        assert report.delivered == 4
        assert report.retries == 1


class TestAttributeCache:
    """Attributes answered by a portal are not acknowledged: the next send sends them again."""

    def test_not_acknowledged(self):
        """After a portal's 200 the cache saves nothing; Braze then gets every attribute."""
        messages = [identify(f"i{n}", f"u{n}") for n in range(5)]
        with AttributeCache.memory() as cache:
            with serving(answer("200 OK", PORTAL, "Content-Type: text/html")) as server:
                first = bounded(lambda: send(server.url, messages, attribute_cache=cache))
            assert first.delivered == 0
            with BrazeStandIn(api_key=KEY) as braze:
                options = client_options(attribute_cache=cache)
                with BrazeClient(settings_for(braze.url), **options) as client:
                    second = bounded(lambda: client.send(messages))
                assert second.delivered == 5
                assert second.attributes_saved == 0
                assert len(braze.accepted_attributes) == 5
