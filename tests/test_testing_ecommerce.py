"""BrazeStandIn judges eCommerce recommended events as Braze does (issue 14).

The expectations come from Braze's "Recommended events" page: an invalid
recommended event is dropped entirely, and a REST caller gets an ``errors``
entry (``missing_property``, ``extra_property``, ``unexpected_data_type``) in a
success answer. Bodies are posted over loopback with ``requests``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from segment_braze.testing import BrazeStandIn

KEY = "test-key"
TIME = "2024-05-01T12:00:00Z"
TRACK = "/users/track"
LINE = {
    "product_id": "p-1",
    "product_name": "Shirt",
    "variant_id": "p-1-blue",
    "quantity": 1,
    "price": 19.99,
}
COMMON = {"currency": "USD", "source": "web"}
VALID: dict[str, dict[str, Any]] = {
    "ecommerce.product_viewed": {
        **{key: value for key, value in LINE.items() if key != "quantity"},
        **COMMON,
        "type": ["price_drop"],
        "image_url": "https://shop.example/p.png",
    },
    "ecommerce.cart_updated": {
        "cart_id": "c-1",
        "action": "add",
        "products": [LINE],
        **COMMON,
    },
    "ecommerce.checkout_started": {
        "checkout_id": "k-1",
        "cart_id": "c-1",
        "total_value": 19.99,
        "tax": 1,
        "products": [LINE],
        **COMMON,
        "metadata": {"checkout_url": "https://shop.example/k-1"},
    },
    "ecommerce.order_placed": {
        "order_id": "o-1",
        "total_value": 19.99,
        "total_discounts": 0,
        "discounts": [{"code": "TEN", "amount": 0}],
        "products": [{**LINE, "metadata": {"sku": "S1"}}],
        **COMMON,
    },
    "ecommerce.order_cancelled": {
        "order_id": "o-1",
        "total_value": 19.99,
        "cancel_reason": "changed mind",
        "products": [LINE],
        **COMMON,
    },
    "ecommerce.order_refunded": {
        "order_id": "o-1",
        "total_value": 5,
        "products": [LINE],
        **COMMON,
    },
}


def event(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A recommended event object for u1."""
    return {"external_id": "u1", "name": name, "time": TIME, "properties": properties}


def changed(name: str, **fields: Any) -> dict[str, Any]:
    """The valid properties of ``name`` with ``fields`` set (``None`` removes one)."""
    properties = copy.deepcopy(VALID[name])
    properties.update(fields)
    return {key: value for key, value in properties.items() if value is not None}


def line_changed(name: str, **fields: Any) -> dict[str, Any]:
    """The valid properties of ``name`` with its first product line changed."""
    properties = copy.deepcopy(VALID[name])
    line = {**properties["products"][0], **fields}
    properties["products"][0] = {key: value for key, value in line.items() if value is not None}
    return properties


def post(braze: BrazeStandIn, body: dict[str, Any]) -> requests.Response:
    """POST a /users/track body with the right key."""
    return requests.post(
        braze.url + TRACK, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )


