"""Segment's e-commerce spec v2 events -> Braze's eCommerce recommended events.

Seven Segment events map onto Braze's six recommended events, field by field as
docs/mapping.md ("eCommerce") says. Every Segment property without a place in
Braze's schema goes into ``metadata`` (the event's, or the product line's), and
the result is checked against Braze's schema before anything is sent: a message
that cannot make a valid event comes back with its problems, each at the JSON
path of the Segment field, so the caller can send the plain custom event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from segment_braze._translate.ecommerce_schema import (
    CART_UPDATED,
    CHECKOUT_STARTED,
    ORDER_CANCELLED,
    ORDER_PLACED,
    ORDER_REFUNDED,
    PRODUCT_VIEWED,
    schema_problems,
)
from segment_braze._translate.iso import currency_code
from segment_braze._translate.native import json_form
from segment_braze._translate.products import to_number
from segment_braze._translate.segment import Warnings, child_path, is_mapping
from segment_braze._translate.values import MAX_STRING, clean_properties

__all__ = ["SEGMENT_EVENTS", "Recommended", "recommended_event"]

SEGMENT_EVENTS: Final = {
    "Product Viewed": PRODUCT_VIEWED,
    "Product Added": CART_UPDATED,
    "Product Removed": CART_UPDATED,
    "Checkout Started": CHECKOUT_STARTED,
    "Order Completed": ORDER_PLACED,
    "Order Refunded": ORDER_REFUNDED,
    "Order Cancelled": ORDER_CANCELLED,
}
"""Segment event name (matched exactly) -> Braze recommended event."""

_ACTIONS: Final = {"Product Added": "add", "Product Removed": "remove"}
_EVENT_RESERVED: Final = frozenset({"time", "event_name"})
# Segment's product fields: on Product Added/Removed they describe the one line.
_PRODUCT_FIELDS: Final = frozenset(
    {
        *("product_id", "id", "sku", "category", "name", "brand", "variant"),
        *("price", "quantity", "coupon", "position", "url", "image_url"),
    }
)
# Segment -> Braze order amounts; the first Segment field present decides.
_TOTAL: Final = ("total", "revenue", "value")
_AMOUNTS: Final = (("subtotal_value", "subtotal"), ("tax", "tax"), ("shipping", "shipping"))
# A tuple, not a set: a value drawn from JSON may be a list, which cannot be hashed.
_TYPE_NAMES: Final = ("price_drop", "back_in_stock")
_DEFAULT_CURRENCY: Final = "USD"


@attrs.frozen(kw_only=True)
class Recommended:
    """A recommended event built from a Segment message, or why it cannot be.

    Attributes:
        name: the Braze event (``ecommerce.cart_updated``, ...).
        properties: its properties, valid for Braze's schema when ``problems``
            is empty.
        warnings: fields left out on the way (a reserved metadata key, an
            over-long optional URL); meaningful only when the event is sent.
        problems: ``(json_path, text)`` for each field that keeps the event from
            being valid: the path names the Segment field, the text the Braze one.
    """

    name: str
    properties: Mapping[str, Any] = attrs.field(hash=False)
    warnings: tuple[tuple[str, str], ...] = ()
    problems: tuple[tuple[str, str], ...] = ()


def _present(source: Mapping[str, Any], key: str) -> bool:
    value = source.get(key)
    return value is not None and value != ""


def _first(source: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if _present(source, key)), None)


def _id(value: Any) -> Any:
    # Segment allows numeric ids; Braze's are strings: the exact decimal.
    value = json_form(value)  # a UUID, an Enum member: as analytics-python sends it
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _amount(value: Any) -> Any:
    number = to_number(value)
    return value if number is None else number


def _quantity(value: Any) -> Any:
    number = to_number(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return value if number is None else number


def _usable_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_STRING


class _Builder:
    """Collects one event's properties, where each came from, and what was used."""

    def __init__(self, source: Mapping[str, Any], path: str, prefix: str = "") -> None:
        self.source = source
        self.path = path
        self.prefix = prefix
        self.out: dict[str, Any] = {}
        self.origins: dict[str, str] = {}
        self.used: set[str] = set()
        self.warnings: Warnings = []

    def take(self, target: str, keys: tuple[str, ...], convert: Callable[[Any], Any]) -> None:
        """Set ``target`` from the first of ``keys`` present (else leave it out)."""
        key = _first(self.source, keys)
        self.origins[self.prefix + target] = child_path(self.path, key or keys[0])
        if key is not None:
            self.used.add(key)
            self.out[target] = convert(self.source[key])

    def optional_text(self, target: str, key: str) -> None:
        """An optional string Braze would refuse is left out with a warning, not fatal."""
        if not _present(self.source, key):
            return
        self.used.add(key)
        value = _id(self.source[key])
        if _usable_text(value):
            self.out[target] = value
        else:
            self.warnings.append(
                (
                    child_path(self.path, key),
                    f"{target} must be a string of 1 to {MAX_STRING} characters; left out",
                )
            )

    def metadata(self, own: Mapping[str, Any]) -> None:
        """Everything not used goes into ``metadata``; a ``metadata`` object is merged in."""
        rest = {
            key: value for key, value in own.items() if key not in self.used and key != "metadata"
        }
        cleaned = clean_properties(rest, self.path, _EVENT_RESERVED, self.warnings)
        explicit = own.get("metadata")
        if is_mapping(explicit):
            path = child_path(self.path, "metadata")
            cleaned.update(clean_properties(explicit, path, _EVENT_RESERVED, self.warnings))
        elif explicit is not None:
            cleaned.update(
                clean_properties({"metadata": explicit}, self.path, _EVENT_RESERVED, self.warnings)
            )
        if cleaned:
            self.out["metadata"] = cleaned


