"""Estimate the Braze data points a request consumes.

On data-point contracts Braze bills every attribute key it receives, changed or
not (nulls and array updates too; each key of a nested object counts), and one
per event and per purchase; its eCommerce recommended events (``ecommerce.*``)
use none. Identifiers, subscription states, aliases and deletes are free. These
are estimates: a contract can differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._translate.ecommerce_schema import RECOMMENDED_EVENTS

__all__ = [
    "FREE_ATTRIBUTE_KEYS",
    "attribute_data_points",
    "event_data_points",
    "value_data_points",
]

FREE_ATTRIBUTE_KEYS: Final = frozenset(
    {
        "external_id",
        "user_alias",
        "braze_id",
        "_update_existing_only",
        "_merge_objects",
        "email_subscribe",
        "push_subscribe",
        "subscription_groups",
        "push_tokens",
    }
)


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def value_data_points(value: Any) -> int:
    """Data points one attribute value consumes: 1, or one per nested key."""
    if type(value) in _SCALARS:  # the common case, without an ABC check
        return 1
    if isinstance(value, Mapping) and value and not value.keys() & {"inc", "add", "remove"}:
        return sum(value_data_points(item) for item in value.values())
    return 1


def attribute_data_points(obj: Mapping[str, Any]) -> int:
    """Data points one attributes object consumes."""
    return sum(value_data_points(v) for k, v in obj.items() if k not in FREE_ATTRIBUTE_KEYS)


def event_data_points(name: str) -> int:
    """Data points one event consumes: none for a recommended event, else 1."""
    # Braze: eCommerce recommended events use no data points.
    return 0 if name in RECOMMENDED_EVENTS else 1