@pytest.fixture
def braze():
    """A running stand-in."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


CART, ORDER = "ecommerce.cart_updated", "ecommerce.order_placed"
VIEWED, CANCEL = "ecommerce.product_viewed", "ecommerce.order_cancelled"
REFUND, CHECKOUT = "ecommerce.order_refunded", "ecommerce.checkout_started"

INVALID = {
    "missing-cart-id": (CART, changed(CART, cart_id=None), "missing_property"),
    "missing-source": (ORDER, changed(ORDER, source=None), "missing_property"),
    "missing-currency": (VIEWED, changed(VIEWED, currency=None), "missing_property"),
    "missing-cancel-reason": (CANCEL, changed(CANCEL, cancel_reason=None), "missing_property"),
    "missing-total-on-replace": (CART, changed(CART, action=None), "missing_property"),
    "missing-total-order": (ORDER, changed(ORDER, total_value=None), "missing_property"),
    "missing-products": (REFUND, changed(REFUND, products=None), "missing_property"),
    "missing-line-variant": (ORDER, line_changed(ORDER, variant_id=None), "missing_property"),
    "missing-line-quantity": (CART, line_changed(CART, quantity=None), "missing_property"),
    "missing-viewed-name": (VIEWED, changed(VIEWED, product_name=None), "missing_property"),
    "extra-top-level": (ORDER, changed(ORDER, coupon="TEN"), "extra_property"),
    "extra-refund-tax": (REFUND, changed(REFUND, tax=1), "extra_property"),
    "extra-viewed-quantity": (VIEWED, changed(VIEWED, quantity=1), "extra_property"),
    "extra-line-key": (CHECKOUT, line_changed(CHECKOUT, brand="Acme"), "extra_property"),
    "price-string": (ORDER, line_changed(ORDER, price="19.99"), "unexpected_data_type"),
    "quantity-float": (CART, line_changed(CART, quantity=1.5), "unexpected_data_type"),
    "total-string": (CHECKOUT, changed(CHECKOUT, total_value="19.99"), "unexpected_data_type"),
    "products-object": (ORDER, changed(ORDER, products=LINE), "unexpected_data_type"),
    "id-number": (ORDER, changed(ORDER, order_id=7), "unexpected_data_type"),
    "metadata-list": (CART, changed(CART, metadata=["x"]), "unexpected_data_type"),
    "negative-total": (REFUND, changed(REFUND, total_value=-5), "invalid_value"),
    "negative-price": (VIEWED, changed(VIEWED, price=-1), "invalid_value"),
    "quantity-zero": (CART, line_changed(CART, quantity=0), "invalid_value"),
    "empty-products": (CHECKOUT, changed(CHECKOUT, products=[]), "invalid_value"),
    "currency-lower": (ORDER, changed(ORDER, currency="usd"), "invalid_value"),
    "blank-id": (CANCEL, changed(CANCEL, order_id=" "), "invalid_value"),
    "action-unknown": (CART, changed(CART, action="clear"), "invalid_value"),
    "metadata-dollar-key": (ORDER, changed(ORDER, metadata={"$x": 1}), "invalid_value"),
}


class TestRecommendedEvents:
    """Valid recommended events are stored; invalid ones are named in errors and dropped."""

    @pytest.mark.parametrize("name", sorted(VALID))
    def test_valid_event_stored(self, braze, name):
        """Each of the six events with its schema's properties is accepted and kept."""
        obj = event(name, VALID[name])
        response = post(braze, {"events": [obj]})
        assert (response.status_code, response.json()) == (
            201,
            {"message": "success", "events_processed": 1},
        )
        assert braze.accepted_events == [obj]

    @pytest.mark.parametrize(("name", "properties", "kind"), INVALID.values(), ids=INVALID)
    def test_invalid_event_dropped_with_error(self, braze, name, properties, kind):
        """Braze answers 201 with an errors entry for it, keeps the others, stores it not."""
        good = event(VIEWED, VALID[VIEWED])
        body = {"events": [good, event(name, properties)]}
        response = post(braze, body)
        assert response.status_code == 201
        answer = response.json()
        assert answer["message"] == "success"
        [error] = answer["errors"]
        assert (error["input_array"], error["index"]) == ("events", 1)
        assert error["type"].startswith(kind)
        assert braze.accepted_events == [good]
        assert braze.ignored == []

    def test_only_an_invalid_event_is_still_success(self, braze):
        """A request whose only event fails the schema is a success, not a 400."""
        response = post(braze, {"events": [event(CART, changed(CART, cart_id=None))]})
        assert response.status_code == 201
        assert response.json()["errors"][0]["type"] == "missing_property: properties.cart_id"
        assert braze.accepted_events == []

    @pytest.mark.parametrize(
        "name", ["ecommerce.Order_Placed", "ecommerce.order_completed", "order_placed"]
    )
    def test_other_spellings_are_custom_events(self, braze, name):
        """Only the exact names are validated: any other spelling is a plain custom event."""
        obj = event(name, {"anything": 1})
        assert "errors" not in post(braze, {"events": [obj]}).json()
        assert braze.accepted_events == [obj]

    def test_profile_created_though_event_dropped(self, braze):
        """The request's other objects are processed: its attributes still reach the user."""
        body = {
            "attributes": [{"external_id": "u1", "plan": "pro"}],
            "events": [event(ORDER, changed(ORDER, products=[]))],
        }
        assert post(braze, body).status_code == 201
        assert braze.profiles == {("external_id", "u1"): {"plan": "pro"}}
