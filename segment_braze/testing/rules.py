"""What Braze's REST API accepts: the rules behind :mod:`segment_braze.testing`.

Pure functions that judge one object or entry and answer with the problem in
words (``None`` when Braze would accept it). Nothing here imports the rest of
segment_braze: the stand-in must stay an independent judge of what Braze takes,
not an echo of what the library sends.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Final

__all__ = [
    "ARRAYS",
    "ENTRY_ARRAYS",
    "MAX_ENTRIES",
    "MAX_TRACK_OBJECTS",
    "NOT_ATTRIBUTES",
    "UserKey",
    "alias_key",
    "attributes_problem",
    "delete_kind",
    "entry_problem",
    "event_problem",
    "is_braze_time",
    "purchase_problem",
    "user_key",
]

UserKey = tuple[str, ...]
"""A user as the stand-in files it: ``("external_id", "u1")``,
``("user_alias", name, label)``, ``("braze_id", id)``, ``("email", address)`` or
``("phone", number)``."""

ARRAYS: Final = ("attributes", "events", "purchases")
"""The /users/track arrays, in the order Braze processes them (attributes first)."""

# Braze: /users/track takes at most 75 objects (in total, or per array on legacy
# accounts); the other user endpoints at most 50 entries.
MAX_TRACK_OBJECTS: Final = 75
MAX_ENTRIES: Final = 50

ENTRY_ARRAYS: Final = {
    # Braze: /users/identify takes either array, or both, in one request.
    "/users/identify": ("aliases_to_identify", "emails_to_identify"),
    "/users/merge": ("merge_updates",),
    "/users/alias/new": ("user_aliases",),
    # Braze: /users/delete takes exactly one of these per request.
    "/users/delete": (
        "external_ids",
        "user_aliases",
        "braze_ids",
        "email_addresses",
        "phone_numbers",
    ),
}
"""The array each non-track endpoint reads its entries from."""

_PRIMARY: Final = ("external_id", "user_alias", "braze_id")
_FLAGS: Final = ("_update_existing_only", "_merge_objects")
NOT_ATTRIBUTES: Final = frozenset(_PRIMARY + _FLAGS)
"""Keys of an attributes object that say who and how, not what to store."""

_MAX_EXTERNAL_ID_BYTES: Final = 987  # Braze: external_id at most 987 bytes
_MAX_CHARS: Final = 255  # Braze: keys, string values, product_id: at most 255
_E164: Final = re.compile(r"\+[1-9][0-9]{0,14}")
_EVENT_RESERVED: Final = frozenset({"time", "event_name"})
_PURCHASE_RESERVED: Final = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
_EVENT_PROPERTIES_BYTES: Final = 100 * 1024  # Braze: event properties <= 100 KB
_PURCHASE_PROPERTIES_BYTES: Final = 50 * 1024  # Braze: purchase properties <= 50 KB

# Braze documents `time` as ISO 8601 and shows `2013-07-16T19:20:30+1:00`,
# `...Z`, and `yyyy-MM-dd'T'HH:mm:ss:SSSZ` (a colon before the milliseconds and
# a `-0800` style offset) in its own examples: accept all of those.
_TIME: Final = re.compile(
    r"""
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    (?:
        [Tt\x20](?P<hour>\d{2}):(?P<minute>\d{2})
        (?::(?P<second>\d{2})(?:[.:,]\d{1,9})?)?
        (?:[Zz]|[+-](?P<zone_hours>\d{1,2})(?::?(?P<zone_minutes>\d{2}))?)?
    )?
    """,
    re.VERBOSE,
)


def is_braze_time(value: object) -> bool:
    """Tell whether Braze would take ``value`` as an event or purchase ``time``.

    Args:
        value: the JSON value sent as ``time``.

    Returns:
        True for an ISO 8601 string naming a real date and time (with ``Z``, an
        offset, or none), False otherwise (numbers, epoch seconds, nonsense).
    """
    if not isinstance(value, str):
        return False
    match = _TIME.fullmatch(value)
    if match is None:
        return False
    fields = {name: int(text) for name, text in match.groupdict().items() if text}
    if fields.get("zone_hours", 0) > 23 or fields.get("zone_minutes", 0) > 59:
        return False
    try:
        datetime(
            fields["year"],
            fields["month"],
            fields["day"],
            fields.get("hour", 0),
            fields.get("minute", 0),
            fields.get("second", 0),
        )
    except ValueError:
        return False
    return True


def _alias_problem(alias: object) -> str | None:
    if not isinstance(alias, dict):
        return "user_alias must be an object with alias_name and alias_label"
    for part in ("alias_name", "alias_label"):
        value = alias.get(part)
        if not isinstance(value, str) or not value:
            return f"user_alias.{part} must be a non-empty string"
    return None


def _lookup_problem(obj: dict[str, Any]) -> str | None:
    """Braze: without a primary identifier, email (first) or phone looks the profile up."""
    email, phone = obj.get("email"), obj.get("phone")
    if isinstance(email, str) and email:
        return None
    if isinstance(phone, str) and phone:
        # Braze: a phone number identifies a profile only in E.164 form.
        if _E164.fullmatch(phone) is None:
            return "phone must be an E.164 number (+ and up to 15 digits) to identify a user"
        return None
    return "Missing identifier: one of external_id, user_alias, braze_id, email, phone"


def _identifier_problem(obj: dict[str, Any]) -> str | None:
    """Check Braze's rule: exactly one of external_id, user_alias, braze_id."""
    present = [name for name in _PRIMARY if name in obj]
    if len(present) > 1:
        return f"Multiple identifiers given ({', '.join(present)}): send exactly one"
    if not present:
        # Braze: email or phone identify an attributes, event or purchase object
        # only when no primary identifier is present.
        return _lookup_problem(obj)
    name = present[0]
    value = obj[name]
    if name == "user_alias":
        return _alias_problem(value)
    if not isinstance(value, str) or not value:
        return f"{name} must be a non-empty string"
    if name == "external_id" and len(value.encode()) > _MAX_EXTERNAL_ID_BYTES:
        return f"external_id is longer than {_MAX_EXTERNAL_ID_BYTES} bytes"
    return None


