"""The one exception tree of segment_braze.

::

    SegmentBrazeError
    ├── InvalidMessage (also ValueError)   a Segment message that cannot be translated
    ├── SettingsError (also ValueError)    bad or missing connection options
    └── DeliveryError                      the sender could not deliver
        ├── AuthenticationError            Braze answered 401/403: never retried
        ├── SenderError                    an unexpected error stopped sending (chained)
        └── TransportError                 connection failures, timeouts, broken answers

Per-field problems (an unparseable birthday, a trait Braze would reject) are not
exceptions: they are warnings on the :class:`~segment_braze.Translation`, so one bad
trait never costs the whole message.

No exception text ever contains the REST API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "DeliveryError",
    "InvalidMessage",
    "SegmentBrazeError",
    "SenderError",
    "SettingsError",
    "TransportError",
]


class SegmentBrazeError(Exception):
    """Base class of every error this library raises."""


class InvalidMessage(SegmentBrazeError, ValueError):  # noqa: N818 (public contract name)
    """A Segment message is malformed and cannot be translated.

    Attributes:
        path: the JSON path of the fault, for example ``$.event``.
        reason: the problem, without the path.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SettingsError(SegmentBrazeError, ValueError):
    """A connection option is invalid, contradictory or missing."""


class DeliveryError(SegmentBrazeError):
    """The sender could not deliver to Braze."""


class AuthenticationError(DeliveryError):
    """Braze refused the REST API key (HTTP 401 or 403); nothing is retried.

    Attributes:
        status: the HTTP status Braze answered.
        report: the ``DeliveryReport`` of the interrupted ``send``, in which every
            message not delivered before the refusal is reported failed.
    """

    def __init__(self, message: str, *, status: int, report: Any = None) -> None:
        self.status = status
        self.report = report
        super().__init__(message)


class SenderError(DeliveryError):
    """An unexpected error stopped ``BrazeClient.send`` (a bug, or a failing store).

    Sending stops at once; every message is still accounted for: those not
    delivered before the error are reported failed (``on_failure`` and
    ``on_outcome`` are called for each). The error that stopped the sender is
    chained as ``__cause__``; this message names only its type.

    Attributes:
        report: the ``DeliveryReport`` of the interrupted ``send``.
    """

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class TransportError(DeliveryError):
    """A request failed below HTTP, or its answer could not be read.

    Connection refused or reset, a DNS or TLS failure, a timeout (``read_timeout``
    or the total ``request_timeout``), an answer cut short, undecodable or too
    long. ``send`` retries these and then fails the request's messages with the
    reason; it does not raise this exception.
    """