def _line(builder: _Builder, *, quantity: bool) -> None:
    """The product line's fields: ``product_id``, ``product_name``, ``variant_id``, ..."""
    builder.take("product_id", ("product_id", "id", "sku"), _id)
    # Braze recognises metadata.sku: a sku stays in metadata even when it is the id.
    builder.used.discard("sku")
    builder.take("product_name", ("name",), lambda value: value)
    variant = _first(builder.source, ("variant", "sku"))
    if variant is None and "product_id" in builder.out:
        # A product without variants is its own single variant.
        builder.out["variant_id"] = builder.out["product_id"]
        builder.origins[builder.prefix + "variant_id"] = builder.origins[
            builder.prefix + "product_id"
        ]
    else:
        builder.take("variant_id", ("variant", "sku"), _id)
        builder.used.discard("sku")
    if quantity:
        builder.take("quantity", ("quantity",), _quantity)
        # As for purchases: a line without a quantity is one unit.
        builder.out.setdefault("quantity", 1)
    builder.take("price", ("price",), _amount)
    builder.optional_text("image_url", "image_url")
    builder.optional_text("product_url", "url")


def _product(
    product: Mapping[str, Any], path: str, prefix: str
) -> tuple[dict[str, Any], dict[str, str], Warnings]:
    builder = _Builder(product, path, prefix)
    _line(builder, quantity=True)
    builder.metadata(product)
    return builder.out, builder.origins, builder.warnings


def _products(event: _Builder, products: Any) -> None:
    """``products`` from Segment's ``products`` list (each line checked later)."""
    path = child_path(event.path, "products")
    event.origins["products"] = path
    event.used.add("products")
    if not isinstance(products, list):
        if products is not None:
            event.out["products"] = products
        return
    lines: list[Any] = []
    for index, product in enumerate(products):
        prefix, item_path = f"products[{index}]", f"{path}[{index}]"
        event.origins[prefix] = item_path
        if not is_mapping(product):
            lines.append(product)
            continue
        line, origins, warnings = _product(product, item_path, prefix + ".")
        lines.append(line)
        event.origins.update(origins)
        event.warnings.extend(warnings)
    event.out["products"] = lines


def _cart_line(event: _Builder) -> None:
    """Product Added/Removed: the one line from the top-level product fields."""
    listed = event.source.get("products")
    if isinstance(listed, list) and listed:
        _products(event, listed)  # a non-spec products list, used as sent
        return
    fields = {key: value for key, value in event.source.items() if key in _PRODUCT_FIELDS}
    line, origins, warnings = _product(fields, event.path, "products[0].")
    event.used.update(fields)
    event.origins.update(origins)
    event.origins["products"] = event.path
    event.warnings.extend(warnings)
    event.out["products"] = [line]


