"""The Braze profile a sender names in a message, beside userId and anonymousId.

Braze's own id, ``braze_id``: in ``integrations.Braze`` (the top-level object,
then ``context.integrations``), then in ``properties``, then in ``traits``. A
user alias, as RudderStack's Braze destination reads it:
``integrations.braze.alias`` (``Braze`` and ``BRAZE`` too) with ``alias_name``
and ``alias_label``. See docs/identity.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._translate.text import is_text
from segment_braze.exceptions import InvalidMessage

__all__ = ["braze_id", "named_alias"]

# RudderStack's names for its Braze destination's options; Segment's is the first.
_OPTION_KEYS: Final = ("Braze", "braze", "BRAZE")


def braze_id(message: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The Braze id a sender named, or None; the first source that sets one wins."""
    for integrations in (message.get("integrations"), context.get("integrations")):
        if integrations and isinstance(integrations, Mapping):
            braze = integrations.get("Braze")
            if braze and isinstance(braze, Mapping):
                value = braze.get("braze_id")
                if isinstance(value, str) and value:
                    return _text_id(value, "Braze.braze_id")
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


def named_alias(
    message: Mapping[str, Any], context: Mapping[str, Any], warnings: list[tuple[str, str]]
) -> tuple[str, str] | None:
    """The user alias ``(alias_name, alias_label)`` a sender named, or None.

    The top-level ``integrations`` object is read first, then
    ``context.integrations``. An ``alias`` without both fields as non-empty
    strings is noted at its path and not used.
    """
    for where, integrations in (
        ("$.integrations", message.get("integrations")),
        ("$.context.integrations", context.get("integrations")),
    ):
        if not integrations or not isinstance(integrations, Mapping):
            continue
        for key in _OPTION_KEYS:
            options = integrations.get(key)
            if options and isinstance(options, Mapping) and "alias" in options:
                return _alias(options["alias"], f"{where}.{key}.alias", warnings)
    return None


def _alias(value: object, path: str, warnings: list[tuple[str, str]]) -> tuple[str, str] | None:
    if isinstance(value, Mapping):
        name, label = value.get("alias_name"), value.get("alias_label")
        if _usable(name) and _usable(label):
            return name, label  # type: ignore[return-value]
    warnings.append((path, "needs alias_name and alias_label as non-empty strings; ignored"))
    return None


def _usable(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and is_text(value)