def _flags_problem(obj: dict[str, Any]) -> str | None:
    for flag in _FLAGS:
        if flag in obj and not isinstance(obj[flag], bool):
            return f"{flag} must be a boolean"
    return None


def _push_tokens_problem(tokens: object) -> str | None:
    if not isinstance(tokens, list):
        return "push_tokens must be an array"
    for index, token in enumerate(tokens):
        if not isinstance(token, dict):
            return f"push_tokens[{index}] must be an object"
        for part in ("app_id", "token"):
            if not isinstance(token.get(part), str) or not token[part]:
                return f"push_tokens[{index}].{part} must be a non-empty string"
        device = token.get("device_id")
        # Braze: device_id, when given, is 8 to 255 bytes.
        if device is not None and (
            not isinstance(device, str) or not 8 <= len(device.encode()) <= 255
        ):
            return f"push_tokens[{index}].device_id must be 8 to 255 bytes"
    return None


def attributes_problem(obj: object) -> str | None:
    """Judge one object of the ``attributes`` array of /users/track.

    Args:
        obj: the JSON value at that position.

    Returns:
        Why Braze would reject it, or None when it is acceptable.
    """
    if not isinstance(obj, dict):
        return "Attributes object must be a JSON object"
    problem = _identifier_problem(obj) or _flags_problem(obj)
    if problem:
        return problem
    for key, value in obj.items():
        if key in NOT_ATTRIBUTES:
            continue
        if not key or len(key) > _MAX_CHARS:
            return f"Attribute name must be 1 to {_MAX_CHARS} characters"
        if key == "push_tokens":
            problem = _push_tokens_problem(value)
        elif isinstance(value, str) and len(value) > _MAX_CHARS:
            problem = f"Attribute {key!r} is longer than {_MAX_CHARS} characters"
        elif isinstance(value, list) and any(
            isinstance(item, str) and len(item) > _MAX_CHARS for item in value
        ):
            problem = f"Attribute {key!r} has an item over {_MAX_CHARS} characters"
        if problem:
            return problem
    return None


