"""One Braze REST call with Braze's retry rules: what to retry, how long to wait."""

from __future__ import annotations

import email.utils
import logging
import math
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
    "UNAUTHORIZED_CAUSES",
    "Answer",
    "HookRaised",
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
# The headers that say how long to wait after a 429, in the order they are read.
_RATE_LIMIT_HEADERS: Final = (
    ("x-ratelimit-retry-after", "X-Ratelimit-Retry-After"),
    ("retry-after", "Retry-After"),
    ("x-ratelimit-reset", "X-RateLimit-Reset"),
)
_JSON_KINDS: Final = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@attrs.frozen(kw_only=True)
class Answer:
    """The final answer to a request, after retries.

    Attributes:
        status: the HTTP status, or ``None`` when no answer came.
        body: the parsed JSON body (``None`` when absent or not JSON).
        reason: one line saying what happened, for failures.
        retryable_exhausted: the request failed only after the retry budget ran out.
        ok: Braze accepted the request: a 2xx whose body is Braze's success
            (``{"message": "success", ...}``), never just any 2xx.
    """

    status: int | None
    body: Any = None
    reason: str = ""
    retryable_exhausted: bool = False
    ok: bool = False


class Unauthorized(Exception):  # noqa: N818 (internal signal, not an error)
    """Braze answered 401 or 403; raised to stop all sending."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


UNAUTHORIZED_CAUSES: Final = {
    401: "the REST API key is wrong, malformed, revoked, or from another Braze "
    "cluster or workspace (check datacenter/rest_endpoint)",
    403: "the REST API key lacks the permission for this endpoint "
    "(users.track, users.identify, users.merge, users.delete)",
}
"""What a refusal of the key means, by status."""


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _http_date(text: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


def rate_limit_delay(headers: Mapping[str, str], *, now: float) -> tuple[float, str]:
    """How long Braze asks us to wait after a 429, and which header said so.

    ``X-Ratelimit-Retry-After`` (seconds) wins, then ``Retry-After`` (seconds or
    an HTTP date), then ``X-RateLimit-Reset``, read as a UTC epoch when it is above
    about 10^9 and as seconds remaining below. A header that cannot be read gives
    way to the next; without any, the wait is 1 second.

    Args:
        headers: the 429's headers (any case).
        now: the current UTC epoch time, in seconds.

    Returns:
        The seconds to wait (never negative), and the header as sent (for
        example ``'X-RateLimit-Reset: "1714564812"'``) or ``"no rate-limit header"``.

    Raises:
        ValueError: the rate-limit headers present are all unreadable (not a
            finite number, nor a date); the message quotes the first one.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    unreadable = None
    for key, name in _RATE_LIMIT_HEADERS:
        if key not in lowered:
            continue
        text = lowered[key]
        said = f'{name}: "{_shown(text)}"'
        value = _seconds(text)
        if value is not None:
            if key == "x-ratelimit-reset" and value > _EPOCH_THRESHOLD:
                value -= now
            return max(0.0, value), said
        if key == "retry-after" and (when := _http_date(text)) is not None:
            return max(0.0, when - now), said
        unreadable = unreadable or said
    if unreadable is not None:
        raise ValueError(f"{unreadable} is neither a number of seconds nor a time")
    return _DEFAULT_429_DELAY, "no rate-limit header"


def _shown(text: str) -> str:
    """A header value fit for a one-line reason: printable, at most 40 characters."""
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return printable[:40] + ("..." if len(printable) > 40 else "")


def _braze_message(reply: Reply) -> tuple[Any, str]:
    try:
        body = _json.loads(reply.body) if reply.body else None
    except ValueError:
        # Not JSON (a proxy's error page): its start, on one line.
        return None, " ".join(reply.body[:400].decode(errors="replace").split())[:200]
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return body, body["message"]
    return body, ""


