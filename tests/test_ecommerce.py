"""Segment's e-commerce spec v2 -> Braze's eCommerce recommended events (issue 14).

Expectations come from docs/mapping.md ("eCommerce") and Braze's schema: each
Segment event maps field by field, and a message that cannot make a valid event
is sent as the plain custom event (or, in "both" mode, the purchases), with a
warning naming each missing or invalid field.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from helpers import BRAZE_TIME, USER, track, track_body

from segment_braze import Settings, translate
from segment_braze._translate.datapoints import event_data_points

RECOMMENDED = Settings(ecommerce="recommended")
BOTH = Settings(ecommerce="both")

SHIRT = {
    "product_id": "p-1",
    "sku": "SKU-1",
    "name": "Shirt",
    "variant": "blue-m",
    "price": 19.99,
    "quantity": 2,
    "category": "Tops",
    "brand": "Acme",
    "url": "https://shop.example/p-1",
    "image_url": "https://shop.example/p-1.png",
}
SHIRT_LINE = {
    "product_id": "p-1",
    "product_name": "Shirt",
    "variant_id": "blue-m",
    "quantity": 2,
    "price": 19.99,
    "image_url": "https://shop.example/p-1.png",
    "product_url": "https://shop.example/p-1",
    "metadata": {"sku": "SKU-1", "category": "Tops", "brand": "Acme"},
}
HAT = {"product_id": 42, "name": "Hat", "price": "5", "quantity": "1"}
HAT_LINE = {
    "product_id": "42",
    "product_name": "Hat",
    "variant_id": "42",
    "quantity": 1,
    "price": 5,
}

# One valid message per Segment event, and the exact Braze event it becomes.
MAPPINGS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "product-viewed": (
        "Product Viewed",
        {**SHIRT, "currency": "eur", "value": 39.98, "position": 3, "type": ["price_drop"]},
        "ecommerce.product_viewed",
        {
            "product_id": "p-1",
            "product_name": "Shirt",
            "variant_id": "blue-m",
            "price": 19.99,
            "image_url": "https://shop.example/p-1.png",
            "product_url": "https://shop.example/p-1",
            "type": ["price_drop"],
            "currency": "EUR",
            "source": "segment",
            "metadata": {
                "sku": "SKU-1",
                "quantity": 2,
                "category": "Tops",
                "brand": "Acme",
                "value": 39.98,
                "position": 3,
            },
        },
    ),
    "product-added": (
        "Product Added",
        {**SHIRT, "cart_id": "c-1", "coupon": "TEN", "affiliation": "Web Shop"},
        "ecommerce.cart_updated",
        {
            "cart_id": "c-1",
            "action": "add",
            "products": [{**SHIRT_LINE, "metadata": {**SHIRT_LINE["metadata"], "coupon": "TEN"}}],
            "currency": "USD",
            "source": "segment",
            "metadata": {"affiliation": "Web Shop"},
        },
    ),
    "product-removed": (
        "Product Removed",
        {**HAT, "cart_id": 9001, "total": "12.50", "subtotal": 10, "tax": 1.5, "shipping": 1},
        "ecommerce.cart_updated",
        {
            "cart_id": "9001",
            "action": "remove",
            "products": [HAT_LINE],
            "total_value": 12.5,
            "subtotal_value": 10,
            "tax": 1.5,
            "shipping": 1,
            "currency": "USD",
            "source": "segment",
        },
    ),
    "checkout-started": (
        "Checkout Started",
        {
            "order_id": "o-1",
            "cart_id": "c-1",
            "revenue": 45,
            "value": 50,
            "tax": 3,
            "shipping": 2,
            "discount": 5,
            "coupon": "TEN",
            "currency": "USD",
            "products": [SHIRT, HAT],
            "checkout_url": "https://shop.example/checkout",
        },
        "ecommerce.checkout_started",
        {
            "checkout_id": "o-1",
            "cart_id": "c-1",
            "total_value": 45,
            "tax": 3,
            "shipping": 2,
            "products": [SHIRT_LINE, HAT_LINE],
            "currency": "USD",
            "source": "segment",
            "metadata": {
                "value": 50,
                "discount": 5,
                "coupon": "TEN",
                "checkout_url": "https://shop.example/checkout",
            },
        },
    ),
    "order-completed": (
        "Order Completed",
        {
            "checkout_id": "k-1",
            "order_id": "o-1",
            "affiliation": "Web Shop",
            "total": 46,
            "subtotal": 40,
            "revenue": 40,
            "tax": 4,
            "shipping": 2,
            "discount": 5,
            "discounts": [{"code": "TEN", "amount": 5}],
            "coupon": "TEN",
            "currency": "GBP",
            "source": "web",
            "products": [SHIRT],
        },
        "ecommerce.order_placed",
        {
            "order_id": "o-1",
            "total_value": 46,
            "subtotal_value": 40,
            "tax": 4,
            "shipping": 2,
            "total_discounts": 5,
            "discounts": [{"code": "TEN", "amount": 5}],
            "products": [SHIRT_LINE],
            "currency": "GBP",
            "source": "web",
            "metadata": {
                "checkout_id": "k-1",
                "affiliation": "Web Shop",
                "revenue": 40,
                "coupon": "TEN",
            },
        },
    ),
    "order-refunded": (
        "Order Refunded",
        {
            "order_id": "o-1",
            "total": 19.99,
            "tax": 1,
            "cart_id": "c-1",
            "discount": 0,
            "products": [SHIRT],
        },
        "ecommerce.order_refunded",
        {
            "order_id": "o-1",
            "total_value": 19.99,
            "total_discounts": 0,
            "products": [SHIRT_LINE],
            "currency": "USD",
            "source": "segment",
            "metadata": {"tax": 1, "cart_id": "c-1"},
        },
    ),
    "order-cancelled": (
        "Order Cancelled",
        {"order_id": "o-1", "value": 5, "reason": "changed mind", "products": [HAT]},
        "ecommerce.order_cancelled",
        {
            "order_id": "o-1",
            "cancel_reason": "changed mind",
            "total_value": 5,
            "products": [HAT_LINE],
            "currency": "USD",
            "source": "segment",
        },
    ),
}


def ecommerce(event: str, properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A track of ``event`` with a deep copy of ``properties``."""
    return track(event=event, properties=copy.deepcopy(properties), **fields)