def _properties_problem(
    properties: object, *, reserved: frozenset[str], max_bytes: int
) -> str | None:
    if not isinstance(properties, dict):
        return "properties must be an object"
    for key, value in properties.items():
        if not key or len(key) > _MAX_CHARS:
            return f"Property name must be 1 to {_MAX_CHARS} characters"
        if key.startswith("$"):
            return f"Property name {key!r} must not start with '$'"
        if key in reserved:
            return f"Property name {key!r} is reserved"
        if isinstance(value, str) and len(value) > _MAX_CHARS:
            return f"Property {key!r} is longer than {_MAX_CHARS} characters"
    if len(json.dumps(properties).encode()) > max_bytes:
        return f"properties are larger than {max_bytes // 1024} KB"
    return None


def _common_problem(obj: object, kind: str) -> str | None:
    """The rules events and purchases share: identifier, flags, app_id, time."""
    if not isinstance(obj, dict):
        return f"{kind} object must be a JSON object"
    problem = _identifier_problem(obj) or _flags_problem(obj)
    if problem:
        return problem
    if "app_id" in obj and not isinstance(obj["app_id"], str):
        return "app_id must be a string"
    if not is_braze_time(obj.get("time")):
        return "time must be an ISO 8601 date-time string"
    return None


def event_problem(obj: object) -> str | None:
    """Judge one object of the ``events`` array of /users/track.

    Args:
        obj: the JSON value at that position.

    Returns:
        Why Braze would reject it, or None when it is acceptable.
    """
    problem = _common_problem(obj, "Event")
    if problem or not isinstance(obj, dict):
        return problem
    name = obj.get("name")
    if not isinstance(name, str) or not name or len(name) > _MAX_CHARS:
        return f"Event name must be a string of 1 to {_MAX_CHARS} characters"
    if "properties" in obj:
        return _properties_problem(
            obj["properties"],
            reserved=_EVENT_RESERVED,
            max_bytes=_EVENT_PROPERTIES_BYTES,
        )
    return None


def purchase_problem(obj: object) -> str | None:
    """Judge one object of the ``purchases`` array of /users/track.

    Args:
        obj: the JSON value at that position.

    Returns:
        Why Braze would reject it, or None when it is acceptable.
    """
    problem = _common_problem(obj, "Purchase")
    if problem or not isinstance(obj, dict):
        return problem
    product = obj.get("product_id")
    if not isinstance(product, str) or not 1 <= len(product) <= _MAX_CHARS:
        return f"product_id must be a string of 1 to {_MAX_CHARS} characters"
    currency = obj.get("currency")
    # Braze: ISO 4217 code, three upper-case letters.
    if not isinstance(currency, str) or re.fullmatch("[A-Z]{3}", currency) is None:
        return "currency must be a three-letter upper-case ISO 4217 code"
    price = obj.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
        return "price must be a number"
    quantity = obj.get("quantity", 1)
    # Braze: quantity is an integer from 1 to 100.
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return "quantity must be an integer"
    if not 1 <= quantity <= 100:
        return "quantity must be between 1 and 100"
    if "properties" in obj:
        return _properties_problem(
            obj["properties"],
            reserved=_PURCHASE_RESERVED,
            max_bytes=_PURCHASE_PROPERTIES_BYTES,
        )
    return None


