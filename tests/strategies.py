"""Hypothesis strategies for Segment messages and translation settings.

``json_values()`` draws strict JSON (finite numbers, no lone surrogates);
``python_json_values()`` draws what Python's ``json.loads`` also accepts
(``NaN``, ``Infinity`` and lone UTF-16 surrogates); ``python_built_values()``
adds what a service building messages in Python passes (datetimes, Decimals,
UUIDs, Enum members, sets, NumPy scalars). ``messages()`` draws
Segment-shaped messages whose fields are mostly plausible and sometimes any
JSON at all, biased towards the edges Braze cares about (255-character keys and
strings, ``$`` keys, reserved names, quantities over 100, odd currencies).
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import strategies as st

from segment_braze import Settings

TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete")
EVENT_NAMES = (
    "Signed Up",
    "Order Completed",
    "Product Added",
    "Viewed Home Page",
    "Viewed Docs Home Page",
    "Loaded a Page",
    "Viewed Cart Screen",
    "Loaded a Screen",
    "Product Viewed",
    "Product Removed",
    "Checkout Started",
    "Order Refunded",
    "Order Cancelled",
)
# Keys that exercise Braze's rules: operators, reserved names, identifiers,
# nested-key rules (spaces, dots) and the 255-character limit.
SPECIAL_KEYS = (
    "$time",
    "$add",
    "$remove",
    "$update",
    "$x",
    "add",
    "remove",
    "inc",
    "time",
    "event_name",
    "product_id",
    "price",
    "quantity",
    "currency",
    "revenue",
    "products",
    "",
    "a b",
    "a.b",
    "k" * 255,
    "k" * 256,
    "external_id",
    "braze_id",
    "user_alias",
    "_update_existing_only",
    "push_tokens",
    "app_id",
    "name",
    "id",
)
EDGE_STRINGS = ("s" * 255, "s" * 256, "2015-01-01T00:00:00Z", "")

keys = st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL_KEYS))
strings = st.one_of(st.text(max_size=12), st.sampled_from(EDGE_STRINGS))


def _scalars(*, python: bool) -> st.SearchStrategy[Any]:
    text = strings
    if python:
        # json.loads("\"\\ud800\"") gives a lone surrogate.
        text = st.one_of(strings, st.text(st.characters(codec=None, categories=["Cs"]), min_size=1))
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.floats(allow_nan=python, allow_infinity=python),
        text,
    )


def _json(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=4),
        ),
        max_leaves=12,
    )


def json_values() -> st.SearchStrategy[Any]:
    """Strict JSON values: what a Segment source can send."""
    return _json(_scalars(python=False))


def python_json_values() -> st.SearchStrategy[Any]:
    """Values Python's ``json.loads`` accepts: also NaN, infinities and lone surrogates."""
    return _json(_scalars(python=True))


class Plan(enum.Enum):
    """An Enum a service might keep its values in."""

    PRO = "pro"
    SEATS = 3


def python_built_values() -> st.SearchStrategy[Any]:
    """Values a service building messages in Python may pass: datetimes, Decimals, ..."""
    python_scalars = st.one_of(
        st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
        st.dates(),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.sampled_from((Decimal("sNaN"), Decimal("1E+400"), Decimal("19.99"))),
        st.uuids(),
        st.sampled_from(tuple(Plan)),
        st.frozensets(st.text(max_size=3), max_size=3),
        st.sets(st.integers(-5, 5), max_size=3),
        st.integers(-(2**63), 2**63 - 1).map(np.int64),
        st.booleans().map(np.bool_),
        st.floats(width=32).map(np.float32),
        st.just(np.datetime64("2026-01-01T00:00:00.000000000")),
    )
    return _json(st.one_of(_scalars(python=False), python_scalars))


