"""One Braze REST call with Braze's retry rules: what to retry, how long to wait."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from segment_braze import _json
from segment_braze._deliver.exchange import Reply
from segment_braze._deliver.ratelimit import RateLimiter
from segment_braze.exceptions import TransportError

__all__ = [
    "Answer",
    "RetryPolicy",
    "Unauthorized",
    "post_with_retries",
    "rate_limit_delay",
]

# The library logs through this logger only and configures no handlers. Nothing
# logged carries a header: the Authorization header holds the REST API key.
logger = logging.getLogger("segment_braze")

# Braze documents X-RateLimit-Reset both as a UTC epoch in seconds and as seconds
# remaining; a value above this is an epoch (about 2001-09-09).
_EPOCH_THRESHOLD: Final = 1_000_000_000
_DEFAULT_429_DELAY: Final = 1.0


@attrs.frozen(kw_only=True)
class Answer:
    """The final answer to a request, after retries.

    Attributes:
        status: the HTTP status, or ``None`` when no answer came.
        body: the parsed JSON body (``None`` when absent or not JSON).
        reason: one line saying what happened, for failures.
        retryable_exhausted: the request failed only after the retry budget ran out.
    """

    status: int | None
    body: Any = None
    reason: str = ""
    retryable_exhausted: bool = False

    @property
    def ok(self) -> bool:
        """Whether Braze answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class Unauthorized(Exception):  # noqa: N818 (internal signal, not an error)
    """Braze answered 401 or 403; raised to stop all sending."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def rate_limit_delay(headers: Mapping[str, str], *, now: float) -> float:
    """How long Braze asks us to wait after a 429, in seconds.

    ``X-Ratelimit-Retry-After`` (seconds) wins; else ``X-RateLimit-Reset``, read
    as a UTC epoch when it is above about 10^9 and as seconds remaining below.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    for key in ("x-ratelimit-retry-after", "retry-after"):
        if key in lowered:
            try:
                return max(0.0, float(lowered[key]))
            except ValueError:
                break
    if "x-ratelimit-reset" in lowered:
        try:
            reset = float(lowered["x-ratelimit-reset"])
        except ValueError:
            return _DEFAULT_429_DELAY
        return max(0.0, reset - now if reset > _EPOCH_THRESHOLD else reset)
    return _DEFAULT_429_DELAY


def _braze_message(reply: Reply) -> tuple[Any, str]:
    try:
        body = _json.loads(reply.body) if reply.body else None
    except ValueError:
        # Not JSON (a proxy's error page): its start, on one line.
        return None, " ".join(reply.body[:400].decode(errors="replace").split())[:200]
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body, body["message"]
    return body, ""


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try: Braze's guidance with a user's overrides."""

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_rate_limit_waits: int = 20
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    request_timeout: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential backoff with jitter for retry number ``attempt``."""
        # The exponent is bounded: past the cap it no longer matters, and a huge
        # max_attempts must not overflow the float.
        delay = self.backoff_initial * 2.0 ** min(attempt - 1, 64) * rng.uniform(0.75, 1.25)
        return min(self.backoff_max, delay)


def post_with_retries(
    post: Callable[[str, bytes], Reply],
    url: str,
    body: bytes,
    *,
    limiter: RateLimiter,
    policy: RetryPolicy,
    count_request: Callable[[bool], None],
    stop: threading.Event,
    rng: random.Random,
    sleep: Callable[[float], object] | None = None,
) -> Answer:
    """POST ``body`` to ``url`` with ``post`` (a Poster) until Braze gives a final answer.

    Retries 5xx and transport faults (connection errors, timeouts, answers cut
    short, undecodable or too long) with capped exponential backoff and jitter;
    waits as Braze says after 429; never retries other 4xx.

    Args:
        post: sends one body and returns the answer, or raises ``TransportError``.
        url: where to.
        body: the JSON body.
        limiter: the rate limiter shared by the workers.
        policy: attempts, backoff and timeouts.
        count_request: told about every request (``True`` for a retry).
        stop: once set, nothing more is sent and every wait ends at once.
        rng: the jitter's random numbers.
        sleep: waits between retries (default: ``stop.wait``, so a stop ends it).

    Raises:
        Unauthorized: Braze answered 401 or 403.
    """
    backoff_wait = stop.wait if sleep is None else sleep
    attempts = 0
    waits = 0
    while True:
        if stop.is_set() or not limiter.acquire(stop=stop):
            return Answer(status=None, reason="not sent: sending stopped")
        count_request(attempts > 0 or waits > 0)
        logger.debug("POST %s (%d bytes, attempt %d)", url, len(body), attempts + waits + 1)
        try:
            response = post(url, body)
        except TransportError as err:
            # Its message names the cause. A timeout after Braze received the
            # request may mean it processed it: a retry can duplicate events
            # (delivery is at-least-once).
            status, reason = None, str(err)
        else:
            status = response.status
            parsed, message = _braze_message(response)
            logger.debug("%s answered HTTP %d", url, status)
            if 200 <= status < 300:
                return Answer(status=status, body=parsed)
            if status in (401, 403):
                logger.error("Braze refused the REST API key (HTTP %d) at %s", status, url)
                raise Unauthorized(status, message)
            if status == 429:
                waits += 1
                if waits > policy.max_rate_limit_waits:
                    return Answer(
                        status=status,
                        reason=f"rate limited by Braze {waits} times",
                        retryable_exhausted=True,
                    )
                delay = rate_limit_delay(response.headers, now=time.time())
                logger.warning("rate limited by Braze at %s; waiting %.1f s", url, delay)
                limiter.pause_for(delay)
                continue
            if 300 <= status < 400:
                location = response.headers.get("location", "?")
                return Answer(
                    status=status,
                    reason=f"Braze answered a redirect to {location}, not followed: "
                    "check rest_endpoint",
                )
            reason = f"HTTP {status}" + (f": {message}" if message else "")
            if status < 500:
                return Answer(status=status, body=parsed, reason=reason)
        attempts += 1
        if attempts >= policy.max_attempts:
            logger.error("giving up on %s after %d attempts: %s", url, attempts, reason)
            return Answer(
                status=status,
                reason=f"{reason} (gave up after {attempts} attempts)",
                retryable_exhausted=True,
            )
        delay = policy.backoff(attempts, rng)
        logger.warning("%s: %s; retry %d in %.2f s", url, reason, attempts, delay)
        backoff_wait(delay)
