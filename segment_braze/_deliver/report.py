"""What became of every message a sender was given."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["DeliveryReport", "Failure", "Ledger", "message_label"]


@attrs.frozen(kw_only=True)
class Failure:
    """A message Braze did not accept.

    Attributes:
        message_id: the Segment ``messageId``, or ``#<n>`` (its 0-based position
            in the input) when the message had none.
        reason: why, in one line (Braze's own message where it gave one).
        status: the HTTP status of the answer that failed it, or ``None`` when
            there was no answer (connection error, timeout) or nothing was sent.
    """

    message_id: str
    reason: str
    status: int | None


@attrs.frozen(kw_only=True)
class DeliveryReport:
    """The account of one ``BrazeClient.send`` call.

    Every input message is counted exactly once: in ``delivered``, ``failed`` or
    ``dropped``.

    Attributes:
        delivered: messages all of whose Braze objects were accepted.
        failed: messages Braze did not (wholly) accept, each with the reason.
        dropped: ``(message_id, reason)`` for messages that translated to nothing
            or were invalid.
        requests: HTTP requests made (retries included).
        retries: requests that were retries of an earlier one.
        attributes_sent: attribute keys sent to Braze (billable data points).
        attributes_saved: attribute keys left out because Braze already had the
            value (see ``AttributeCache``).
        data_points_saved: estimated Braze data points those keys would have
            cost (each key of a nested object counts).
    """

    delivered: int = 0
    failed: tuple[Failure, ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    requests: int = 0
    retries: int = 0
    attributes_sent: int = 0
    attributes_saved: int = 0
    data_points_saved: int = 0

    @property
    def total(self) -> int:
        """How many messages the report accounts for."""
        return self.delivered + len(self.failed) + len(self.dropped)


class Ledger:
    """Thread-safe running tally behind a :class:`DeliveryReport`."""

    def __init__(
        self,
        *,
        on_failure: Callable[[Any, str], None] | None = None,
        on_outcome: Callable[[Any, str, str | None], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._delivered = 0
        self._failed: list[Failure] = []
        self._dropped: list[tuple[str, str]] = []
        self._requests = 0
        self._retries = 0
        self._attributes_sent = 0
        self._attributes_saved = 0
        self._data_points_saved = 0
        self._on_failure = on_failure
        self._on_outcome = on_outcome
        #: The first exception a hook raised; hooks are not called after it.
        self.hook_error: BaseException | None = None

    def _call(self, hook: Callable[..., None] | None, *args: Any) -> None:
        # A hook runs on a worker thread: an exception there must not kill the
        # worker (its messages would go unaccounted). Keep the first one for
        # send() to raise, and call no hook after it.
        if hook is None or self.hook_error is not None:
            return
        try:
            hook(*args)
        except Exception as err:  # noqa: BLE001 (re-raised by send(), never swallowed)
            self.hook_failed(err)

    def hook_failed(self, error: Exception) -> None:
        """Keep the first exception a caller's hook raised, for ``send`` to re-raise."""
        with self._lock:
            if self.hook_error is None:
                self.hook_error = error

    def delivered(self, message: Any) -> None:
        """Count a message as delivered."""
        with self._lock:
            self._delivered += 1
        self._call(self._on_outcome, message, "delivered", None)

    def delivered_all(self, messages: list[Any]) -> None:
        """Count messages as delivered: one lock for a whole request's messages."""
        with self._lock:
            self._delivered += len(messages)
        if self._on_outcome is not None:
            for message in messages:
                self._call(self._on_outcome, message, "delivered", None)

    def failed(self, message: Any, message_id: str, reason: str, status: int | None) -> None:
        """Count a message as failed and tell the dead-letter hook."""
        with self._lock:
            self._failed.append(Failure(message_id=message_id, reason=reason, status=status))
        self._call(self._on_failure, message, reason)
        self._call(self._on_outcome, message, "failed", reason)

    def dropped(self, message: Any, message_id: str, reason: str) -> None:
        """Count a message as dropped (translated to nothing, or invalid)."""
        with self._lock:
            self._dropped.append((message_id, reason))
        self._call(self._on_outcome, message, "dropped", reason)

    def request(self, *, retry: bool) -> None:
        """Count an HTTP request."""
        with self._lock:
            self._requests += 1
            self._retries += retry

    def attributes(self, *, sent: int, saved: int, data_points_saved: int) -> None:
        """Count attribute keys sent and saved by the attribute cache."""
        with self._lock:
            self._attributes_sent += sent
            self._attributes_saved += saved
            self._data_points_saved += data_points_saved

    def report(self) -> DeliveryReport:
        """Return the report as it stands."""
        with self._lock:
            return DeliveryReport(
                delivered=self._delivered,
                failed=tuple(self._failed),
                dropped=tuple(self._dropped),
                requests=self._requests,
                retries=self._retries,
                attributes_sent=self._attributes_sent,
                attributes_saved=self._attributes_saved,
                data_points_saved=self._data_points_saved,
            )


def message_label(item: Any, default: str) -> str:
    """The ``messageId`` of a Segment dict, or ``default``."""
    if isinstance(item, Mapping):
        message_id = item.get("messageId")
        if isinstance(message_id, str) and message_id:
            return message_id
    return default