def the_event(t):
    """The translation's single event."""
    body = track_body(t)
    assert list(body) == ["events"], body
    (event,) = body["events"]
    return event


VALID = {name: (event, properties) for name, (event, properties, _, _) in MAPPINGS.items()}


def without(properties: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``properties`` without ``keys``."""
    return {key: value for key, value in properties.items() if key not in keys}


def product_with(properties: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    """``properties`` with product ``index`` changed (``None`` removes a field)."""
    products = copy.deepcopy(properties["products"])
    products[index] = {k: v for k, v in {**products[index], **fields}.items() if v is not None}
    return {**properties, "products": products}


ADDED, REMOVED = VALID["product-added"][1], VALID["product-removed"][1]
VIEWED, CHECKOUT = VALID["product-viewed"][1], VALID["checkout-started"][1]
ORDER, REFUND = VALID["order-completed"][1], VALID["order-refunded"][1]
CANCEL = VALID["order-cancelled"][1]


class TestMapping:
    """Each Segment e-commerce event becomes its Braze recommended event, field by field."""

    @pytest.mark.parametrize(
        ("event", "properties", "name", "expected"), MAPPINGS.values(), ids=MAPPINGS
    )
    def test_event(self, event, properties, name, expected):
        """The event is named and filled exactly as the mapping table says."""
        t = translate(ecommerce(event, properties), RECOMMENDED)
        assert the_event(t) == {
            "external_id": USER,
            "name": name,
            "time": BRAZE_TIME,
            "properties": expected,
            "_update_existing_only": False,
        }
        assert t.warnings == ()

    @pytest.mark.parametrize(
        ("properties", "field", "value"),
        [
            pytest.param({"product_id": "p", "id": "i"}, "product_id", "p", id="product-id-first"),
            pytest.param({"id": "i", "sku": "s"}, "product_id", "i", id="v1-id-before-sku"),
            pytest.param({"sku": "s"}, "product_id", "s", id="sku-as-id"),
            pytest.param({"product_id": 7}, "product_id", "7", id="numeric-id"),
            pytest.param({"product_id": "p", "variant": "v"}, "variant_id", "v", id="variant"),
            pytest.param({"product_id": "p", "sku": "s"}, "variant_id", "s", id="sku-as-variant"),
            pytest.param({"product_id": "p"}, "variant_id", "p", id="own-variant"),
            pytest.param(
                {"product_id": "p", "variant": 3}, "variant_id", "3", id="numeric-variant"
            ),
            pytest.param({"product_id": "p", "price": "9.5"}, "price", 9.5, id="price-string"),
            pytest.param({"product_id": "p", "price": 0}, "price", 0, id="price-zero"),
            pytest.param({"product_id": "p"}, "quantity", 1, id="quantity-default"),
            pytest.param({"product_id": "p", "quantity": 2.0}, "quantity", 2, id="quantity-float"),
            pytest.param({"product_id": "p", "quantity": "3"}, "quantity", 3, id="quantity-string"),
            pytest.param({"product_id": "p", "quantity": 250}, "quantity", 250, id="never-split"),
        ],
    )
    def test_product_line(self, properties, field, value):
        """Product lines follow the purchase rules' chains and conversions."""
        product = {"name": "N", "price": 1, **properties}
        message = ecommerce("Order Completed", {"order_id": "o", "total": 1, "products": [product]})
        (line,) = the_event(translate(message, RECOMMENDED))["properties"]["products"]
        assert line[field] == value

    @pytest.mark.parametrize(
        ("case", "changes", "field", "value"),
        [
            pytest.param(
                "order-completed",
                {"total": 3, "revenue": 2, "value": 1},
                "total_value",
                3,
                id="total-first",
            ),
            pytest.param(
                "order-completed",
                {"total": None, "revenue": 2, "value": 1},
                "total_value",
                2,
                id="revenue-next",
            ),
            pytest.param(
                "order-completed",
                {"total": None, "revenue": None, "value": "1.5"},
                "total_value",
                1.5,
                id="value-last",
            ),
            pytest.param(
                "product-added", {"total": 9, "value": 7}, "total_value", 9, id="cart-total"
            ),
            pytest.param(
                "checkout-started", {"checkout_id": "k"}, "checkout_id", "k", id="checkout-id"
            ),
            pytest.param(
                "checkout-started", {"order_id": 12}, "checkout_id", "12", id="order-id-as-checkout"
            ),
            pytest.param(
                "order-cancelled",
                {"cancel_reason": "a"},
                "cancel_reason",
                "a",
                id="cancel-reason-first",
            ),
            pytest.param(
                "order-completed",
                {"currency": " eur "},
                "currency",
                "EUR",
                id="currency-normalised",
            ),
            pytest.param(
                "order-completed", {"currency": None}, "currency", "USD", id="currency-absent-usd"
            ),
            pytest.param(
                "order-completed", {"source": "ios"}, "source", "ios", id="source-property"
            ),
            pytest.param("order-completed", {"source": ""}, "source", "segment", id="source-empty"),
            pytest.param("order-completed", {"discount": "2"}, "total_discounts", 2, id="discount"),
        ],
    )
    def test_event_field(self, case, changes, field, value):
        """Event fields take the first Segment field present, converted."""
        event, properties = VALID[case]
        changed = {key: val for key, val in {**properties, **changes}.items() if val is not None}
        assert (
            the_event(translate(ecommerce(event, changed), RECOMMENDED))["properties"][field]
            == value
        )

    def test_cart_total_never_from_value(self):
        """A cart update takes only total: value and revenue describe the product."""
        message = ecommerce("Product Added", {**ADDED, "value": 7, "revenue": 7})
        properties = the_event(translate(message, RECOMMENDED))["properties"]
        assert "total_value" not in properties
        assert properties["metadata"]["value"] == 7

    def test_source_setting(self):
        """Without properties.source, Settings.ecommerce_source names the source."""
        settings = Settings(ecommerce="recommended", ecommerce_source="backend")
        message = ecommerce(*MAPPINGS["order-cancelled"][:2])
        assert the_event(translate(message, settings))["properties"]["source"] == "backend"

    @pytest.mark.parametrize(
        ("discounts", "kept"),
        [
            pytest.param([{"code": "A", "amount": 1, "type": "pct"}], True, id="braze-shape"),
            pytest.param([{"code": "A"}], False, id="no-amount"),
            pytest.param([{"code": "A", "amount": -1}], False, id="negative"),
            pytest.param("A", False, id="not-a-list"),
            pytest.param(["A"], False, id="not-objects"),
        ],
    )
    def test_discounts(self, discounts, kept):
        """Discounts pass only in Braze's shape; otherwise they stay in metadata."""
        message = ecommerce(
            "Order Completed",
            {"order_id": "o", "total": 1, "products": [HAT], "discounts": discounts},
        )
        properties = the_event(translate(message, RECOMMENDED))["properties"]
        assert ("discounts" in properties) is kept
        assert ("discounts" in properties.get("metadata", {})) is not kept

    @pytest.mark.parametrize(
        ("kinds", "kept"),
        [
            pytest.param(["back_in_stock"], True, id="catalog-trigger"),
            pytest.param(["sale"], False, id="unknown"),
            pytest.param("price_drop", False, id="not-a-list"),
        ],
    )
    def test_product_viewed_type(self, kinds, kept):
        """A type passes only as a list of Braze's catalog triggers; otherwise it is metadata."""
        message = ecommerce("Product Viewed", {**HAT, "type": kinds})
        properties = the_event(translate(message, RECOMMENDED))["properties"]
        assert ("type" in properties) is kept

    def test_discounts_cleaned(self):
        """Inside discounts, values Braze refuses are left out with a warning, as anywhere."""
        discounts = [{"code": "A", "amount": 1, "note": "n" * 256, "$x": 1}]
        message = ecommerce(
            "Order Completed",
            {"order_id": "o", "total": 1, "products": [HAT], "discounts": discounts},
        )
        t = translate(message, RECOMMENDED)
        assert the_event(t)["properties"]["discounts"] == [{"code": "A", "amount": 1}]
        assert [path for path, _ in t.warnings] == [
            "$.properties.discounts[0].note",
            '$.properties.discounts[0]["$x"]',
        ]

    def test_lone_surrogate_falls_back(self):
        """A name that cannot be written as UTF-8 keeps the event from being valid."""
        message = ecommerce("Product Viewed", {**HAT, "name": "\ud800"})
        t = translate(message, RECOMMENDED)
        assert the_event(t)["name"] == "Product Viewed"
        assert t.warnings[0][0] == "$.properties.name"

    def test_cart_products_list(self):
        """A cart event with a (non-spec) products list uses it as sent."""
        message = ecommerce("Product Added", {"cart_id": "c", "products": [HAT, HAT], "name": "x"})
        properties = the_event(translate(message, RECOMMENDED))["properties"]
        assert properties["products"] == [HAT_LINE, HAT_LINE]
        assert properties["metadata"] == {"name": "x"}

    def test_metadata(self):
        """properties.metadata joins the metadata; reserved and $ keys are left out, warned."""
        message = ecommerce(
            "Order Cancelled",
            {
                **MAPPINGS["order-cancelled"][1],
                "metadata": {"order_status_url": "https://s/o-1", "$x": 1},
                "time": "now",
                "note": "call back",
            },
        )
        t = translate(message, RECOMMENDED)
        assert the_event(t)["properties"]["metadata"] == {
            "note": "call back",
            "order_status_url": "https://s/o-1",
        }
        assert [path for path, _ in t.warnings] == [
            "$.properties.time",
            '$.properties.metadata["$x"]',
        ]

    @pytest.mark.parametrize("key", ["image_url", "url"])
    def test_unusable_optional_text_left_out(self, key):
        """An over-long optional URL is left out with a warning; the event is still sent."""
        message = ecommerce("Product Viewed", {**HAT, key: "x" * 256})
        t = translate(message, RECOMMENDED)
        assert the_event(t)["name"] == "ecommerce.product_viewed"
        assert [path for path, _ in t.warnings] == [f"$.properties.{key}"]

    def test_unusable_optional_cart_id_left_out(self):
        """On checkout and order events cart_id is optional: a bad one is left out, warned."""
        message = ecommerce(
            "Order Completed", {"order_id": "o", "total": 1, "cart_id": {"a": 1}, "products": [HAT]}
        )
        t = translate(message, RECOMMENDED)
        assert "cart_id" not in the_event(t)["properties"]
        assert [path for path, _ in t.warnings] == ["$.properties.cart_id"]

    @pytest.mark.parametrize("event", ["Cart Viewed", "Product Clicked", "order completed"])
    def test_other_events_unchanged(self, event):
        """Only the seven events map, by exact name; others stay custom events."""
        message = ecommerce(event, {"product_id": "p", "name": "N", "price": 1, "cart_id": "c"})
        assert the_event(translate(message, RECOMMENDED))["name"] == event

    def test_filters_use_segment_names(self):
        """Event filters see Segment's event name, before any mapping."""
        settings = Settings(ecommerce="recommended", events_denylist={"Product Viewed"})
        assert translate(ecommerce("Product Viewed", HAT), settings).dropped == "filtered"


# Each case: (Segment event, properties, the Segment path warned, the Braze field named).
FAILURES = {
    # Product Viewed
    "viewed-no-id": (
        "Product Viewed",
        without(VIEWED, "product_id", "sku"),
        "$.properties.product_id",
        "product_id",
    ),
    "viewed-no-name": (
        "Product Viewed",
        without(VIEWED, "name"),
        "$.properties.name",
        "product_name",
    ),
    "viewed-no-price": ("Product Viewed", without(VIEWED, "price"), "$.properties.price", "price"),
    "viewed-negative-price": (
        "Product Viewed",
        {**VIEWED, "price": -1},
        "$.properties.price",
        "price",
    ),
    "viewed-price-text": (
        "Product Viewed",
        {**VIEWED, "price": "free"},
        "$.properties.price",
        "price",
    ),
    "viewed-price-bool": (
        "Product Viewed",
        {**VIEWED, "price": True},
        "$.properties.price",
        "price",
    ),
    "viewed-currency": (
        "Product Viewed",
        {**VIEWED, "currency": "EURO"},
        "$.properties.currency",
        "currency",
    ),
    "viewed-currency-type": (
        "Product Viewed",
        {**VIEWED, "currency": 978},
        "$.properties.currency",
        "currency",
    ),
    "viewed-blank-name": (
        "Product Viewed",
        {**VIEWED, "name": "  "},
        "$.properties.name",
        "product_name",
    ),
    "viewed-long-id": (
        "Product Viewed",
        {**VIEWED, "product_id": "p" * 256},
        "$.properties.product_id",
        "product_id",
    ),
    "viewed-id-float": (
        "Product Viewed",
        {**VIEWED, "product_id": 1.5},
        "$.properties.product_id",
        "product_id",
    ),
    "viewed-long-source": (
        "Product Viewed",
        {**VIEWED, "source": "s" * 256},
        "$.properties.source",
        "source",
    ),
    # Product Added / Removed
    "added-no-cart": (
        "Product Added",
        without(ADDED, "cart_id"),
        "$.properties.cart_id",
        "cart_id",
    ),
    "added-no-name": (
        "Product Added",
        without(ADDED, "name"),
        "$.properties.name",
        "products[0].product_name",
    ),
    "added-no-price": (
        "Product Added",
        without(ADDED, "price"),
        "$.properties.price",
        "products[0].price",
    ),
    "added-quantity-half": (
        "Product Added",
        {**ADDED, "quantity": 1.5},
        "$.properties.quantity",
        "products[0].quantity",
    ),
    "added-quantity-zero": (
        "Product Added",
        {**ADDED, "quantity": 0},
        "$.properties.quantity",
        "products[0].quantity",
    ),
    "added-no-product": (
        "Product Added",
        without(ADDED, "product_id", "sku", "variant"),
        "$.properties.product_id",
        "products[0].product_id",
    ),
    "removed-negative-total": (
        "Product Removed",
        {**REMOVED, "total": -1},
        "$.properties.total",
        "total_value",
    ),
    "removed-negative-tax": (
        "Product Removed",
        {**REMOVED, "tax": -0.5},
        "$.properties.tax",
        "tax",
    ),
    "removed-shipping-text": (
        "Product Removed",
        {**REMOVED, "shipping": "n/a"},
        "$.properties.shipping",
        "shipping",
    ),
    "removed-negative-subtotal": (
        "Product Removed",
        {**REMOVED, "subtotal": -3},
        "$.properties.subtotal",
        "subtotal_value",
    ),
    "removed-cart-blank": (
        "Product Removed",
        {**REMOVED, "cart_id": " "},
        "$.properties.cart_id",
        "cart_id",
    ),
    # Checkout Started
    "checkout-no-id": (
        "Checkout Started",
        without(CHECKOUT, "order_id"),
        "$.properties.checkout_id",
        "checkout_id",
    ),
    "checkout-no-total": (
        "Checkout Started",
        without(CHECKOUT, "revenue", "value"),
        "$.properties.total",
        "total_value",
    ),
    "checkout-no-products": (
        "Checkout Started",
        without(CHECKOUT, "products"),
        "$.properties.products",
        "products",
    ),
    "checkout-empty-products": (
        "Checkout Started",
        {**CHECKOUT, "products": []},
        "$.properties.products",
        "products",
    ),
    "checkout-products-object": (
        "Checkout Started",
        {**CHECKOUT, "products": {"a": HAT}},
        "$.properties.products",
        "products",
    ),
    "checkout-product-not-object": (
        "Checkout Started",
        {**CHECKOUT, "products": [HAT, "hat"]},
        "$.properties.products[1]",
        "products[1]",
    ),
    "checkout-product-no-name": (
        "Checkout Started",
        product_with(CHECKOUT, 1, name=None),
        "$.properties.products[1].name",
        "products[1].product_name",
    ),
    "checkout-product-no-price": (
        "Checkout Started",
        product_with(CHECKOUT, 0, price=None),
        "$.properties.products[0].price",
        "products[0].price",
    ),
    "checkout-product-no-id": (
        "Checkout Started",
        product_with(CHECKOUT, 1, product_id=None),
        "$.properties.products[1].product_id",
        "products[1].product_id",
    ),
    "checkout-negative-shipping": (
        "Checkout Started",
        {**CHECKOUT, "shipping": -2},
        "$.properties.shipping",
        "shipping",
    ),
    # Order Completed
    "order-no-id": (
        "Order Completed",
        without(ORDER, "order_id"),
        "$.properties.order_id",
        "order_id",
    ),
    "order-no-total": (
        "Order Completed",
        without(ORDER, "total", "revenue"),
        "$.properties.total",
        "total_value",
    ),
    "order-negative-total": (
        "Order Completed",
        {**ORDER, "total": -46},
        "$.properties.total",
        "total_value",
    ),
    "order-revenue-text": (
        "Order Completed",
        without({**ORDER, "revenue": "lots"}, "total"),
        "$.properties.revenue",
        "total_value",
    ),
    "order-negative-discount": (
        "Order Completed",
        {**ORDER, "discount": -5},
        "$.properties.discount",
        "total_discounts",
    ),
    "order-no-products": (
        "Order Completed",
        without(ORDER, "products"),
        "$.properties.products",
        "products",
    ),
    "order-product-quantity": (
        "Order Completed",
        product_with(ORDER, 0, quantity="two"),
        "$.properties.products[0].quantity",
        "products[0].quantity",
    ),
    "order-product-negative-price": (
        "Order Completed",
        product_with(ORDER, 0, price=-1),
        "$.properties.products[0].price",
        "products[0].price",
    ),
    "order-currency": (
        "Order Completed",
        {**ORDER, "currency": "XXXX"},
        "$.properties.currency",
        "currency",
    ),
    # Order Refunded
    "refund-no-id": (
        "Order Refunded",
        without(REFUND, "order_id"),
        "$.properties.order_id",
        "order_id",
    ),
    "refund-no-total": (
        "Order Refunded",
        without(REFUND, "total"),
        "$.properties.total",
        "total_value",
    ),
    "refund-negative-total": (
        "Order Refunded",
        {**REFUND, "total": -19.99},
        "$.properties.total",
        "total_value",
    ),
    "refund-no-products": (
        "Order Refunded",
        without(REFUND, "products"),
        "$.properties.products",
        "products",
    ),
    # Order Cancelled
    "cancel-no-reason": (
        "Order Cancelled",
        without(CANCEL, "reason"),
        "$.properties.cancel_reason",
        "cancel_reason",
    ),
    "cancel-reason-number": (
        "Order Cancelled",
        {**CANCEL, "reason": 3},
        "$.properties.reason",
        "cancel_reason",
    ),
    "cancel-no-id": (
        "Order Cancelled",
        without(CANCEL, "order_id"),
        "$.properties.order_id",
        "order_id",
    ),
    "cancel-no-total": (
        "Order Cancelled",
        without(CANCEL, "value"),
        "$.properties.total",
        "total_value",
    ),
    "cancel-empty-products": (
        "Order Cancelled",
        {**CANCEL, "products": []},
        "$.properties.products",
        "products",
    ),
}


class TestFallback:
    """A message that cannot make a valid recommended event is sent as it would otherwise be."""

    @pytest.mark.parametrize(
        ("event", "properties", "path", "field"), FAILURES.values(), ids=FAILURES
    )
    def test_custom_event_with_warnings(self, event, properties, path, field):
        """The plain custom event, exactly as without ecommerce, and a warning per field."""
        message = ecommerce(event, properties)
        t = translate(message, RECOMMENDED)
        plain = translate(message, Settings(purchase_events=frozenset()))
        assert t.requests() == plain.requests()
        assert the_event(t)["name"] == event
        summary = [path for path, _ in t.warnings].index("$.event")
        problems = [(path, text.split(" ", 1)[0]) for path, text in t.warnings[:summary]]
        assert (path, field) in problems
        assert t.warnings[summary][1].endswith(f"sent as the custom event {event!r}")
        assert t.warnings[summary + 1 :] == plain.warnings

    def test_every_problem_named(self):
        """Each missing or invalid field gets its own warning, at its own Segment path."""
        properties = {
            "products": [{"product_id": "a", "price": -1}, {"name": "B"}],
            "currency": "??",
        }
        t = translate(ecommerce("Order Completed", properties), RECOMMENDED)
        assert [path for path, _ in t.warnings] == [
            "$.properties.order_id",
            "$.properties.total",
            "$.properties.currency",
            "$.properties.products[0].name",
            "$.properties.products[0].price",
            "$.properties.products[1].product_id",
            "$.properties.products[1].variant",
            "$.properties.products[1].price",
            "$.event",
        ]
        assert "not sent as ecommerce.order_placed: 8 fields" in t.warnings[-1][1]

    def test_order_falls_back_to_custom_event_not_purchases(self):
        """In "recommended" mode an invalid Order Completed is a custom event, never purchases."""
        t = translate(ecommerce("Order Completed", without(ORDER, "order_id")), RECOMMENDED)
        assert the_event(t)["name"] == "Order Completed"

    def test_both_mode_falls_back_to_purchases(self):
        """In "both" mode the order's purchases stand in for an invalid order_placed."""
        t = translate(ecommerce("Order Completed", without(ORDER, "order_id")), BOTH)
        body = track_body(t)
        assert list(body) == ["purchases"]
        assert t.warnings[-1][1].endswith("sent as purchases")

    def test_both_mode_without_valid_products(self):
        """With no valid product for a purchase either, the custom event is sent: never lost."""
        message = ecommerce(
            "Order Completed", {**ORDER, "products": [{"name": "no id", "price": 1}]}
        )
        t = translate(message, BOTH)
        assert the_event(t)["name"] == "Order Completed"


class TestModes:
    """purchases (default), recommended and both."""

    @pytest.mark.parametrize(
        ("settings", "arrays", "names"),
        [
            pytest.param(Settings(), ["purchases"], [], id="purchases"),
            pytest.param(RECOMMENDED, ["events"], ["ecommerce.order_placed"], id="recommended"),
            pytest.param(BOTH, ["events", "purchases"], ["ecommerce.order_placed"], id="both"),
        ],
    )
    def test_order_completed(self, settings, arrays, names):
        """An order is purchases, the recommended event, or both in one request."""
        body = track_body(translate(ecommerce("Order Completed", ORDER), settings))
        assert list(body) == arrays
        assert [event["name"] for event in body.get("events", [])] == names
        if "purchases" in body:
            assert [p["product_id"] for p in body["purchases"]] == ["p-1"]

    def test_default_unchanged(self):
        """Without the setting, every e-commerce event translates as before."""
        for event, properties in VALID.values():
            t = translate(ecommerce(event, properties))
            assert not any(
                e["name"].startswith("ecommerce.") for e in track_body(t).get("events", [])
            )

    @pytest.mark.parametrize("case", ["order-refunded", "checkout-started", "product-added"])
    def test_both_only_adds_purchases_for_purchase_events(self, case):
        """In "both" mode a refund, a checkout or a cart update makes no purchase."""
        assert list(track_body(translate(ecommerce(*VALID[case]), BOTH))) == ["events"]

    def test_alias_user(self):
        """An anonymous visitor's recommended event follows its alias profile, update-only."""
        settings = Settings(ecommerce="recommended", anonymous_users="alias")
        message = ecommerce("Product Viewed", HAT, userId=None, anonymousId="anon-1")
        body = track_body(translate(message, settings))
        assert body["events"][0]["_update_existing_only"] is True
        assert body["events"][0]["name"] == "ecommerce.product_viewed"


class TestDataPoints:
    """Braze's recommended events use no data points; a fallback costs one."""

    @pytest.mark.parametrize(
        ("name", "points"),
        [
            *[(name, 0) for name in {mapping[2] for mapping in MAPPINGS.values()}],
            ("Order Completed", 1),
            ("ecommerce.order_completed", 1),
            ("Ecommerce.order_placed", 1),
        ],
    )
    def test_event_data_points(self, name, points):
        """Only Braze's six exact names are free."""
        assert event_data_points(name) == points
