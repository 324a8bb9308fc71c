"""The Braze profile a sender names in a message, beside userId and anonymousId.

Braze's own id, ``braze_id``: in ``integrations.Braze`` (the top-level object,
then ``context.integrations``), then in ``properties``, then in ``traits``. A
user alias, as RudderStack's Braze destination reads it:
``integrations.braze.alias`` (``Braze`` and ``BRAZE`` too) with ``alias_name``
and ``alias_label``; and, also RudderStack's, the app the message comes from,
``integrations.braze.appId``, and whether Braze deep-merges the message's
``$update`` operations, ``properties.mergeObjectsUpdateOperation``. See
docs/identity.md and docs/mapping.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._translate.text import is_text
from segment_braze.exceptions import InvalidMessage

__all__ = ["braze_id", "merge_updates", "named_alias", "named_app_id"]

# RudderStack's names for its Braze destination's options; Segment's is the first.
_OPTION_KEYS: Final = ("Braze", "braze", "BRAZE")
_MERGE_UPDATES: Final = "mergeObjectsUpdateOperation"


def braze_id(message: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The Braze id a sender named, or None; the first source that sets one wins."""
    for where, integrations in (
        ("integrations", message.get("integrations")),
        ("context.integrations", context.get("integrations")),
    ):
        if integrations and isinstance(integrations, Mapping):
            braze = integrations.get("Braze")
            if braze and isinstance(braze, Mapping):
                value = braze.get("braze_id")
                if isinstance(value, str) and value:
                    return _text_id(value, f"{where}.Braze.braze_id")
    for key in ("properties", "traits"):
        payload = message.get(key)
        if type(payload) is dict and "braze_id" not in payload:
            continue  # hot path: a parsed payload without the key, ruled out at once
        if payload and isinstance(payload, Mapping):
            value = payload.get("braze_id")
            if isinstance(value, str) and value:
                return _text_id(value, f"{key}.braze_id")
    return None


def _text_id(value: str, where: str) -> str:
    if not value.isascii() and not is_text(value):
        raise InvalidMessage(f"$.{where}", "is not valid Unicode (lone surrogate)")
    return value


def _option(
    message: Mapping[str, Any], context: Mapping[str, Any], name: str
) -> tuple[str, object] | None:
    """``(path, value)`` of the first Braze option ``name`` a sender set, or None."""
    for where, integrations in (
        ("$.integrations", message.get("integrations")),
        ("$.context.integrations", context.get("integrations")),
    ):
        if not integrations or not isinstance(integrations, Mapping):
            continue
        for key in _OPTION_KEYS:
            options = integrations.get(key)
            if options and isinstance(options, Mapping) and name in options:
                return f"{where}.{key}.{name}", options[name]
    return None


def named_alias(
    message: Mapping[str, Any], context: Mapping[str, Any], warnings: list[tuple[str, str]]
) -> tuple[str, str] | None:
    """The user alias ``(alias_name, alias_label)`` a sender named, or None.

    The top-level ``integrations`` object is read first, then
    ``context.integrations``. An ``alias`` without both fields as non-empty
    strings is noted at its path and not used.
    """
    found = _option(message, context, "alias")
    if found is None:
        return None
    path, value = found
    if isinstance(value, Mapping):
        name, label = value.get("alias_name"), value.get("alias_label")
        if _usable(name) and _usable(label):
            return name, label  # type: ignore[return-value]
    warnings.append((path, "needs alias_name and alias_label as non-empty strings; ignored"))
    return None


def named_app_id(
    message: Mapping[str, Any], context: Mapping[str, Any], warnings: list[tuple[str, str]]
) -> str | None:
    """The Braze app id a sender named for this message (RudderStack's ``appId``), or None.

    A number is written as its decimal text, as RudderStack does; anything else
    that is not a non-empty string is noted at its path and not used.
    """
    found = _option(message, context, "appId")
    if found is None or found[1] is None:
        return None
    path, value = found
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return str(value)
    if _usable(value):
        return value  # type: ignore[return-value]
    warnings.append((path, "must be a non-empty string; the configured app_id is used"))
    return None


def merge_updates(properties: Mapping[str, Any], warnings: list[tuple[str, str]]) -> bool:
    """Whether ``properties.mergeObjectsUpdateOperation`` (RudderStack's) is ``true``.

    ``false`` and ``null`` are RudderStack's default; anything else is noted at
    its path and not applied (RudderStack would pass it to Braze as it is).
    """
    value = properties.get(_MERGE_UPDATES)
    if value is None or isinstance(value, bool):
        return value is True
    warnings.append((f"$.properties.{_MERGE_UPDATES}", "must be true or false; not applied"))
    return False


def _usable(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and is_text(value)
