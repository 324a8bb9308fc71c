"""What an identify says about the user, wherever the client put it.

Segment's clients send traits in ``traits``; RudderStack's SDKs (and some of
Segment's) put them in ``context.traits``, and ``context`` also carries the
device's location, time zone and locale. This module gathers them, in order of
precedence, for the trait rules in :mod:`segment_braze._translate.traits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segment_braze._settings import Settings
from segment_braze._translate.segment import Call, Identify, Warnings, is_mapping
from segment_braze._translate.traits import traits_to_attributes

__all__ = ["context_traits", "event_attributes", "identify_attributes"]


def context_traits(call: Call, warnings: Warnings) -> Mapping[str, Any] | None:
    """The call's ``context.traits``, or None (with a warning when not an object)."""
    traits = call.context.get("traits")
    if traits is None:
        return None
    if not is_mapping(traits):
        warnings.append(("$.context.traits", "must be an object; ignored"))
        return None
    return traits


def _from_context(
    context: Mapping[str, Any], merged: dict[str, Any], paths: dict[str, str]
) -> None:
    """Braze's standard attributes the device context carries (``context_attributes``)."""
    location = context.get("location")
    if is_mapping(location):
        if location.get("country") is not None:
            merged["country"] = location["country"]
            paths["country"] = "$.context.location"
        if location.get("latitude") is not None or location.get("longitude") is not None:
            merged["current_location"] = {
                "latitude": location.get("latitude"),
                "longitude": location.get("longitude"),
            }
            paths["current_location"] = "$.context.location"
    timezone = context.get("timezone")
    if timezone is not None:
        merged["time_zone"] = timezone
        paths["time_zone"] = "$.context.timezone"
    locale = context.get("locale")
    if isinstance(locale, str) and locale:
        # "de-DE" -> "de": Braze's language is the ISO-639-1 part alone.
        merged["language"] = locale.replace("_", "-").split("-", 1)[0]
        paths["language"] = "$.context.locale"


def identify_attributes(call: Identify, settings: Settings, warnings: Warnings) -> dict[str, Any]:
    """Map an identify's traits to Braze attributes, ``context.traits`` included.

    Precedence, highest first: ``traits``, ``context.traits``, and (with
    ``context_attributes``) the device context. Each warning names the JSON path
    the value came from.
    """
    traits = call.traits
    extra = context_traits(call, warnings)
    if not extra and not settings.context_attributes:
        # The common case: traits alone.
        return traits_to_attributes(
            traits,
            path="$.traits",
            max_array_length=settings.max_array_length,
            warnings=warnings,
            array_operations=settings.nested_array_operations,
        )
    merged: dict[str, Any] = {}
    paths: dict[str, str] = {}
    if settings.context_attributes:
        _from_context(call.context, merged, paths)
    for key, value in (extra or {}).items():
        merged[key] = value
        paths[key] = "$.context.traits"
    for key, value in traits.items():
        merged[key] = value
        paths.pop(key, None)
    return traits_to_attributes(
        merged,
        path="$.traits",
        max_array_length=settings.max_array_length,
        warnings=warnings,
        array_operations=settings.nested_array_operations,
        origins=paths,
    )


def event_attributes(call: Call, settings: Settings, warnings: Warnings) -> dict[str, Any] | None:
    """RudderStack's rule, when on: ``context.traits`` on any event update the profile."""
    if not settings.context_traits_as_attributes:
        return None
    traits = context_traits(call, warnings)
    if not traits:
        return None
    attributes = traits_to_attributes(
        traits,
        path="$.context.traits",
        max_array_length=settings.max_array_length,
        warnings=warnings,
        array_operations=settings.nested_array_operations,
    )
    return attributes or None
