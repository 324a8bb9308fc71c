"""Who a message is about: the one Braze identifier of its objects, and merges.

Braze files every attributes, event and purchase object under exactly one
primary identifier (``external_id``, ``braze_id``, ``user_alias``); without one,
``email`` or ``phone`` look the profile up. ``/users/identify`` joins an
anonymous profile to the known user. See docs/identity.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from segment_braze._settings import Settings
from segment_braze._translate.braze import Identifier, UserOperation
from segment_braze._translate.segment import Call, Group, Identify, Warnings, is_mapping

__all__ = [
    "TOO_LONG",
    "identifier_of",
    "identify_alias",
    "identify_email",
    "lookup_attributes",
    "normal_email",
    "too_long",
    "user_value",
]

# Braze: external_id is at most 987 bytes.
_MAX_EXTERNAL_ID_BYTES: Final = 987
# Braze: email and phone are strings of at most 255 characters; a phone number
# identifies a profile only in E.164 form (+, then 1 to 15 digits).
_MAX_LOOKUP: Final = 255
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_E164: Final = re.compile(r"\+[1-9][0-9]{0,14}")
# Braze (/users/identify): of the profiles holding the email, merge an
# unidentified one (no external_id), the most recently updated first.
_PRIORITY: Final = ("unidentified", "most_recently_updated")


def too_long(external_id: str) -> bool:
    """Whether ``external_id`` is over Braze's 987-byte limit."""
    # Hot path: UTF-8 takes at most 4 bytes per character, so a short id needs no
    # encoding to be known within the limit.
    if len(external_id) <= _MAX_EXTERNAL_ID_BYTES // 4:
        return False
    return len(external_id.encode()) > _MAX_EXTERNAL_ID_BYTES


TOO_LONG: Final = f"exceeds Braze's {_MAX_EXTERNAL_ID_BYTES}-byte external_id limit"


def identifier_of(call: Call, settings: Settings, warnings: Warnings) -> Identifier | str:
    """Pick the one identifier, or say why there is none.

    Precedence: ``userId`` -> external_id; a Braze id named by the sender ->
    braze_id; a user alias named by the sender -> user_alias; with
    ``fallback_identifiers``, the user's email or phone, in the order given; in
    alias mode, ``anonymousId`` -> user_alias.
    """
    if call.user_id is not None:
        if too_long(call.user_id):
            return f"userId {TOO_LONG}"
        return Identifier(kind="external_id", value=call.user_id)
    if call.braze_id is not None:
        return Identifier(kind="braze_id", value=call.braze_id)
    if call.named_alias is not None:
        name, label = call.named_alias
        return Identifier(kind="user_alias", value=name, label=label)
    if settings.fallback_identifiers:
        found = _fallback(call, settings, warnings)
        if found is not None:
            return found
    if settings.anonymous_users == "alias" and call.anonymous_id is not None:
        return Identifier(
            kind="user_alias",
            value=call.anonymous_id,
            label=settings.anonymous_alias_label,
        )
    lookup = " (nor a usable email or phone)" if settings.fallback_identifiers else ""
    if call.anonymous_id is not None:
        return (
            f"anonymous message (no userId{lookup}): Braze's REST API needs a user id; "
            "set anonymous_users='alias' to track anonymous users"
        )
    return f"no userId{lookup}: Braze's REST API needs a user id"


def _sources(call: Call) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Where the user's own traits can be, in order: (JSON path, object)."""
    if isinstance(call, Identify):
        yield "$.traits", call.traits
    context_traits = call.context.get("traits")
    if is_mapping(context_traits):
        yield "$.context.traits", context_traits
    # A group's traits describe the group, never the user.
    if not isinstance(call, Identify | Group):
        properties = getattr(call, "properties", None)
        if is_mapping(properties):
            yield "$.properties", properties


def user_value(call: Call, key: str) -> tuple[str, Any] | None:
    """The user's ``email`` or ``phone``: the first source holding one, with its path."""
    for path, source in _sources(call):
        value = source.get(key)
        if value is not None and value != "":
            return f"{path}.{key}", value
    return None


def normal_email(value: Any) -> str | None:
    """An email address as Braze matches it (trimmed, lower case), or None."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if len(email) > _MAX_LOOKUP or not _EMAIL.fullmatch(email):
        return None
    return email


def _normal_phone(value: Any) -> str | None:
    phone = value.strip() if isinstance(value, str) else None
    return phone if phone is not None and _E164.fullmatch(phone) else None


def _fallback(call: Call, settings: Settings, warnings: Warnings) -> Identifier | None:
    for kind in settings.fallback_identifiers:
        found = user_value(call, kind)
        if found is None:
            continue
        path, value = found
        if kind == "email":
            normal = normal_email(value)
            problem = "is not an email address"
        else:
            normal = _normal_phone(value)
            problem = "is not an E.164 phone number (+ and up to 15 digits)"
        if normal is not None:
            return Identifier(kind=kind, value=normal)
        warnings.append((path, f"{value!r} {problem}; not used as Braze's {kind} identifier"))
    return None


def lookup_attributes(
    identifier: Identifier, attributes: dict[str, Any], path: str, warnings: Warnings
) -> dict[str, Any]:
    """Attributes for an object identified by email or phone, without a second lookup key.

    The identifier itself writes ``email`` (or ``phone``), normalised. An email
    attribute beside a phone identifier is left out: Braze would look the
    profile up by the email instead (email wins over phone).
    """
    out = {key: value for key, value in attributes.items() if key != identifier.kind}
    if identifier.kind == "phone" and "email" in out:
        del out["email"]
        warnings.append(
            (
                f"{path}.email",
                "not sent: beside a phone identifier Braze would look the profile up by it",
            )
        )
    return out


def identify_email(call: Identify, external_id: str, warnings: Warnings) -> UserOperation | None:
    """The ``/users/identify`` entry merging an email-only profile into ``external_id``.

    Sent before the identify's ``/users/track`` request: once that request has
    written the email onto the known user, the email matches two profiles, and
    Braze then merges nothing. Braze picks among email-only profiles by the
    prioritization; ``translate()`` cannot know whether one exists, so every
    identify with an email carries the entry.
    """
    found = user_value(call, "email")
    if found is None:
        return None
    path, value = found
    email = normal_email(value)
    if email is None:
        warnings.append((path, f"{value!r} is not an email address; no email-only profile merged"))
        return None
    return UserOperation(
        path="/users/identify",
        key="emails_to_identify",
        entry={"external_id": external_id, "email": email, "prioritization": list(_PRIORITY)},
        before_track=True,
    )


def identify_alias(external_id: str, alias_name: str, alias_label: str) -> UserOperation:
    """The ``/users/identify`` entry that merges an alias into ``external_id``."""
    return UserOperation(
        path="/users/identify",
        key="aliases_to_identify",
        entry={
            "external_id": external_id,
            "user_alias": {"alias_name": alias_name, "alias_label": alias_label},
        },
    )
