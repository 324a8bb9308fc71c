"""Traits that give the same Braze attribute, and which of them wins.

``firstName`` and ``first_name`` both give ``first_name``: when a message has both,
the first of the list wins whatever the order of its keys, and a different value of
the other is dropped with a warning (docs/mapping.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._translate.native import json_form
from segment_braze._translate.segment import Warnings, is_mapping

__all__ = ["OUTRANKED", "outranked"]

# Traits that give the same Braze attribute: the first present of each list wins,
# whatever the order of the message's keys (Segment's spec names come first; the
# address object's city and country, read by traits._address, are never outranked).
_SAME_ATTRIBUTE: Final = (
    ("first_name", ("firstName", "first_name")),
    ("last_name", ("lastName", "last_name")),
    ("image_url", ("avatar", "photoUrl", "avatarUrl", "image_url")),
    ("dob", ("birthday", "dob")),
    ("home_city", ("address.city", "home_city")),
    ("country", ("address.country", "country")),
)
# Trait -> (the Braze attribute, the traits that win over it).
OUTRANKED: Final = {
    key: (target, keys[:index])
    for target, keys in _SAME_ATTRIBUTE
    for index, key in enumerate(keys)
    if index
}
_MISSING: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _trait(traits: Mapping[str, Any], name: str) -> Any:
    """A trait by name (``address.city`` inside the address object), or _MISSING."""
    if name.startswith("address."):
        address = traits.get("address")
        field = name.removeprefix("address.")
        return address.get(field, _MISSING) if is_mapping(address) else _MISSING
    return traits.get(name, _MISSING)


def outranked(
    key: str, value: Any, traits: Mapping[str, Any], path: str, warnings: Warnings
) -> bool:
    """Whether a trait that comes first gives ``key``'s attribute; a different value is noted."""
    target, winners = OUTRANKED[key]
    for winner in winners:
        first = json_form(_trait(traits, winner))
        if first is not _MISSING:
            # Compared only as scalars: two hostile nested values could recurse.
            if not (type(first) in _SCALARS and type(value) in _SCALARS and first == value):
                warnings.append((path, f"{target} comes from '{winner}'; dropped"))
            return True
    return False
