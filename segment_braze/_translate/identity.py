"""Who a message is about: the one Braze identifier of its objects, and merges.

Braze files every attributes, event and purchase object under exactly one
primary identifier; ``/users/identify`` joins an anonymous profile to the known
user. See docs/identity.md.
"""

from __future__ import annotations

from typing import Final

from segment_braze._settings import Settings
from segment_braze._translate.braze import Identifier, UserOperation
from segment_braze._translate.segment import Call

__all__ = ["TOO_LONG", "identifier_of", "identify_alias", "too_long"]

# Braze: external_id is at most 987 bytes.
_MAX_EXTERNAL_ID_BYTES: Final = 987


def too_long(external_id: str) -> bool:
    """Whether ``external_id`` is over Braze's 987-byte limit."""
    # Hot path: UTF-8 takes at most 4 bytes per character, so a short id needs no
    # encoding to be known within the limit.
    if len(external_id) <= _MAX_EXTERNAL_ID_BYTES // 4:
        return False
    return len(external_id.encode()) > _MAX_EXTERNAL_ID_BYTES


TOO_LONG: Final = f"exceeds Braze's {_MAX_EXTERNAL_ID_BYTES}-byte external_id limit"


def identifier_of(call: Call, settings: Settings) -> Identifier | str:
    """Pick the one primary identifier, or say why there is none.

    Precedence: ``userId`` -> external_id; a Braze id named by the sender ->
    braze_id; in alias mode, ``anonymousId`` -> user_alias.
    """
    if call.user_id is not None:
        if too_long(call.user_id):
            return f"userId {TOO_LONG}"
        return Identifier(kind="external_id", value=call.user_id)
    if call.braze_id is not None:
        return Identifier(kind="braze_id", value=call.braze_id)
    if settings.anonymous_users == "alias" and call.anonymous_id is not None:
        return Identifier(
            kind="user_alias",
            value=call.anonymous_id,
            label=settings.anonymous_alias_label,
        )
    if call.anonymous_id is not None:
        return (
            "anonymous message (no userId): Braze's REST API needs a user id; "
            "set anonymous_users='alias' to track anonymous users"
        )
    return "no userId: Braze's REST API needs a user id"


def identify_alias(external_id: str, alias_name: str, settings: Settings) -> UserOperation:
    """The ``/users/identify`` entry that merges alias ``alias_name`` into ``external_id``."""
    return UserOperation(
        path="/users/identify",
        key="aliases_to_identify",
        entry={
            "external_id": external_id,
            "user_alias": {
                "alias_name": alias_name,
                "alias_label": settings.anonymous_alias_label,
            },
        },
    )
