"""Braze's schema for its eCommerce recommended events: what a valid one holds.

Braze validates the six ``ecommerce.*`` events against a fixed schema and drops
an invalid one (a REST caller gets an ``errors`` entry in a success answer), so
every event is checked here before it is sent. The rules are Braze's
("Recommended events", "Log eCommerce events"): required and optional properties
per event, nothing else at the top level, strings and ids non-blank and at most
255 characters, amounts numbers >= 0, an ISO 4217 currency, a non-empty
``products`` array of complete lines, metadata keys Braze accepts, and at most
100 KB of properties. Nothing here knows about Segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from segment_braze import _json
from segment_braze._translate.iso import currency_code

__all__ = [
    "CART_UPDATED",
    "CHECKOUT_STARTED",
    "ORDER_CANCELLED",
    "ORDER_PLACED",
    "ORDER_REFUNDED",
    "PRODUCT_VIEWED",
    "RECOMMENDED_EVENTS",
    "schema_problems",
]

PRODUCT_VIEWED: Final = "ecommerce.product_viewed"
CART_UPDATED: Final = "ecommerce.cart_updated"
CHECKOUT_STARTED: Final = "ecommerce.checkout_started"
ORDER_PLACED: Final = "ecommerce.order_placed"
ORDER_CANCELLED: Final = "ecommerce.order_cancelled"
ORDER_REFUNDED: Final = "ecommerce.order_refunded"

# Braze: strings at most 255 characters; event properties at most 100 KB.
_MAX_STRING: Final = 255
_MAX_BYTES: Final = 100 * 1024
# Tuples, not sets: a value may be a list, which cannot be hashed.
_ACTIONS: Final = ("add", "remove", "replace")
_TYPES: Final = ("price_drop", "back_in_stock")

Problem = tuple[str, str]
Check = Callable[[Any], str | None]


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string (unexpected_data_type)"
    if not value.strip():
        return "must not be blank"
    if len(value) > _MAX_STRING:
        return f"is {len(value)} characters, over Braze's {_MAX_STRING}"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: not writable as JSON text
            return "is not valid Unicode"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _amount(value: Any) -> str | None:
    if not _is_number(value):
        return f"{value!r} is not a number (unexpected_data_type)"
    return None if value >= 0 else f"{value!r} is negative; Braze takes amounts >= 0"


def _quantity(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{value!r} is not a whole number (unexpected_data_type)"
    return None if value >= 1 else f"{value!r} is below 1"


def _currency(value: Any) -> str | None:
    if isinstance(value, str) and currency_code(value) == value:
        return None
    return f"{value!r} is not an ISO 4217 currency code"


def _action(value: Any) -> str | None:
    return None if value in _ACTIONS else f"{value!r} is not add, remove or replace"


def _types(value: Any) -> str | None:
    if isinstance(value, list) and value and all(item in _TYPES for item in value):
        return None
    return "must be a list of price_drop and back_in_stock"


def _discounts(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
        return None
    return "must be a list of objects (unexpected_data_type)"


def _metadata(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object (unexpected_data_type)"
    for key in value:
        # Braze: metadata keys are non-empty, at most 255 characters, no leading $.
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_STRING or key[0] == "$":
            return f"key {key!r} is not 1 to {_MAX_STRING} characters without a leading '$'"
    return None


# Each schema maps a property to (its check, whether Braze requires it).
Schema = dict[str, tuple[Check, bool]]

_LINE: Final[Schema] = {
    "product_id": (_text, True),
    "product_name": (_text, True),
    "variant_id": (_text, True),
    "price": (_amount, True),
    "image_url": (_text, False),
    "product_url": (_text, False),
}
_PRODUCT_LINE: Final[Schema] = {
    **_LINE,
    "quantity": (_quantity, True),
    "metadata": (_metadata, False),
}
_EVERY_EVENT: Final[Schema] = {
    "currency": (_currency, True),
    "source": (_text, True),
    "metadata": (_metadata, False),
}
_AMOUNTS: Final[Schema] = {
    "subtotal_value": (_amount, False),
    "tax": (_amount, False),
    "shipping": (_amount, False),
}
_DISCOUNTS: Final[Schema] = {"total_discounts": (_amount, False), "discounts": (_discounts, False)}
_ORDER: Final[Schema] = {"order_id": (_text, True), "total_value": (_amount, True)}
# products is checked apart: an array of lines, each with its own schema.
_PRODUCTS: Final = "products"

_SCHEMAS: Final[dict[str, Schema]] = {
    PRODUCT_VIEWED: {**_LINE, "type": (_types, False), **_EVERY_EVENT},
    CART_UPDATED: {
        "cart_id": (_text, True),
        "action": (_action, False),
        # Required when action is omitted or "replace" (checked below).
        "total_value": (_amount, False),
        **_AMOUNTS,
        **_EVERY_EVENT,
    },
    CHECKOUT_STARTED: {
        "checkout_id": (_text, True),
        "cart_id": (_text, False),
        "total_value": (_amount, True),
        **_AMOUNTS,
        **_EVERY_EVENT,
    },
    ORDER_PLACED: {**_ORDER, "cart_id": (_text, False), **_AMOUNTS, **_DISCOUNTS, **_EVERY_EVENT},
    ORDER_CANCELLED: {
        **_ORDER,
        "cancel_reason": (_text, True),
        **_AMOUNTS,
        **_DISCOUNTS,
        **_EVERY_EVENT,
    },
    ORDER_REFUNDED: {**_ORDER, **_DISCOUNTS, **_EVERY_EVENT},
}
"""The top-level properties of each event (besides ``products``)."""

RECOMMENDED_EVENTS: Final = frozenset(_SCHEMAS)
"""Braze's eCommerce recommended event names (exact, case-sensitive)."""


