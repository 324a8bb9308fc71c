"""Builders for Segment messages and readers for what a translation sends.

Every builder returns a complete, valid Segment message of its type; keyword
overrides replace fields, and ``ABSENT`` removes one (``track(userId=ABSENT)``).
"""

from __future__ import annotations

from typing import Any

from segment_braze import Translation

ABSENT: Any = object()
"""Pass as an override to leave the field out of the message."""

USER = "user-1"
ANON = "anon-1"
TIME = "2015-01-01T00:00:00Z"
BRAZE_TIME = "2015-01-01T00:00:00.000Z"
LABEL = "segment_anonymous_id"
ALIAS = {"alias_name": ANON, "alias_label": LABEL}


def _message(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **overrides}
    return {key: value for key, value in merged.items() if value is not ABSENT}


def identify(**overrides: Any) -> dict[str, Any]:
    """An identify call for ``USER`` with no traits."""
    return _message({"type": "identify", "userId": USER, "traits": {}}, overrides)


def track(**overrides: Any) -> dict[str, Any]:
    """A track call of ``Signed Up`` for ``USER`` at ``TIME``."""
    return _message(
        {"type": "track", "userId": USER, "event": "Signed Up", "timestamp": TIME},
        overrides,
    )


def page(**overrides: Any) -> dict[str, Any]:
    """An unnamed page call for ``USER`` at ``TIME``."""
    return _message({"type": "page", "userId": USER, "timestamp": TIME}, overrides)


def screen(**overrides: Any) -> dict[str, Any]:
    """An unnamed screen call for ``USER`` at ``TIME``."""
    return _message({"type": "screen", "userId": USER, "timestamp": TIME}, overrides)


def group(**overrides: Any) -> dict[str, Any]:
    """A group call putting ``USER`` in group ``acme``."""
    return _message({"type": "group", "userId": USER, "groupId": "acme"}, overrides)


def alias(**overrides: Any) -> dict[str, Any]:
    """An alias call saying ``ANON`` (previousId) is ``USER``."""
    return _message({"type": "alias", "userId": USER, "previousId": ANON}, overrides)


def delete(**overrides: Any) -> dict[str, Any]:
    """Segment's user-deletion message for ``USER``."""
    return _message({"type": "delete", "userId": USER}, overrides)


def order(*products: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """An ``Order Completed`` track for ``USER`` with the given products."""
    return track(event="Order Completed", properties={**properties, "products": list(products)})


def sent(t: Translation) -> list[tuple[str, dict[str, Any]]]:
    """Every request the translation sends, as ``(path, body)`` pairs in order."""
    return [(request.path, dict(request.body)) for request in t.requests()]


def track_body(t: Translation) -> dict[str, Any]:
    """The one ``/users/track`` body; fails unless that is the only request."""
    requests = sent(t)
    assert [path for path, _ in requests] == ["/users/track"], requests
    return requests[0][1]


def only(t: Translation, kind: str) -> dict[str, Any]:
    """The single object of ``kind`` (attributes, events, purchases) in the track body."""
    items = track_body(t)[kind]
    assert len(items) == 1, items
    return items[0]


def warning_paths(t: Translation) -> list[str]:
    """The JSON paths of the translation's warnings, in order."""
    return [path for path, _ in t.warnings]