def _sometimes(plausible: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> Any:
    """Mostly ``plausible``, sometimes any JSON value at all."""
    return st.one_of(plausible, plausible, plausible, values)


ids = st.one_of(
    st.text(min_size=1, max_size=10),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(("u" * 987, "u" * 988, "é" * 494)),
)
times = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1971, 1, 1),
        max_value=dt.datetime(2099, 12, 31),
        timezones=st.one_of(
            st.none(),
            st.builds(
                dt.timezone,
                st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timedelta(minutes=m)),
            ),
        ),
    ).map(dt.datetime.isoformat),
    st.sampled_from(("2015-01-01T00:00:00Z", "2015-01-01", "soon", "")),
)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=-1e6, max_value=1e9, allow_nan=False),
    st.sampled_from(("9.99", "12", "ten", "", "1e3")),
)
currencies = st.sampled_from(("USD", "eur", "Gbp", "EURO", "ZZQ", "E", "", " usd "))
emails = st.sampled_from(("ann@example.com", " Ann@Example.COM ", "ann at example", ""))
phones = st.sampled_from(("+14155552671", " +4930901820 ", "(415) 555-2671", 14155552671))


def _traits(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes(plausible, values)

    standard = st.fixed_dictionaries(
        {},
        optional={
            "firstName": maybe(strings),
            "lastName": maybe(strings),
            "name": maybe(st.sampled_from(("Ada Lovelace", "Ada", " ", "A  B C"))),
            "email": maybe(st.one_of(strings, emails)),
            "phone": maybe(st.one_of(strings, st.integers(), phones)),
            "avatar": maybe(strings),
            "birthday": maybe(
                st.sampled_from(
                    ("1990-05-17", "May 17, 1990", "17 May", "junk", "1990-05-17T23:30:00-05:00")
                )
            ),
            "gender": maybe(st.sampled_from(("male", "F", "Other", "na", "p", "blue"))),
            "address": maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "city": maybe(strings),
                        "country": maybe(st.sampled_from(("DE", "de", "Germany", "Korea", "XX"))),
                        "postalCode": maybe(strings),
                        "street": maybe(strings),
                    },
                )
            ),
            "country": maybe(st.sampled_from(("FR", "fr", "France", "Atlantis"))),
            "language": maybe(st.sampled_from(("en", "en-US", "EN", "xx", "english"))),
            "time_zone": maybe(st.sampled_from(("Europe/Berlin", "UTC", "no zone"))),
            "email_subscribe": maybe(st.sampled_from(("opted_in", "subscribed", "yes"))),
            "push_subscribe": maybe(st.sampled_from(("unsubscribed", "no"))),
            "subscription_groups": maybe(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "subscription_group_id": st.sampled_from(
                                ("3f1a2b4c-0000-4000-8000-00000000abcd", "news")
                            ),
                            "subscription_state": st.sampled_from(("subscribed", "maybe")),
                        }
                    ),
                    max_size=3,
                )
            ),
            "current_location": maybe(
                st.fixed_dictionaries({"latitude": numbers, "longitude": numbers})
            ),
            "braze_id": maybe(ids),
            "id": maybe(ids),
            "tags": maybe(
                st.one_of(
                    st.lists(strings, max_size=30),
                    st.fixed_dictionaries({"add": st.lists(strings, max_size=3)}),
                    st.fixed_dictionaries({"inc": st.integers()}),
                )
            ),
            # RudderStack's nested array operations (nested_array_operations).
            "pets": maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        operation: st.lists(
                            st.one_of(
                                st.fixed_dictionaries(
                                    {"identifier": st.sampled_from(("id", "identifier", "x"))},
                                    optional={"id": values, "name": values},
                                ),
                                values,
                            ),
                            max_size=3,
                        )
                        for operation in ("add", "update", "remove")
                    },
                )
            ),
        },
    )
    return st.builds(lambda a, b: {**a, **b}, st.dictionaries(keys, values, max_size=3), standard)


