"""Which messages reach Braze: Segment's consent and ``integrations`` rules.

Segment decides per message whether a destination receives it, and its archives
keep every message whatever it decided, so a replay must decide again, the same
way: consent first, then the ``integrations`` object (Segment's reconcile order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segment_braze._settings import Settings
from segment_braze._translate.segment import Warnings, is_mapping, shown

__all__ = ["blocked"]


def _switch(integrations: Mapping[Any, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The key of ``integrations`` that decides for Braze, and its value, or None."""
    for name in names:
        if name in integrations:
            return name, integrations[name]
    if "All" in integrations:
        return "All", integrations["All"]
    return None


def _integrations(
    message: Mapping[str, Any],
    context: Mapping[str, Any],
    names: tuple[str, ...],
    warnings: Warnings,
) -> str | None:
    # Segment: the top-level object decides; context.integrations counts the
    # same way where the top level names neither Braze nor All.
    for where, path, value in (
        ("integrations object", "$.integrations", message.get("integrations")),
        ("context.integrations", "$.context.integrations", context.get("integrations")),
    ):
        if value is None:
            continue
        if not is_mapping(value):
            warnings.append((path, "must be an object; ignored"))
            continue
        decided = _switch(value, names)
        if decided is None:
            continue
        key, switch = decided
        # Only false turns a destination off; true or an options object keeps it on.
        if switch is False:
            return f'{where} turns Braze off ("{key}": false)'
        return None
    return None


def _consent(context: Mapping[str, Any], categories: tuple[str, ...]) -> str | None:
    consent = context.get("consent")
    if not is_mapping(consent):
        return None
    preferences = consent.get("categoryPreferences")
    if not is_mapping(preferences) or not preferences:
        return None  # Segment: no consent preferences, no filtering
    for category in categories:
        if preferences.get(category) is not True:
            return f"consent not given for category {shown(category)} (context.consent)"
    return None


def blocked(message: Mapping[str, Any], settings: Settings, warnings: Warnings) -> str | None:
    """Say why Segment would not deliver ``message`` to Braze, or return None.

    A user-deletion request is never blocked: it is a privacy obligation.

    Args:
        message: the Segment message (a mapping; its type already read).
        settings: ``integration_names`` and ``consent_categories``.
        warnings: receives a warning for an ``integrations`` value that is not an object.

    Returns:
        The drop reason, naming the key or category that turned Braze off.
    """
    call_type = message.get("type")
    if isinstance(call_type, str) and call_type.lower() == "delete":
        return None
    context = message.get("context")
    if not is_mapping(context):
        context = {}
    if settings.consent_categories:
        reason = _consent(context, settings.consent_categories)
        if reason is not None:
            return reason
    if settings.integration_names:
        return _integrations(message, context, settings.integration_names, warnings)
    return None
