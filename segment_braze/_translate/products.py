"""Segment products and revenue -> Braze purchases."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from segment_braze._settings import Settings
from segment_braze._translate.braze import Identifier, Purchase
from segment_braze._translate.iso import currency_code
from segment_braze._translate.native import json_form
from segment_braze._translate.segment import Warnings, child_path, is_mapping, is_text, shown
from segment_braze._translate.values import MAX_KEY, clean_properties, within_size

__all__ = ["order_purchases", "revenue_purchase", "to_number", "track_purchases"]

# Braze: purchase properties may not use these keys.
_PURCHASE_RESERVED: Final = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)
# Order-level keys that describe the order as a whole, not a purchase property.
_ORDER_KEYS: Final = frozenset({"products", "revenue", "currency"})
# Braze: quantity is an integer from 1 to 100.
_MAX_QUANTITY: Final = 100
# Braze: a /users/track request holds at most 75 objects, and a message is never
# split across requests: an order cannot need more purchases than that.
_MAX_PURCHASES: Final = 75
# Braze: purchase properties at most 50 KB.
_MAX_PURCHASE_PROPERTIES: Final = 50 * 1024
_DEFAULT_CURRENCY: Final = "USD"
_DIGITS: Final = re.compile(r"[0-9]+\Z")
# Segment's e-commerce spec: money going back, never a Braze purchase, however the
# event is spelled (any case, "_" or "-" for spaces, the US "canceled").
_NEVER_REVENUE: Final = frozenset({"order refunded", "order cancelled", "order canceled"})
_SEPARATORS: Final = str.maketrans("_-", "  ")
EVERY_PRODUCT_INVALID: Final = "every product is invalid for a Braze purchase"


def _spelled(event: str) -> str:
    """An event name as spellings compare: lower case, ``_`` and ``-`` as single spaces."""
    return " ".join(event.translate(_SEPARATORS).casefold().split())


def _near_purchase_event(event: str, names: frozenset[str], warnings: Warnings) -> None:
    """Note an event with products that misses a purchase event only by its spelling."""
    spelling = _spelled(event)
    match = next((name for name in sorted(names) if _spelled(name) == spelling), None)
    if match is not None:
        warnings.append(
            (
                "$.event",
                f"{event!r} is not the purchase event {match!r} (names match exactly):"
                " sent as a custom event, no purchases; add it to purchase_events",
            )
        )


def to_number(value: object) -> float | int | None:
    """Read an amount: a finite number, or a numeric string (Segment allows both)."""
    if type(value) is float:  # hot path: what a JSON parser gives for a price
        return value if math.isfinite(value) else None
    if type(value) is int and -(1 << 53) <= value <= 1 << 53:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        # Beyond 2**53 a price is not a price; beyond a float's range not writable.
        try:
            return value if math.isfinite(float(value)) else None
        except OverflowError:
            return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value else number
    converted = json_form(value)  # a Decimal: a float, as analytics-python sends it
    return None if converted is value else to_number(converted)


def _quantity(value: object) -> int | None:
    if type(value) is int:  # hot path: what a JSON parser gives
        return value if value >= 1 else None
    if value is None:
        return 1
    if isinstance(value, bool):
        return None
    value = json_form(value)  # a Decimal, as analytics-python sends it
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        value = int(value)
    if isinstance(value, int) and value >= 1:
        return value
    return None


def _currency(value: object, path: str, warnings: Warnings) -> str | None:
    if type(value) is not str:
        value = json_form(value)  # an Enum member: its value
    code = currency_code(value) if isinstance(value, str) else None
    if code is None:
        warnings.append((path, f"currency {shown(value)} is not an ISO-4217 code"))
    return code


def _product_id(product: Mapping[str, Any]) -> tuple[str, str] | None:
    for key in ("product_id", "id", "sku"):
        value = product.get(key)
        if type(value) is not str and value is not None:
            value = json_form(value)  # a UUID, an Enum member: as analytics-python sends it
        if isinstance(value, int) and not isinstance(value, bool):
            # An id of over 255 digits is refused below; never write a longer one.
            return key, str(value) if value.bit_length() <= 1000 else "9" * (MAX_KEY + 1)
        if isinstance(value, str) and value and is_text(value):
            return key, value
    return None


def order_purchases(
    properties: Mapping[str, Any],
    products: Sequence[Any],
    *,
    identifier: Identifier,
    time: str,
    app_id: str | None,
    update_existing_only: bool,
    warnings: Warnings,
) -> tuple[Purchase, ...]:
    """Turn a track's ``properties.products`` into Braze purchases.

    One purchase per product line; a quantity over Braze's 100 is split into
    several purchases that add up to it. Invalid products are dropped with a
    warning each.
    """
    # Order-level properties are cleaned once, so a bad one is reported once, at
    # its own path.
    order = clean_properties(
        {key: value for key, value in properties.items() if key not in _ORDER_KEYS},
        "$.properties",
        _PURCHASE_RESERVED,
        warnings,
        max_bytes=_MAX_PURCHASE_PROPERTIES,
    )
    order_currency = properties.get("currency")
    purchases: list[Purchase] = []
    for index, product in enumerate(products):
        path = f"$.properties.products[{index}]"  # child_path of an int index
        if not is_mapping(product):
            warnings.append((path, "product must be an object; dropped"))
            continue
        found = _product_id(product)
        if found is None:
            warnings.append((path, "product has no product_id, id or sku; dropped"))
            continue
        id_key, product_id = found
        if len(product_id) > MAX_KEY:
            warnings.append(
                (
                    child_path(path, id_key),
                    f"product_id over {MAX_KEY} characters; product dropped",
                )
            )
            continue
        price = to_number(product.get("price"))
        if price is None:
            warnings.append(
                (
                    child_path(path, "price"),
                    f"price {shown(product.get('price'))} is not a number; product dropped",
                )
            )
            continue
        quantity = _quantity(product.get("quantity"))
        if quantity is None:
            warnings.append(
                (
                    child_path(path, "quantity"),
                    f"quantity {shown(product.get('quantity'))} is not a positive integer; "
                    "product dropped",
                )
            )
            continue
        if product.get("currency") is not None:
            currency = _currency(product["currency"], child_path(path, "currency"), warnings)
        elif order_currency is not None:
            currency = _currency(order_currency, "$.properties.currency", warnings)
        else:
            currency = _DEFAULT_CURRENCY
        if currency is None:
            warnings.append((path, "product dropped for its currency"))
            continue
        needed = -(-quantity // _MAX_QUANTITY)  # purchases of at most 100 each
        if len(purchases) + needed > _MAX_PURCHASES:
            warnings.append(
                (
                    child_path(path, "quantity"),
                    f"quantity {quantity} would take {needed} purchases of at most"
                    f" {_MAX_QUANTITY}, past the {_MAX_PURCHASES} objects a request holds;"
                    " product dropped",
                )
            )
            continue
        # The keys read into the purchase itself are consumed, not dropped.
        consumed = {id_key, "price", "quantity", "currency"}
        own = clean_properties(
            {key: value for key, value in product.items() if key not in consumed},
            path,
            _PURCHASE_RESERVED,
            warnings,
            max_bytes=_MAX_PURCHASE_PROPERTIES,
        )
        purchase_properties = within_size(
            {**order, **own}, path, warnings, max_bytes=_MAX_PURCHASE_PROPERTIES
        )
        # Braze: quantity 1..100, and counts quantity X as X purchases; split
        # larger quantities so the total is kept.
        while quantity > 0:
            portion = min(quantity, _MAX_QUANTITY)
            quantity -= portion
            purchases.append(
                Purchase(
                    identifier=identifier,
                    product_id=product_id,
                    currency=currency,
                    price=price,
                    quantity=portion,
                    time=time,
                    app_id=app_id,
                    properties=purchase_properties,
                    update_existing_only=update_existing_only,
                )
            )
    return tuple(purchases)


def revenue_purchase(
    event: str,
    properties: Mapping[str, Any],
    *,
    identifier: Identifier,
    time: str,
    app_id: str | None,
    update_existing_only: bool,
    warnings: Warnings,
) -> Purchase | None:
    """Turn a track with a numeric ``revenue`` and no products into one purchase.

    Returns ``None`` when ``revenue`` is absent or not a number, or the event name
    cannot be a product id; the track then stays a custom event.
    """
    revenue = json_form(properties.get("revenue"))  # a Decimal: a float
    if not isinstance(revenue, (int, float)) or isinstance(revenue, bool):
        return None
    if to_number(revenue) is None or len(event) > MAX_KEY:
        return None
    currency = _DEFAULT_CURRENCY
    if properties.get("currency") is not None:
        found = _currency(properties["currency"], "$.properties.currency", warnings)
        if found is None:
            warnings.append(("$.properties.revenue", "revenue not logged as a purchase"))
            return None
        currency = found
    rest = {key: value for key, value in properties.items() if key not in _ORDER_KEYS}
    return Purchase(
        identifier=identifier,
        product_id=event,
        currency=currency,
        price=revenue,
        quantity=1,
        time=time,
        app_id=app_id,
        properties=clean_properties(
            rest,
            "$.properties",
            _PURCHASE_RESERVED,
            warnings,
            max_bytes=_MAX_PURCHASE_PROPERTIES,
        ),
        update_existing_only=update_existing_only,
    )


def track_purchases(
    event: str,
    properties: Mapping[str, Any],
    settings: Settings,
    *,
    identifier: Identifier,
    time: str,
    app_id: str | None,
    update_existing_only: bool,
    warnings: Warnings,
) -> tuple[Purchase, ...] | str:
    """The purchases a track logs, per ``purchase_events`` and revenue.

    Returns:
        The purchases (none when the track is no purchase), or the drop reason
        when every product of an order is invalid.
    """
    products = properties.get("products")
    if (
        isinstance(products, list)
        and products
        and (settings.purchase_events is None or event in settings.purchase_events)
    ):
        # Segment's e-commerce spec: only an order (Order Completed) is revenue;
        # a refund or a checkout keeps its products as event properties.
        purchases = order_purchases(
            properties,
            products,
            identifier=identifier,
            time=time,
            app_id=app_id,
            update_existing_only=update_existing_only,
            warnings=warnings,
        )
        return purchases or EVERY_PRODUCT_INVALID
    # Money going back (a refund, a cancellation) is never logged as revenue.
    if (
        settings.log_purchase_when_revenue_present
        and "revenue" in properties
        and _spelled(event) not in _NEVER_REVENUE
    ):
        purchase = revenue_purchase(
            event,
            properties,
            identifier=identifier,
            time=time,
            app_id=app_id,
            update_existing_only=update_existing_only,
            warnings=warnings,
        )
        if purchase is not None:
            return (purchase,)
    if isinstance(products, list) and products and settings.purchase_events is not None:
        _near_purchase_event(event, settings.purchase_events, warnings)
    return ()