def _product(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes(plausible, values)

    product = st.fixed_dictionaries(
        {},
        optional={
            "product_id": maybe(ids),
            "id": maybe(ids),
            "sku": maybe(st.one_of(ids, st.just("p" * 256))),
            "price": maybe(numbers),
            "quantity": maybe(st.integers(min_value=-2, max_value=350)),
            "currency": maybe(currencies),
            "name": maybe(strings),
            "time": values,
        },
    )
    return st.one_of(
        st.builds(lambda a, b: {**a, **b}, st.dictionaries(keys, values, max_size=2), product),
        values,
    )


def _properties(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes(plausible, values)

    known = st.fixed_dictionaries(
        {},
        optional={
            "products": maybe(st.lists(_product(values), max_size=4)),
            "revenue": maybe(numbers),
            "currency": maybe(currencies),
            "braze_id": maybe(ids),
            "name": maybe(strings),
            "email": maybe(emails),
            "phone": maybe(phones),
            # Segment's e-commerce fields, for Braze's recommended events.
            "product_id": maybe(ids),
            "price": maybe(numbers),
            "cart_id": maybe(ids),
            "order_id": maybe(ids),
            "total": maybe(numbers),
            "reason": maybe(strings),
            "discounts": maybe(st.just([{"code": "TEN", "amount": 1}])),
        },
    )
    return st.builds(lambda a, b: {**a, **b}, st.dictionaries(keys, values, max_size=4), known)


# Options a sender names for Braze: Segment's braze_id, RudderStack's alias and appId.
_alias_names = st.one_of(st.sampled_from(("crm-1", "", "a" * 300)), strings, st.integers())
_integrations = st.fixed_dictionaries(
    {},
    optional={
        key: st.fixed_dictionaries(
            {},
            optional={
                "braze_id": ids,
                "alias": st.one_of(
                    st.fixed_dictionaries(
                        {"alias_name": _alias_names, "alias_label": _alias_names}
                    ),
                    strings,
                ),
                "appId": st.one_of(st.none(), st.booleans(), ids),
            },
        )
        for key in ("Braze", "braze", "BRAZE")
    },
)
# RudderStack's context.externalId entries: Braze's and another tool's.
_external_id = st.fixed_dictionaries(
    {"type": st.sampled_from(("brazeExternalId", "hubspotId")), "id": st.one_of(ids, st.none())}
)


def _context(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes(plausible, values)

    device = st.fixed_dictionaries(
        {},
        optional={
            "token": maybe(strings),
            "id": maybe(st.sampled_from(("d" * 7, "d" * 8, "device-1234", "d" * 256, "é" * 4))),
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "device": maybe(device),
            "integrations": maybe(_integrations),
            "traits": values,
            "externalId": maybe(st.lists(_external_id, max_size=3)),
        },
    )


def messages(values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Segment-shaped messages of every type, with plausible and arbitrary fields."""
    values = json_values() if values is None else values

    def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return _sometimes(plausible, values)

    return st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(TYPES), st.sampled_from(TYPES), values)},
        optional={
            "userId": maybe(ids),
            "anonymousId": maybe(ids),
            "messageId": maybe(ids),
            "timestamp": maybe(times),
            "originalTimestamp": maybe(times),
            "sentAt": maybe(times),
            "receivedAt": maybe(times),
            "event": maybe(st.one_of(st.sampled_from(EVENT_NAMES), strings, st.just("e" * 256))),
            "name": maybe(st.one_of(st.sampled_from(("Home", "Cart")), strings)),
            "category": maybe(st.sampled_from(("Docs", "Shop"))),
            "groupId": maybe(ids),
            "previousId": maybe(ids),
            "traits": maybe(_traits(values)),
            "properties": maybe(_properties(values)),
            "context": maybe(_context(values)),
            "integrations": maybe(_integrations),
        },
    )


def translation_settings(**fixed: Any) -> st.SearchStrategy[Settings]:
    """Settings with every translation option drawn; ``fixed`` pins (or narrows) some."""
    drawn: dict[str, st.SearchStrategy[Any]] = {
        "app_id": st.sampled_from((None, "app-1", "a" * 36)),
        "update_existing_only": st.booleans(),
        "log_purchase_when_revenue_present": st.booleans(),
        "track_all_pages": st.booleans(),
        "track_named_pages": st.booleans(),
        "max_array_length": st.sampled_from((1, 3, 25, 500)),
        "anonymous_users": st.sampled_from(("drop", "alias")),
        "anonymous_alias_label": st.sampled_from(("segment_anonymous_id", "visitor", None)),
        "alias_calls": st.sampled_from(("identify", "merge", "drop")),
        "events_allowlist": st.one_of(
            st.none(), st.none(), st.frozensets(st.sampled_from(EVENT_NAMES), min_size=1)
        ),
        "events_denylist": st.frozensets(st.sampled_from(EVENT_NAMES), max_size=2),
        "ecommerce": st.sampled_from(("purchases", "recommended", "both")),
        "fallback_identifiers": st.sampled_from(((), ("email",), ("phone", "email"))),
        "naming": st.sampled_from(("segment", "rudderstack")),
        "group_subscriptions": st.booleans(),
        "merge_nested_objects": st.booleans(),
        "nested_array_operations": st.booleans(),
    }
    drawn.update(
        {
            name: value if isinstance(value, st.SearchStrategy) else st.just(value)
            for name, value in fixed.items()
        }
    )
    return st.builds(Settings, **drawn)


ECOMMERCE_EVENTS = (
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
)


def ecommerce_messages(values: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Segment e-commerce tracks: mostly complete and well formed, now and then not."""
    values = json_values() if values is None else values

    def rarely_wrong(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        # One field in ten or so is off (any JSON value, an edge case, a number
        # where a string belongs): enough to exercise every fallback.
        return st.one_of(*[plausible] * 9, values, numbers, ids)

    money = st.one_of(st.integers(0, 1000), st.floats(0, 1e6), st.sampled_from(("9.99", "12", "0")))
    good_ids = st.one_of(st.text("abc123-", min_size=1, max_size=8), st.integers(0, 10**6))
    line = {
        "product_id": rarely_wrong(good_ids),
        "name": rarely_wrong(st.sampled_from(("Shirt", "Hat", "Épée"))),
        "price": rarely_wrong(money),
    }
    extra = {
        "sku": rarely_wrong(good_ids),
        "variant": rarely_wrong(good_ids),
        "quantity": rarely_wrong(st.one_of(st.integers(1, 300), st.sampled_from(("2", 2.0)))),
        "url": rarely_wrong(st.sampled_from(("https://shop.example/p", "u" * 256))),
        "image_url": rarely_wrong(st.just("https://shop.example/p.png")),
        "category": rarely_wrong(st.sampled_from(("Tops", "Hats"))),
        "brand": values,
    }
    product = st.fixed_dictionaries(line, optional=extra)
    order = {
        "cart_id": rarely_wrong(good_ids),
        "checkout_id": rarely_wrong(good_ids),
        "order_id": rarely_wrong(good_ids),
        "total": rarely_wrong(money),
        "reason": rarely_wrong(st.sampled_from(("changed mind", "out of stock"))),
        "products": rarely_wrong(st.lists(product, min_size=1, max_size=3)),
    }
    optional = {
        "revenue": rarely_wrong(money),
        "value": rarely_wrong(money),
        "subtotal": rarely_wrong(money),
        "tax": rarely_wrong(money),
        "shipping": rarely_wrong(money),
        "discount": rarely_wrong(money),
        "discounts": rarely_wrong(st.just([{"code": "TEN", "amount": 1}])),
        "currency": rarely_wrong(currencies),
        "source": rarely_wrong(st.sampled_from(("web", "ios", "s" * 256))),
        "type": rarely_wrong(st.just(["price_drop"])),
        "metadata": st.dictionaries(keys, values, max_size=3),
        "email": emails,
        "coupon": values,
        **extra,
    }
    properties = st.fixed_dictionaries({**line, **order}, optional=optional)
    return st.fixed_dictionaries(
        {
            "type": st.just("track"),
            "event": st.sampled_from(ECOMMERCE_EVENTS),
            "timestamp": st.just("2015-01-01T00:00:00Z"),
            "properties": st.one_of(*[properties] * 9, values),
            "userId": st.one_of(*[good_ids] * 9, st.none()),
        },
        optional={"anonymousId": ids},
    )