def success_problem(status: int, reply: Reply, parsed: Any) -> tuple[str, bool] | None:
    """Why a 2xx answer is not Braze's success, and whether to retry; ``None`` if it is.

    Braze answers every accepted request with a JSON object whose ``message`` is
    ``"success"``. Anything else in a 2xx came from something in the way (an
    HTML captive portal, a proxy's page, an empty body): retried like a
    transport fault, since Braze most likely never saw the request. A JSON
    object with another ``message`` is Braze's (or looks it) and is not retried.
    """
    if isinstance(parsed, Mapping):
        message = parsed.get("message")
        if message == "success":
            return None
        if isinstance(message, str):
            shown = " ".join(message.split())[:100]
            return f'HTTP {status} but Braze\'s message is "{shown}", not "success"', False
        what = 'a JSON object without "message"'
    elif parsed is not None:
        what = f"JSON {_JSON_KINDS.get(type(parsed), type(parsed).__name__)}, not an object"
    elif not reply.body:
        what = "an empty body"
    else:
        kind = " ".join(reply.headers.get("Content-Type", "no Content-Type").split())[:60]
        what = f"{kind}, {len(reply.body)} bytes"
    reason = (
        f"HTTP {status} but the answer is not Braze's JSON ({what}): "
        "a proxy or captive portal may be in the way"
    )
    return reason, True


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try: Braze's guidance with a user's overrides."""

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_rate_limit_waits: int = 20
    max_rate_limit_wait: float = 300.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    request_timeout: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential backoff with jitter for retry number ``attempt``."""
        # The exponent is bounded: past the cap it no longer matters, and a huge
        # max_attempts must not overflow the float.
        delay = self.backoff_initial * 2.0 ** min(attempt - 1, 64) * rng.uniform(0.75, 1.25)
        return min(self.backoff_max, delay)


def _rate_limit_wait(reply: Reply, policy: RetryPolicy) -> float | Answer:
    """Seconds to pause every worker after a 429, or the failure when not to wait.

    A wait over ``max_rate_limit_wait`` (an epoch years ahead, a header asking for
    days) or an unreadable header fails the request instead of pausing every
    worker on its word.
    """
    try:
        delay, said = rate_limit_delay(reply.headers, now=time.time())
    except ValueError as err:
        return Answer(status=429, reason=f"rate limited by Braze, and {err}: not waiting on it")
    if delay > policy.max_rate_limit_wait:
        return Answer(
            status=429,
            reason=f"rate limited by Braze, and {said} asks for a wait of {delay:.6g} s, over "
            f"max_rate_limit_wait ({policy.max_rate_limit_wait:g} s): not waiting on it",
        )
    return delay


def _judge(reply: Reply, url: str) -> Answer | tuple[int, str]:
    """Braze's final answer, or the status and reason of one worth retrying (not 429).

    Raises:
        Unauthorized: Braze answered 401 or 403.
    """
    status = reply.status
    parsed, message = _braze_message(reply)
    if 200 <= status < 300:
        problem = success_problem(status, reply, parsed)
        if problem is None:
            return Answer(status=status, body=parsed, ok=True)
        reason, retry = problem
        return (status, reason) if retry else Answer(status=status, body=parsed, reason=reason)
    if status in (401, 403):
        logger.error("Braze refused the REST API key (HTTP %d) at %s", status, url)
        raise Unauthorized(status, message)
    if 300 <= status < 400:
        location = reply.headers.get("location", "?")
        return Answer(
            status=status,
            reason=f"Braze answered a redirect to {location}, not followed: check rest_endpoint",
        )
    reason = f"HTTP {status}" + (f": {message}" if message else "")
    return (status, reason) if status >= 500 else Answer(status=status, body=parsed, reason=reason)


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
            logger.debug("%s answered HTTP %d", url, response.status)
            if response.status == 429:
                waits += 1
                if waits > policy.max_rate_limit_waits:
                    return Answer(
                        status=429,
                        reason=f"rate limited by Braze {waits} times",
                        retryable_exhausted=True,
                    )
                delay = _rate_limit_wait(response, policy)
                if isinstance(delay, Answer):
                    logger.error("%s: %s", url, delay.reason)
                    return delay
                logger.warning("rate limited by Braze at %s; waiting %.1f s", url, delay)
                limiter.pause_for(delay)
                continue
            judged = _judge(response, url)
            if isinstance(judged, Answer):
                return judged
            status, reason = judged
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


class HookRaised(Exception):  # noqa: N818 (internal signal, not an error)
    """The caller's ``before_request`` hook raised ``error``: sending stops.

    ``RunConfig.post`` raises it so that the run tells the caller's own error
    (re-raised as it is by ``send``) from a fault of the sender.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error
        super().__init__(type(error).__name__)
