"""Braze's validation of eCommerce recommended events, as the stand-in applies it.

Braze checks the six ``ecommerce.*`` events against a fixed schema after it has
accepted the request: an invalid one is not stored (no profile, no revenue, no
cart, no trigger) and a REST caller learns of it only through an ``errors``
entry (``missing_property``, ``extra_property``, ``unexpected_data_type``) in a
success answer. Written from Braze's "Recommended events" and "Log eCommerce
events" pages, independently of the library's own pre-flight check: nothing here
imports the rest of segment_braze.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

__all__ = ["RECOMMENDED", "recommended_problem"]

_MAX: Final = 255  # Braze: ids, names, URLs and metadata keys at most 255 characters
_MAX_PROPERTIES: Final = 102_400  # Braze: event properties at most 100 KB

_LINE_REQUIRED: Final = ("product_id", "product_name", "variant_id", "price")
_LINE_OPTIONAL: Final = ("image_url", "product_url", "metadata")
_MONEY: Final = ("subtotal_value", "tax", "shipping")
_DISCOUNTS: Final = ("total_discounts", "discounts")

# Event -> (required properties, optional properties); "metadata" is allowed
# everywhere. products lines are checked apart.
RECOMMENDED: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "ecommerce.product_viewed": (
        (*_LINE_REQUIRED, "currency", "source"),
        ("image_url", "product_url", "type"),
    ),
    "ecommerce.cart_updated": (
        ("cart_id", "currency", "products", "source"),
        ("action", "total_value", *_MONEY),
    ),
    "ecommerce.checkout_started": (
        ("checkout_id", "total_value", "currency", "products", "source"),
        ("cart_id", *_MONEY),
    ),
    "ecommerce.order_placed": (
        ("order_id", "total_value", "currency", "products", "source"),
        ("cart_id", *_MONEY, *_DISCOUNTS),
    ),
    "ecommerce.order_cancelled": (
        ("order_id", "total_value", "currency", "cancel_reason", "products", "source"),
        (*_MONEY, *_DISCOUNTS),
    ),
    "ecommerce.order_refunded": (
        ("order_id", "total_value", "currency", "products", "source"),
        _DISCOUNTS,
    ),
}
"""Braze's recommended event names, with their required and optional properties."""

_STRINGS: Final = frozenset(
    {
        *("product_id", "product_name", "variant_id", "image_url", "product_url"),
        *("cart_id", "checkout_id", "order_id", "cancel_reason", "source"),
    }
)
_AMOUNTS: Final = frozenset({"price", "total_value", "total_discounts", *_MONEY})


def _type_error(where: str, wanted: str) -> str:
    return f"unexpected_data_type: {where} must be {wanted}"


def _string(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        return _type_error(where, "a string")
    if not value.strip() or len(value) > _MAX:
        return f"invalid_value: {where} must be 1 to {_MAX} characters, not blank"
    return None


def _amount(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _type_error(where, "a number")
    if not math.isfinite(value) or value < 0:
        return f"invalid_value: {where} must be a number >= 0"
    return None


def _quantity(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return _type_error(where, "an integer")
    return None if value >= 1 else f"invalid_value: {where} must be at least 1"


def _currency(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        return _type_error(where, "a string")
    # Braze: an ISO 4217 code (the SDKs upper-case it; the API takes it as sent).
    if re.fullmatch(r"[A-Z]{3}", value) is None:
        return f"invalid_value: {where} must be an ISO 4217 currency code"
    return None


def _action(value: Any, where: str) -> str | None:
    if value in ("add", "remove", "replace"):
        return None
    return f"invalid_value: {where} must be add, remove or replace"


def _kinds(value: Any, where: str) -> str | None:
    if isinstance(value, list) and all(kind in ("price_drop", "back_in_stock") for kind in value):
        return None
    return _type_error(where, "an array of price_drop, back_in_stock")


def _discounts(value: Any, where: str) -> str | None:
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return None
    return _type_error(where, "an array of objects")


def _value_problem(name: str, value: Any, where: str) -> str | None:
    """Judge one property by its name; None when Braze takes it."""
    judge = _VALUE_JUDGES.get(name)
    return None if judge is None else judge(value, where)


def _metadata_problem(value: Any, where: str) -> str | None:
    if not isinstance(value, dict):
        return _type_error(where, "an object")
    for key in value:
        if not key or len(key) > _MAX or key.startswith("$"):
            return f"invalid_value: {where} key {key!r} must be 1 to {_MAX} characters, no '$'"
    return None


def _line_problem(line: Any, where: str, *, quantity: bool) -> str | None:
    if not isinstance(line, dict):
        return _type_error(where, "an object")
    required = (*_LINE_REQUIRED, "quantity") if quantity else _LINE_REQUIRED
    for name in required:
        if name not in line:
            return f"missing_property: {where}.{name}"
    for name, value in line.items():
        if name not in required and name not in _LINE_OPTIONAL:
            return f"extra_property: {where}.{name}"
        problem = _value_problem(name, value, f"{where}.{name}")
        if problem is not None:
            return problem
    return None


def recommended_problem(event: dict[str, Any]) -> str | None:
    """Judge a valid event object that names a recommended event.

    Args:
        event: an event object that passed Braze's ordinary event rules.

    Returns:
        Braze's reason for dropping it (``missing_property: properties.cart_id``),
        or None when it is not a recommended event or is valid.
    """
    name = event.get("name")
    if name not in RECOMMENDED:
        return None  # any other spelling is an ordinary custom event
    properties = event.get("properties")
    if not isinstance(properties, dict):
        return "missing_property: properties"
    required, optional = RECOMMENDED[name]
    for key in required:
        if key not in properties:
            return f"missing_property: properties.{key}"
    for key, value in properties.items():
        if key not in required and key not in optional and key != "metadata":
            return f"extra_property: properties.{key}"
        if key == "products":
            problem = _products_problem(value)
        else:
            problem = _value_problem(key, value, f"properties.{key}")
        if problem is not None:
            return problem
    # Braze: a cart replaced whole (no action, or "replace") states its total.
    if (
        name == "ecommerce.cart_updated"
        and properties.get("action", "replace") == "replace"
        and "total_value" not in properties
    ):
        return "missing_property: properties.total_value"
    if len(json.dumps(properties).encode()) > _MAX_PROPERTIES:
        return "invalid_value: properties are larger than 100 KB"
    return None


def _products_problem(products: Any) -> str | None:
    if not isinstance(products, list):
        return _type_error("properties.products", "an array")
    if not products:
        return "invalid_value: properties.products must hold at least one product"
    for index, line in enumerate(products):
        problem = _line_problem(line, f"properties.products[{index}]", quantity=True)
        if problem is not None:
            return problem
    return None


_VALUE_JUDGES: Final[dict[str, Callable[[Any, str], str | None]]] = {
    **dict.fromkeys(_STRINGS, _string),
    **dict.fromkeys(_AMOUNTS, _amount),
    "quantity": _quantity,
    "currency": _currency,
    "metadata": _metadata_problem,
    "action": _action,
    "type": _kinds,
    "discounts": _discounts,
}
