"""The result of translating one Segment message: Braze objects and requests."""

from __future__ import annotations

import operator
from typing import Any, Final

import attrs

from segment_braze._translate.braze import (
    TRACK_PATH,
    BrazeRequest,
    Event,
    Purchase,
    UserAttributes,
    UserOperation,
)

__all__ = ["Translation"]

_to_json: Final = operator.methodcaller("to_json")


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
        # Hot path: map with a C-level method caller, no comprehension frame.
        if self.attributes:
            body["attributes"] = list(map(_to_json, self.attributes))
        if self.events:
            body["events"] = list(map(_to_json, self.events))
        if self.purchases:
            body["purchases"] = list(map(_to_json, self.purchases))
        return body or None

    def requests(self) -> list[BrazeRequest]:
        """Return the Braze REST requests for this message, in the order to send them.

        User-management entries marked ``before_track`` come first, then
        ``/users/track``, then the other user-management requests
        (``/users/identify``, ``/users/merge``, ``/users/delete``) grouped by path,
        so that a profile exists before it is merged.
        """
        body = self.track_body()
        track = [] if body is None else [BrazeRequest(path=TRACK_PATH, body=body)]
        operations = self.operations
        if not operations:
            return track
        if len(operations) == 1 and not operations[0].before_track:
            # Hot path: one operation (identify, alias, delete) needs no grouping.
            operation = operations[0]
            track.append(BrazeRequest(path=operation.path, body={operation.key: [operation.entry]}))
            return track
        before = [operation for operation in operations if operation.before_track]
        after = [operation for operation in operations if not operation.before_track]
        return [*_grouped(before), *track, *_grouped(after)]

    @property
    def object_count(self) -> int:
        """How many ``/users/track`` objects this message produces."""
        return len(self.attributes) + len(self.events) + len(self.purchases)


def _grouped(operations: list[UserOperation]) -> list[BrazeRequest]:
    """One request per endpoint and list key, in order of first appearance."""
    grouped: dict[tuple[str, str], list[Any]] = {}
    for operation in operations:
        grouped.setdefault((operation.path, operation.key), []).append(operation.entry)
    return [
        BrazeRequest(path=path, body={key: entries}) for (path, key), entries in grouped.items()
    ]
