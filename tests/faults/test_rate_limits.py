"""Absurd rate-limit headers fail their request at once instead of pausing every worker.

A 429 asking for more than ``max_rate_limit_wait`` (300 s by default), an epoch
years ahead (it used to raise OverflowError from the sleep), or a header that is
no number at all: the request's messages fail with a reason naming the header.
"""

from __future__ import annotations

import pytest

from segment_braze import BrazeClient, DeliveryReport

from .hostile import Conn, answer, serving
from .support import Outcomes, accounted, bounded, send, settings_for, tracks

pytestmark = pytest.mark.usefixtures("processes")

SUCCESS = b'{"message":"success"}'
JSON = "Content-Type: application/json"
LIMITED = b'{"message":"rate limited"}'


def limited(*headers: str) -> object:
    """Answer every request 429 with ``headers``."""
    return answer("429 Too Many Requests", LIMITED, JSON, *headers)


ABSURD = [
    ("X-Ratelimit-Retry-After: 999999", 'X-Ratelimit-Retry-After: "999999" asks for a wait of'),
    ("Retry-After: 301", 'Retry-After: "301" asks for a wait of 301 s'),
    ("X-RateLimit-Reset: 99999999999", 'X-RateLimit-Reset: "99999999999" asks for a wait of'),
    ("X-RateLimit-Reset: 2000000000", 'X-RateLimit-Reset: "2000000000" asks for a wait of'),
    ("X-RateLimit-Reset: " + "9" * 400, "is neither a number of seconds nor a time"),
    ("X-Ratelimit-Retry-After: soon", 'X-Ratelimit-Retry-After: "soon" is neither a number'),
    ("Retry-After: nan", 'Retry-After: "nan" is neither a number of seconds nor a time'),
    ("Retry-After: -inf", 'Retry-After: "-inf" is neither a number of seconds nor a time'),
]


class TestAbsurdHeaders:
    """Each absurd header: one request, the messages failed at once with status 429."""

    @pytest.mark.parametrize(("header", "reason"), ABSURD, ids=[h for h, _ in ABSURD])
    def test_failed_at_once(self, header, reason):
        """No pause, no retry: the reason names the header and what was wrong with it."""
        messages = tracks(8)
        outcomes = Outcomes()
        with serving(limited(header)) as server:
            report = bounded(
                lambda: send(server.url, messages, workers=2, **outcomes.hooks()), bound=10.0
            )
            requests_made = server.requests
        assert isinstance(report, DeliveryReport)
        assert accounted(report, messages)
        assert outcomes.decided_once(messages)
        assert report.delivered == 0
        assert requests_made == report.requests <= 2  # one per worker, no retry
        for failure in report.failed:
            assert failure.status == 429
            assert failure.reason.startswith("rate limited by Braze, and ")
            assert reason in failure.reason
            assert failure.reason.endswith(": not waiting on it")

    def test_cap_names_the_option(self):
        """A wait over the cap says which option to raise."""
        with serving(limited("X-Ratelimit-Retry-After: 60")) as server:
            report = bounded(lambda: send(server.url, tracks(1), max_rate_limit_wait=30.0))
        [failure] = report.failed
        assert "asks for a wait of 60 s, over max_rate_limit_wait (30 s)" in failure.reason


class TestWithinTheCap:
    """A 429 asking for a wait within the cap is waited out and retried, as before."""

    def test_waited_then_delivered(self):
        """Retry-After: 0 within the cap: the retry delivers."""
        attempts = []

        def limited_once(conn: Conn) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                limited("Retry-After: 0")(conn)
            else:
                answer("201 Created", SUCCESS, JSON)(conn)

        messages = tracks(3)
        with serving(limited_once) as server:
            report = bounded(lambda: send(server.url, messages, workers=1))
        assert report.delivered == 3
        assert report.retries == 1


class TestOption:
    """max_rate_limit_wait is checked when the client is made."""

    @pytest.mark.parametrize("value", [-1.0, float("nan")])
    def test_must_be_zero_or_more(self, value):
        """A negative or NaN max_rate_limit_wait raises ValueError."""
        with pytest.raises(ValueError, match="max_rate_limit_wait"):
            BrazeClient(settings_for("http://127.0.0.1:9"), max_rate_limit_wait=value)
