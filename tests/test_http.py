"""One Braze call with Braze's retry rules: rate-limit headers, backoff, what is retried.

``post_with_retries`` runs against BrazeStandIn over loopback, with its sleep and
the rate limiter's clock injected: nothing here really sleeps.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from segment_braze._deliver.exchange import Poster
from segment_braze._deliver.ratelimit import RateLimiter
from segment_braze._deliver.transport import (
    Answer,
    RetryPolicy,
    Unauthorized,
    post_with_retries,
    rate_limit_delay,
)
from segment_braze.testing import BrazeStandIn, Fault

KEY = "test-key"
NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z
BODY = b'{"events":[{"external_id":"u1","name":"Signed Up","time":"2024-05-01T12:00:00.000Z"}]}'
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def seeded(seed: int) -> random.Random:
    """A seeded generator for the jitter."""
    return random.Random(seed)  # noqa: S311 (jitter, not security)


class TestRateLimitDelay:
    """How long Braze asks us to wait after a 429."""

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-Ratelimit-Retry-After": "5"}, 5.0),
            ({"x-ratelimit-retry-after": "2.5"}, 2.5),
            ({"X-RATELIMIT-RETRY-AFTER": "0"}, 0.0),
            ({"X-Ratelimit-Retry-After": "-3"}, 0.0),
            ({"Retry-After": "3"}, 3.0),
            ({"X-Ratelimit-Retry-After": "4", "X-RateLimit-Reset": "60"}, 4.0),
            ({"X-RateLimit-Reset": "7"}, 7.0),
            ({"x-ratelimit-reset": "3600"}, 3600.0),
            ({"X-RateLimit-Reset": "0"}, 0.0),
            ({"X-RateLimit-Reset": str(int(NOW) + 12)}, 12.0),
            ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0),
            ({"X-RateLimit-Reset": str(NOW + 0.25)}, 0.25),
            ({"X-Ratelimit-Retry-After": "soon", "X-RateLimit-Reset": "9"}, 9.0),
            ({"Retry-After": "Wed, 01 May 2024 12:00:30 GMT"}, 30.0),
            ({"X-RateLimit-Reset": str(int(NOW) + 86400 * 365 * 30)}, 86400 * 365 * 30),
            ({"X-RateLimit-Limit": "3000", "X-RateLimit-Remaining": "0"}, 1.0),
            ({}, 1.0),
        ],
        ids=[
            "retry-after",
            "retry-after-lower-case",
            "retry-after-upper-case",
            "retry-after-negative",
            "standard-retry-after",
            "retry-after-wins-over-reset",
            "reset-seconds",
            "reset-seconds-an-hour",
            "reset-seconds-zero",
            "reset-epoch",
            "reset-epoch-past",
            "reset-epoch-fraction",
            "bad-retry-after-falls-back-to-reset",
            "retry-after-http-date",
            "reset-epoch-decades-ahead",
            "no-reset-default",
            "no-headers-default",
        ],
    )
    def test_delay(self, headers, expected):
        """Retry-After wins; X-RateLimit-Reset is an epoch above ~10^9, else seconds."""
        delay, _ = rate_limit_delay(headers, now=NOW)
        assert delay == pytest.approx(expected)

    def test_requests_headers(self):
        """The case-insensitive header mapping of requests is read the same way."""
        headers = CaseInsensitiveDict({"X-RateLimit-Reset": str(int(NOW) + 30)})
        delay, said = rate_limit_delay(headers, now=NOW)
        assert delay == pytest.approx(30.0)
        assert said == f'X-RateLimit-Reset: "{int(NOW) + 30}"'

    def test_names_the_header(self):
        """The header that decided the wait is named as sent, or "no rate-limit header"."""
        assert rate_limit_delay({"x-ratelimit-retry-after": "5"}, now=NOW)[1] == (
            'X-Ratelimit-Retry-After: "5"'
        )
        assert rate_limit_delay({}, now=NOW)[1] == "no rate-limit header"

    @pytest.mark.parametrize(
        ("headers", "named"),
        [
            ({"X-RateLimit-Reset": "tomorrow"}, 'X-RateLimit-Reset: "tomorrow"'),
            ({"X-Ratelimit-Retry-After": "1e400"}, 'X-Ratelimit-Retry-After: "1e400"'),
            ({"Retry-After": "nan"}, 'Retry-After: "nan"'),
            ({"X-RateLimit-Reset": "inf"}, 'X-RateLimit-Reset: "inf"'),
            ({"Retry-After": "soon", "X-RateLimit-Reset": "later"}, 'Retry-After: "soon"'),
            ({"X-RateLimit-Reset": "9" * 400}, 'X-RateLimit-Reset: "' + "9" * 40 + '..."'),
        ],
        ids=["word", "overflow", "nan", "inf", "all-bad", "long"],
    )
    def test_unreadable(self, headers, named):
        """Headers that are not a finite number or a date raise ValueError naming the first."""
        with pytest.raises(ValueError, match="neither a number of seconds nor a time") as caught:
            rate_limit_delay(headers, now=NOW)
        assert named in str(caught.value)


class TestBackoff:
    """Capped exponential backoff with jitter."""

    def test_defaults(self):
        """Defaults: 6 attempts, 0.5 s first, 30 s cap, 10 s connect, 30 s read."""
        policy = RetryPolicy()
        assert (policy.max_attempts, policy.backoff_initial, policy.backoff_max) == (6, 0.5, 30.0)
        assert (policy.connect_timeout, policy.read_timeout) == (10.0, 30.0)

    @pytest.mark.parametrize("attempt", range(1, 7))
    def test_doubles_with_jitter(self, attempt):
        """Retry n waits about backoff_initial * 2**(n-1), give or take a quarter."""
        policy = RetryPolicy(backoff_initial=0.5, backoff_max=1000.0)
        base = 0.5 * 2 ** (attempt - 1)
        delays = [policy.backoff(attempt, seeded(seed)) for seed in range(200)]
        assert all(0.75 * base <= delay <= 1.25 * base for delay in delays)

    def test_first_retry_about_half_a_second(self):
        """With the defaults the first retry comes after about 0.5 s."""
        delays = [RetryPolicy().backoff(1, seeded(seed)) for seed in range(200)]
        assert all(0.375 <= delay <= 0.625 for delay in delays)

    @pytest.mark.parametrize("attempt", [7, 8, 10, 20, 60])
    def test_never_above_the_cap(self, attempt):
        """No delay exceeds backoff_max (30 s by default), jitter included."""
        policy = RetryPolicy()
        delays = [policy.backoff(attempt, seeded(seed)) for seed in range(200)]
        assert max(delays) <= policy.backoff_max
        assert min(delays) >= 0.75 * policy.backoff_max

    def test_jitter_varies(self):
        """Jitter spreads the delays of one attempt."""
        policy = RetryPolicy()
        rng = seeded(3)
        assert len({policy.backoff(2, rng) for _ in range(20)}) > 1

    def test_seeded_jitter_repeats(self):
        """The same seed gives the same delays."""
        policy = RetryPolicy()
        first = [policy.backoff(n, seeded(9)) for n in range(1, 7)]
        again = [policy.backoff(n, seeded(9)) for n in range(1, 7)]
        assert first == again


class FakeTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        # Start at the real monotonic time: post_with_retries sets 429 pauses
        # from time.monotonic().
        self.now = time.monotonic()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock."""
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


