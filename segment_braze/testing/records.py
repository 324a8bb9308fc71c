"""What the stand-in keeps of each request: the requests and the objects Braze ignored."""

from __future__ import annotations

from typing import Any

import attrs

from segment_braze.testing.faults import Fault

__all__ = ["IgnoredObject", "RecordedRequest"]


def _redacted(headers: dict[str, str]) -> str:
    # The Authorization header holds a REST API key: keep it out of test logs.
    return repr({k: "<redacted>" if k == "authorization" else v for k, v in headers.items()})


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the stand-in received, as it arrived.

    Attributes:
        method: the HTTP method.
        path: the request target as sent (query string included).
        headers: the headers, names in lower case, values as sent; the repr
            hides the Authorization value.
        body: the parsed JSON body, or None (absent, invalid, too large, unread).
        status: the status answered, or None when the connection was dropped.
        received_at: when it arrived, seconds since the epoch.
        fault: the fault applied to it, injected or random, or None.
    """

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=_redacted)
    body: Any
    status: int | None
    received_at: float
    fault: Fault | None = None


@attrs.frozen(kw_only=True)
class IgnoredObject:
    """A valid /users/track object Braze answered as processed but dropped.

    Braze drops update-only objects (``_update_existing_only: true``, and any
    event or purchase by ``user_alias``) when the user does not exist.

    Attributes:
        input_array: ``"attributes"``, ``"events"`` or ``"purchases"``.
        index: its position in that array.
        data: the object.
        reason: why Braze dropped it.
    """

    input_array: str
    index: int
    data: dict[str, Any]
    reason: str
