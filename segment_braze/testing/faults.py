"""The failures :class:`~segment_braze.testing.BrazeStandIn` can inject.

:class:`Fault` values say what to do; :func:`fault_answer` turns the ones that
replace Braze's answer into that answer. Faults that change the exchange itself
(a dropped connection, delays, partial errors) are carried out by the stand-in.
"""

from __future__ import annotations

import math
import time
from typing import Final, Literal

import attrs

from segment_braze.testing.rules import ARRAYS
from segment_braze.testing.server import Answer

__all__ = [
    "RANDOM_MIX",
    "RANDOM_MIX_ENTRIES",
    "STATUS_MESSAGES",
    "Fault",
    "FaultKind",
    "ResetStyle",
    "check_reset_style",
    "fault_answer",
    "message",
    "reset_header",
]

FaultKind = Literal[
    "status",
    "rate_limited",
    "disconnect",
    "timeout_after_receipt",
    "slow",
    "partial_errors",
    "too_large",
]
ResetStyle = Literal["epoch", "seconds"]

STATUS_MESSAGES: Final = {
    400: "Bad Request",
    401: "Invalid API key: the key is not valid for this workspace",
    403: "Access Denied: the key lacks the permission for this endpoint",
    404: "Not Found",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@attrs.frozen(kw_only=True)
class Fault:
    """One failure to inject with :meth:`BrazeStandIn.inject`.

    Build faults with the named constructors (``Fault.status(503)``,
    ``Fault.disconnect()``, ...); the fields say what the stand-in will do.

    Attributes:
        kind: which failure.
        http_status: the status a ``status`` fault answers.
        retry_after: seconds sent in ``X-Ratelimit-Retry-After`` (a 429).
        reset_in: seconds until the rate-limit window resets (a 429 with
            ``X-RateLimit-*`` headers).
        reset_style: ``X-RateLimit-Reset`` as a UTC ``"epoch"`` or as
            ``"seconds"`` remaining; Braze documents both.
        delay: seconds of delay for ``slow`` and ``timeout_after_receipt``
            (None: the stand-in's ``post_receipt_delay``).
        objects: ``(array, index)`` positions a ``partial_errors`` fault fails.
    """

    kind: FaultKind
    http_status: int | None = None
    retry_after: int | None = None
    reset_in: int | None = None
    reset_style: ResetStyle = "epoch"
    delay: float | None = None
    objects: tuple[tuple[str, int], ...] = ()

    @classmethod
    def status(cls, code: int) -> Fault:
        """Answer with an error status and a Braze-like ``{"message": ...}`` body.

        Args:
            code: 400, 401, 403, 404, 415, 500, 502, 503 or 504.

        Returns:
            The fault.

        Raises:
            ValueError: for other codes (429 is :meth:`rate_limited`, 413 is
                :meth:`too_large`).
        """
        if code not in STATUS_MESSAGES:
            known = ", ".join(map(str, STATUS_MESSAGES))
            raise ValueError(f"status must be one of {known}, not {code}")
        return cls(kind="status", http_status=code)

    @classmethod
    def rate_limited(
        cls,
        *,
        retry_after: int | None = None,
        reset_in: int | None = None,
        reset_style: ResetStyle = "epoch",
    ) -> Fault:
        """Answer 429, saying when to retry in one of Braze's two ways.

        Args:
            retry_after: send only ``X-Ratelimit-Retry-After: <seconds>``, as
                Braze does on some 429s.
            reset_in: send ``X-RateLimit-Limit``, ``-Remaining: 0`` and
                ``-Reset`` for a window ending this many seconds from now.
            reset_style: ``"epoch"`` (UTC seconds, rounded up) or ``"seconds"``
                (remaining) for ``X-RateLimit-Reset``.

        Returns:
            The fault.

        Raises:
            ValueError: unless exactly one of ``retry_after`` and ``reset_in``
                is given, as a non-negative integer.
        """
        given = [value for value in (retry_after, reset_in) if value is not None]
        if len(given) != 1 or given[0] < 0:
            raise ValueError("give exactly one of retry_after and reset_in, as seconds >= 0")
        check_reset_style(reset_style)
        return cls(
            kind="rate_limited", retry_after=retry_after, reset_in=reset_in, reset_style=reset_style
        )

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without an answer; nothing is read or processed.

        Returns:
            The fault.
        """
        return cls(kind="disconnect")

    @classmethod
    def timeout_after_receipt(cls, *, delay: float | None = None) -> Fault:
        """Process and record the request, then hold the answer back.

        A client whose read timeout is shorter than ``delay`` gives up although
        Braze kept the data: retrying then duplicates events and purchases
        (Braze has no idempotency key).

        Args:
            delay: seconds to hold the answer; None uses the stand-in's
                ``post_receipt_delay``.

        Returns:
            The fault.
        """
        return cls(kind="timeout_after_receipt", delay=_non_negative(delay, "delay"))

    @classmethod
    def slow(cls, *, delay: float) -> Fault:
        """Wait ``delay`` seconds, then answer normally.

        Args:
            delay: seconds to wait before processing.

        Returns:
            The fault.
        """
        return cls(kind="slow", delay=_non_negative(delay, "delay"))

    @classmethod
    def partial_errors(cls, *objects: tuple[str, int]) -> Fault:
        """Reject the named /users/track objects in ``errors``; process the rest.

        Positions the request does not have are left alone. When every object
        of the request is rejected the answer is Braze's 400, as for invalid
        objects.

        Args:
            *objects: ``(array, index)`` pairs, such as ``("events", 0)``.

        Returns:
            The fault.

        Raises:
            ValueError: for no positions, an unknown array or a negative index.
        """
        if not objects or any(
            array not in ARRAYS
            or isinstance(index, bool)
            or not isinstance(index, int)
            or index < 0
            for array, index in objects
        ):
            raise ValueError("give (array, index) pairs: array in attributes/events/purchases")
        return cls(kind="partial_errors", objects=tuple(objects))

    @classmethod
    def too_large(cls) -> Fault:
        """Answer 413 whatever the size of the body.

        Returns:
            The fault.
        """
        return cls(kind="too_large")


def check_reset_style(style: str) -> None:
    """Refuse a reset style other than Braze's two.

    Args:
        style: the proposed style.

    Raises:
        ValueError: unless it is ``"epoch"`` or ``"seconds"``.
    """
    if style not in ("epoch", "seconds"):
        raise ValueError(f"reset_style must be 'epoch' or 'seconds', not {style!r}")


def _non_negative(value: float | None, name: str) -> float | None:
    if value is not None and not value >= 0:
        raise ValueError(f"{name} must be >= 0, not {value}")
    return value


# What random_faults draws from; partial errors only make sense on /users/track.
RANDOM_MIX: Final = (
    Fault.rate_limited(retry_after=1),
    Fault.rate_limited(reset_in=1, reset_style="epoch"),
    Fault.status(500),
    Fault.status(502),
    Fault.status(503),
    Fault.disconnect(),
    Fault.timeout_after_receipt(),
    Fault(kind="partial_errors"),  # the failing object is drawn per request
)
RANDOM_MIX_ENTRIES: Final = RANDOM_MIX[:-1]


def message(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """Build a Braze-style error answer, ``{"message": text}``.

    Args:
        status: the HTTP status.
        text: the message.
        headers: extra headers.

    Returns:
        The answer.
    """
    return Answer(status=status, payload={"message": text}, headers=headers)


def reset_header(seconds_left: float, style: ResetStyle) -> str:
    """Write ``X-RateLimit-Reset`` in one of the two forms Braze documents.

    Args:
        seconds_left: seconds until the window resets.
        style: ``"epoch"`` for UTC epoch seconds, ``"seconds"`` for the count.

    Returns:
        The header value, rounded up so a client that obeys it is not early.
    """
    if style == "epoch":
        return str(math.ceil(time.time() + seconds_left))
    return str(math.ceil(seconds_left))


def fault_answer(fault: Fault, *, limit: int) -> Answer | None:
    """The answer a fault puts in place of Braze's, if it replaces it.

    Args:
        fault: the fault.
        limit: the ``X-RateLimit-Limit`` to report on a 429.

    Returns:
        The answer for ``status``, ``rate_limited`` and ``too_large`` faults;
        None for faults that do not replace the answer.
    """
    if fault.kind == "too_large":
        return message(413, "Payload Too Large")
    if fault.kind == "status" and fault.http_status is not None:
        return message(fault.http_status, STATUS_MESSAGES[fault.http_status])
    if fault.kind != "rate_limited":
        return None
    if fault.retry_after is not None:
        # Braze: some 429s carry only X-Ratelimit-Retry-After, no X-RateLimit-*.
        retry = (("X-Ratelimit-Retry-After", str(fault.retry_after)),)
        return message(429, "Rate limit exceeded", retry)
    headers = (
        ("X-RateLimit-Limit", str(limit)),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", reset_header(fault.reset_in or 0, fault.reset_style)),
    )
    return message(429, "Rate limit exceeded", headers)
