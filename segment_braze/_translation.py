"""The result of translating one Segment message: Braze objects and requests."""

from __future__ import annotations

from typing import Any

import attrs

from segment_braze._braze import (
    TRACK_PATH,
    BrazeRequest,
    Event,
    Purchase,
    UserAttributes,
    UserOperation,
)

__all__ = ["Translation"]


@attrs.frozen(kw_only=True)
class Translation:
    """What one Segment message becomes in Braze.

    Attributes:
        message_id: the Segment ``messageId``, when the message had one.
        attributes: user attributes objects, in the order Braze must process them.
        events: custom events.
        purchases: purchases (one per product line, quantity 1 to 100).
        operations: entries for Braze's identify, merge and delete endpoints.
        dropped: ``None``, or a one-line reason when the message maps to nothing.
        warnings: ``(json_path, text)`` for every field dropped or normalised.
    """

    message_id: str | None = None
    attributes: tuple[UserAttributes, ...] = ()
    events: tuple[Event, ...] = ()
    purchases: tuple[Purchase, ...] = ()
    operations: tuple[UserOperation, ...] = ()
    dropped: str | None = None
    warnings: tuple[tuple[str, str], ...] = ()

    def track_body(self) -> dict[str, Any] | None:
        """Return the ``/users/track`` body, or ``None`` when there is nothing to track.

        The body holds only the non-empty keys among ``attributes``, ``events`` and
        ``purchases``, in that order (Braze processes attributes first, which is
        what lets an alias profile exist before its events arrive).
        """
        body: dict[str, Any] = {}
        if self.attributes:
            body["attributes"] = [item.to_json() for item in self.attributes]
        if self.events:
            body["events"] = [item.to_json() for item in self.events]
        if self.purchases:
            body["purchases"] = [item.to_json() for item in self.purchases]
        return body or None

    def requests(self) -> list[BrazeRequest]:
        """Return the Braze REST requests for this message, in the order to send them.

        ``/users/track`` comes first, then the user-management requests
        (``/users/identify``, ``/users/merge``, ``/users/delete``) grouped by path,
        so that a profile exists before it is merged.
        """
        requests = []
        body = self.track_body()
        if body is not None:
            requests.append(BrazeRequest(path=TRACK_PATH, body=body))
        if not self.operations:
            return requests
        grouped: dict[tuple[str, str], list[Any]] = {}
        for operation in self.operations:
            grouped.setdefault((operation.path, operation.key), []).append(operation.entry)
        requests.extend(
            BrazeRequest(path=path, body={key: entries}) for (path, key), entries in grouped.items()
        )
        return requests

    @property
    def object_count(self) -> int:
        """How many ``/users/track`` objects this message produces."""
        return len(self.attributes) + len(self.events) + len(self.purchases)