def _lookup_identifier_problem(identifier: object) -> str | None:
    """/users/merge names each side by exactly one identifier."""
    if not isinstance(identifier, dict):
        return "must be an object"
    kinds = [k for k in ("external_id", "user_alias", "email", "phone") if k in identifier]
    if len(kinds) != 1:
        return "must hold exactly one of external_id, user_alias, email, phone"
    if kinds[0] == "user_alias":
        return _alias_problem(identifier["user_alias"])
    value = identifier[kinds[0]]
    if not isinstance(value, str) or not value:
        return f"{kinds[0]} must be a non-empty string"
    return None


# Braze: prioritization draws from these, with at most one of the first two.
_PRIORITIES: Final = (
    "identified",
    "unidentified",
    "most_recently_updated",
    "least_recently_updated",
)


def _email_entry_problem(entry: dict[str, Any]) -> str | None:
    email = entry.get("email")
    if not isinstance(email, str) or not email:
        return "email must be a non-empty string"
    priority = entry.get("prioritization")
    # Braze: prioritization is required with an email.
    if not isinstance(priority, list) or not priority:
        return "prioritization must be a non-empty array"
    if any(rule not in _PRIORITIES for rule in priority) or len(set(priority)) != len(priority):
        return f"prioritization takes each of {', '.join(_PRIORITIES)} at most once"
    if {"identified", "unidentified"} <= set(priority):
        return "prioritization takes identified or unidentified, not both"
    return None


def entry_problem(path: str, array: str, entry: object) -> str | None:
    """Judge one entry of a /users/identify, merge, delete or alias/new body.

    Args:
        path: the endpoint, for example ``"/users/merge"``.
        array: the body key the entry came from, for example ``"merge_updates"``.
        entry: the entry.

    Returns:
        Why Braze would reject it, or None when it is acceptable.
    """
    if array == "user_aliases":
        problem = _alias_problem(entry)
        if problem is None and path == "/users/alias/new" and isinstance(entry, dict):
            external_id = entry.get("external_id")
            if external_id is not None and not isinstance(external_id, str):
                return "external_id must be a string"
        return problem
    if path == "/users/delete":
        ok = isinstance(entry, str) and bool(entry)
        return None if ok else "must be a non-empty string"
    if not isinstance(entry, dict):
        return "must be an object"
    if path == "/users/identify":
        external_id = entry.get("external_id")
        if not isinstance(external_id, str) or not external_id:
            return "external_id must be a non-empty string"
        if array == "emails_to_identify":
            return _email_entry_problem(entry)
        return _alias_problem(entry.get("user_alias"))
    for side in ("identifier_to_merge", "identifier_to_keep"):
        problem = _lookup_identifier_problem(entry.get(side))
        if problem:
            return f"{side} {problem}"
    return None


def delete_kind(body: dict[str, Any]) -> str | None:
    """Name the one identifier array of a /users/delete body.

    Args:
        body: the parsed request body.

    Returns:
        The key, or None when the body holds none or several (Braze takes one
        identifier kind per request).
    """
    kinds = [key for key in ENTRY_ARRAYS["/users/delete"] if key in body]
    return kinds[0] if len(kinds) == 1 else None


def user_key(identifier: dict[str, Any]) -> UserKey:
    """File a valid object or identifier under the user it names.

    Args:
        identifier: an accepted track object or merge identifier.

    Returns:
        The directory key; email wins over phone, as in Braze's lookup.
    """
    if "user_alias" in identifier:
        alias = identifier["user_alias"]
        return ("user_alias", alias["alias_name"], alias["alias_label"])
    for kind in ("external_id", "braze_id", "email", "phone"):
        if kind in identifier:
            return (kind, identifier[kind])
    raise ValueError("no identifier")  # callers pass validated objects only


def alias_key(alias: dict[str, Any]) -> UserKey:
    """File a ``{"alias_name", "alias_label"}`` object under its directory key.

    Args:
        alias: a validated alias object.

    Returns:
        ``("user_alias", name, label)``.
    """
    return ("user_alias", alias["alias_name"], alias["alias_label"])