class Call:
    """One post_with_retries call with everything that waits recorded."""

    def __init__(self, braze: BrazeStandIn, **policy: Any) -> None:
        self.braze = braze
        self.policy = RetryPolicy(**{"read_timeout": 5.0, **policy})
        self.limiter_time = FakeTime()
        self.limiter = RateLimiter(
            1000, 1.0, clock=self.limiter_time.clock, sleep=self.limiter_time.sleep
        )
        self.backoffs: list[float] = []
        self.counted: list[bool] = []
        self.stop = threading.Event()

    def __call__(self, path: str = "/users/track") -> Answer:
        """Post BODY to ``path``."""
        with requests.Session() as session:
            timeout = (self.policy.connect_timeout, self.policy.read_timeout)
            return post_with_retries(
                Poster(session, headers=HEADERS, timeout=timeout),
                self.braze.url + path,
                BODY,
                limiter=self.limiter,
                policy=self.policy,
                count_request=self.counted.append,
                stop=self.stop,
                rng=seeded(1),
                sleep=self.backoffs.append,
            )


class TestPostWithRetries:
    """What post_with_retries retries, how long it waits, and when it gives up."""

    def test_success(self, braze):
        """A 2xx is returned with its parsed body, after one request."""
        call = Call(braze)
        answer = call()
        assert answer.ok
        assert answer.status == 201
        assert answer.body == {"message": "success", "events_processed": 1}
        assert call.counted == [False]

    @pytest.mark.parametrize(
        "fault",
        [Fault.status(500), Fault.status(502), Fault.status(503), Fault.disconnect()],
        ids=["500", "502", "503", "disconnect"],
    )
    def test_retries_with_doubling_backoff(self, braze, fault):
        """Each retry waits about twice as long as the one before."""
        braze.inject(fault, times=5)
        call = Call(braze)
        answer = call()
        assert answer.ok
        assert call.counted == [False, True, True, True, True, True]
        assert len(call.backoffs) == 5
        for attempt, delay in enumerate(call.backoffs, start=1):
            base = 0.5 * 2 ** (attempt - 1)
            assert 0.75 * base <= delay <= 1.25 * base
        assert len(braze.accepted_events) == 1

    @pytest.mark.parametrize(
        ("fault", "status", "reason"),
        [
            (Fault.status(503), 503, "HTTP 503: Service Unavailable"),
            (Fault.disconnect(), None, "connection error"),
        ],
    )
    def test_gives_up_after_max_attempts(self, braze, fault, status, reason):
        """After max_attempts the last failure is the answer; no sleep after it."""
        braze.inject(fault, times=4)
        call = Call(braze, max_attempts=4)
        answer = call()
        assert (answer.status, answer.retryable_exhausted) == (status, True)
        assert reason in answer.reason
        assert "4 attempts" in answer.reason
        assert len(call.backoffs) == 3
        assert len(braze.requests) == 4

    def test_timeout_retried(self, braze):
        """A read timeout is retried like a 5xx."""
        braze.inject(Fault.timeout_after_receipt(delay=2.0))
        call = Call(braze, read_timeout=1.0)
        answer = call()
        assert answer.ok
        assert call.counted == [False, True]
        assert len(call.backoffs) == 1

    @pytest.mark.parametrize(
        ("fault", "low", "high"),
        [
            (Fault.rate_limited(retry_after=2), 2.0, 2.5),
            (Fault.rate_limited(reset_in=5, reset_style="seconds"), 5.0, 5.5),
            # Rounded up to a whole epoch second: between 3 and 4 s away.
            (Fault.rate_limited(reset_in=3, reset_style="epoch"), 3.0, 4.5),
        ],
        ids=["retry-after", "reset-seconds", "reset-epoch"],
    )
    def test_429_waits_in_the_shared_limiter(self, braze, fault, low, high):
        """A 429 pauses the limiter all workers share for Braze's delay, then retries."""
        braze.inject(fault)
        call = Call(braze)
        answer = call()
        assert answer.ok
        assert call.backoffs == []  # not a backoff: the pause is in the limiter
        [pause] = call.limiter_time.sleeps
        assert low <= pause < high
        assert call.counted == [False, True]

    def test_429s_in_a_row_give_up(self, braze):
        """Past max_rate_limit_waits consecutive 429s the answer is the 429."""
        braze.inject(Fault.rate_limited(retry_after=0), times=4)
        call = Call(braze, max_rate_limit_waits=3)
        answer = call()
        assert answer.status == 429
        assert answer.retryable_exhausted
        assert len(braze.requests) == 4

    @pytest.mark.parametrize("code", [400, 404, 415])
    def test_client_errors_not_retried(self, braze, code):
        """400, 404 and 415 are final: one request, Braze's message in the reason."""
        braze.inject(Fault.status(code))
        call = Call(braze)
        answer = call()
        assert answer.status == code
        assert answer.reason.startswith(f"HTTP {code}: ")
        assert not answer.retryable_exhausted
        assert call.backoffs == []
        assert len(braze.requests) == 1

    @pytest.mark.parametrize("code", [401, 403])
    def test_unauthorized_raises(self, braze, code):
        """401 and 403 raise Unauthorized at once, never retried."""
        braze.inject(Fault.status(code))
        call = Call(braze)
        with pytest.raises(Unauthorized) as caught:
            call()
        assert caught.value.status == code
        assert len(braze.requests) == 1
        assert call.backoffs == []

    def test_stop_sends_nothing(self, braze):
        """Once sending is stopped, nothing more is sent."""
        call = Call(braze)
        call.stop.set()
        answer = call()
        assert answer.status is None
        assert "not sent" in answer.reason
        assert braze.requests == []
        assert call.counted == []