def _discounts(event: _Builder) -> None:
    value = event.source.get("discounts")
    if not isinstance(value, list) or not value:
        return
    # Only a list already in Braze's shape; anything else stays in metadata.
    # Cleaned like any property first: no NaN, $ keys or over-long strings inside.
    warnings: Warnings = []
    value = clean_properties({"discounts": value}, event.path, frozenset(), warnings).get(
        "discounts"
    )
    if isinstance(value, list) and value and all(_is_discount(item) for item in value):
        event.out["discounts"] = value
        event.used.add("discounts")
        event.warnings.extend(warnings)


def _is_discount(item: Any) -> bool:
    if not is_mapping(item):
        return False
    amount = json_form(item.get("amount"))
    return (
        isinstance(item.get("code"), str)
        and isinstance(amount, int | float)
        and not isinstance(amount, bool)
        and amount >= 0
    )


def _fields(event: _Builder, name: str, segment_event: str) -> None:
    """The event's own fields, per Braze event."""
    if name == PRODUCT_VIEWED:
        _line(event, quantity=False)
        kinds = event.source.get("type")
        if isinstance(kinds, list) and kinds and all(kind in _TYPE_NAMES for kind in kinds):
            event.out["type"] = kinds
            event.used.add("type")
        return
    if name == CART_UPDATED:
        event.take("cart_id", ("cart_id",), _id)
        event.out["action"] = _ACTIONS[segment_event]
        _cart_line(event)
        # The cart's total only: value/revenue describe the product, not the cart.
        event.take("total_value", ("total",), _amount)
    elif name == CHECKOUT_STARTED:
        # Segment's spec gives Checkout Started only an order_id.
        event.take("checkout_id", ("checkout_id", "order_id"), _id)
        event.optional_text("cart_id", "cart_id")
        event.take("total_value", _TOTAL, _amount)
    else:
        event.take("order_id", ("order_id",), _id)
        if name == ORDER_PLACED:
            event.optional_text("cart_id", "cart_id")
        if name == ORDER_CANCELLED:
            event.take("cancel_reason", ("cancel_reason", "reason"), lambda value: value)
        event.take("total_value", _TOTAL, _amount)
    if name != ORDER_REFUNDED:
        for target, key in _AMOUNTS:
            event.take(target, (key,), _amount)
    if name in (ORDER_PLACED, ORDER_CANCELLED, ORDER_REFUNDED):
        event.take("total_discounts", ("discount",), _amount)
        _discounts(event)
    if name != CART_UPDATED:
        _products(event, event.source.get("products"))


def _origin(origins: Mapping[str, str], braze_path: str) -> str:
    """The Segment path a Braze property came from (or its nearest parent's)."""
    path = braze_path
    while path:
        if path in origins:
            return origins[path]
        path = path.rpartition(".")[0] if "." in path else path.rpartition("[")[0]
    return "$.properties"


def recommended_event(
    segment_event: str, properties: Mapping[str, Any], *, source: str
) -> Recommended:
    """Build the recommended event for a Segment e-commerce event, and check it.

    Args:
        segment_event: one of :data:`SEGMENT_EVENTS`.
        properties: the track's properties.
        source: Braze's ``source`` when ``properties.source`` is not a string.

    Returns:
        The event, with ``problems`` listing what keeps it from being valid.
    """
    name = SEGMENT_EVENTS[segment_event]
    event = _Builder(properties, "$.properties")
    _fields(event, name, segment_event)
    raw = properties.get("currency")
    event.origins["currency"] = "$.properties.currency"
    event.used.add("currency")
    if raw is None or raw == "":
        event.out["currency"] = _DEFAULT_CURRENCY  # Segment's spec: USD
    else:
        raw = json_form(raw)  # an Enum member: its value
        code = currency_code(raw) if isinstance(raw, str) else None
        event.out["currency"] = raw if code is None else code  # invalid: reported below
    given = properties.get("source")
    event.origins["source"] = "$.properties.source"
    if isinstance(given, str) and given.strip():
        event.used.add("source")
        event.out["source"] = given
    else:
        event.out["source"] = source
    event.metadata(properties)
    problems = tuple(
        (_origin(event.origins, path), f"{path or 'properties'} {problem} ({name})")
        for path, problem in schema_problems(name, event.out)
    )
    return Recommended(
        name=name, properties=event.out, warnings=tuple(event.warnings), problems=problems
    )