def _fields(schema: Schema, values: Mapping[str, Any], prefix: str) -> list[Problem]:
    problems = [
        (f"{prefix}{key}", "is not a property of Braze's schema (extra_property)")
        for key in values
        if key not in schema
    ]
    for key, (check, required) in schema.items():
        if key not in values:
            if required:
                problems.append((f"{prefix}{key}", "is missing (missing_property)"))
            continue
        problem = check(values[key])
        if problem is not None:
            problems.append((f"{prefix}{key}", problem))
    return problems


def _products(value: Any) -> list[Problem]:
    if not isinstance(value, list):
        return [(_PRODUCTS, "must be an array of products (unexpected_data_type)")]
    if not value:
        return [(_PRODUCTS, "must hold at least one product")]
    problems: list[Problem] = []
    for index, line in enumerate(value):
        prefix = f"{_PRODUCTS}[{index}]"
        if not isinstance(line, Mapping):
            problems.append((prefix, "must be an object (unexpected_data_type)"))
        else:
            problems.extend(_fields(_PRODUCT_LINE, line, f"{prefix}."))
    return problems


def schema_problems(name: str, properties: Mapping[str, Any]) -> list[Problem]:
    """Check one recommended event's properties against Braze's schema.

    Args:
        name: the event name, one of :data:`RECOMMENDED_EVENTS`.
        properties: the event's ``properties``, as they would be sent.

    Returns:
        ``(property path, problem)`` for each property missing or invalid, the
        path in Braze's terms (``products[1].product_name``); empty when Braze
        would accept the event.
    """
    schema = _SCHEMAS[name]
    top = {key: value for key, value in properties.items() if key != _PRODUCTS}
    problems = _fields(schema, top, "")
    if name != PRODUCT_VIEWED:
        if _PRODUCTS in properties:
            problems.extend(_products(properties[_PRODUCTS]))
        else:
            problems.append((_PRODUCTS, "is missing (missing_property)"))
    elif _PRODUCTS in properties:
        problems.append((_PRODUCTS, "is not a property of Braze's schema (extra_property)"))
    # Braze: a cart update without action (or "replace") carries the cart's total.
    replaces = properties.get("action", "replace") == "replace"
    if name == CART_UPDATED and replaces and "total_value" not in properties:
        problems.append(("total_value", "is missing (missing_property): required to replace"))
    if not problems:
        size = len(_json.dumps(properties))
        if size > _MAX_BYTES:
            problems.append(("", f"properties of {size} bytes exceed Braze's {_MAX_BYTES}"))
    return problems
