"""Segment messages exactly as Segment's official clients put them on the wire.

Built by hand from each client's source and documented wire format (no network
capture was possible on this machine); each builder names where its shape comes
from:

- analytics-python 2.x (``segment/analytics/client.py``, ``_enqueue``): every
  message gets ``context.library`` ``{"name": "analytics-python", "version": ...}``,
  ``timestamp`` from ``datetime.isoformat()`` (microseconds and ``+00:00``),
  ``messageId`` a UUID4 string, ``integrations`` ``{}`` unless given, ``userId``
  and ``anonymousId`` as given (numbers stay numbers), and the batch envelope
  ``{"batch": [...], "sentAt": ...}``.
- analytics-node 3.x (``index.js``, ``enqueue``): ``context.library``
  ``analytics-node``, ``_metadata.nodeVersion``, ``timestamp`` a ``Date``
  (``toJSON``: milliseconds and ``Z``), ``messageId`` ``node-<md5>-<uuid>``; the
  batch envelope also carries ``timestamp``.
- analytics-next 1.x (analytics.js in the browser, ``core/events``): ``messageId``
  ``ajs-next-<md5>``, ``context`` with ``page``, ``userAgent``, ``locale``,
  ``library`` ``{"name": "analytics.js", "version": "npm:next-1.84.0"}`` and, on
  page calls, ``properties`` with ``path``/``referrer``/``search``/``title``/
  ``url``; ``integrations`` ``{}``, ``_metadata`` (bundled lists), ``sentAt``,
  ``writeKey``. Segment adds ``receivedAt`` and ``originalTimestamp`` on arrival.
"""

from __future__ import annotations

from typing import Any

PY_LIBRARY = {"name": "analytics-python", "version": "2.4.0"}
NODE_LIBRARY = {"name": "analytics-node", "version": "3.1.0"}
AJS_LIBRARY = {"name": "analytics.js", "version": "npm:next-1.84.0"}
AJS_PAGE = {
    "path": "/pricing",
    "referrer": "https://www.google.com/",
    "search": "",
    "title": "Pricing - Example",
    "url": "https://example.com/pricing",
}


def _python(message: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "context": {"library": PY_LIBRARY},
        "integrations": {},
        "messageId": f"5f6b7c1e-8c3a-4d0e-9f2b-00000000{n:04d}",
        "timestamp": f"2024-05-01T12:00:{n % 60:02d}.123456+00:00",
        "anonymousId": None,
        **message,
    }


def _node(message: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "context": {"library": NODE_LIBRARY},
        "_metadata": {"nodeVersion": "18.19.0"},
        "timestamp": f"2024-05-01T12:01:{n % 60:02d}.456Z",
        "messageId": f"node-3b0c1f7e0a9d4e2b8c6f1a2b3c4d5e6f-0c9d8e7f-{n:04d}",
        **message,
    }


def _browser(message: dict[str, Any], n: int) -> dict[str, Any]:
    context = {
        "page": AJS_PAGE,
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
        "locale": "de-DE",
        "library": AJS_LIBRARY,
        "timezone": "Europe/Berlin",
        **message.pop("context", {}),
    }
    stamp = f"2024-05-01T12:02:{n % 60:02d}.789Z"
    return {
        "anonymousId": "8d2b3c4e-5f60-4718-9a0b-1c2d3e4f5a6b",
        "userId": None,
        "integrations": {},
        "messageId": f"ajs-next-9f3e2d1c0b4a59687766554433221{n:03d}",
        "timestamp": stamp,
        "originalTimestamp": stamp,
        "sentAt": stamp,
        "receivedAt": stamp,
        "context": context,
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        "writeKey": "w" * 32,
        **message,
    }


ORDER = {
    "order_id": "50314b8e9bcf000000000000",
    "total": 27.5,
    "revenue": 25.0,
    "currency": "EUR",
    "products": [
        {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "price": 19, "quantity": 1},
        {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "price": 3, "quantity": 2},
    ],
}


def messages() -> list[tuple[str, dict[str, Any], str | None]]:
    """``(name, message, drop reason or None)`` for each client's everyday calls."""
    off = 'integrations object turns Braze off ("Braze": false)'
    all_off = 'integrations object turns Braze off ("All": false)'
    appboy_off = 'integrations object turns Braze off ("Appboy": false)'
    cases: list[tuple[str, dict[str, Any], str | None]] = []
    n = 0

    def add(name: str, wrap: Any, message: dict[str, Any], reason: str | None = None) -> None:
        nonlocal n
        n += 1
        cases.append((name, wrap(message, n), reason))

    # analytics-python
    add("py identify", _python, {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}})
    add("py numeric userId", _python, {"type": "identify", "userId": 42, "traits": {}})
    add("py track", _python, {"type": "track", "userId": "u-1", "event": "Signed Up"})
    add(
        "py order",
        _python,
        {"type": "track", "userId": "u-1", "event": "Order Completed", "properties": ORDER},
    )
    add(
        "py refund",
        _python,
        {"type": "track", "userId": "u-1", "event": "Order Refunded", "properties": ORDER},
    )
    add(
        "py group",
        _python,
        {"type": "group", "userId": "u-1", "groupId": "acme", "traits": {"name": "Acme"}},
    )
    add("py alias", _python, {"type": "alias", "userId": "u-1", "previousId": "anon-9"})
    add("py page", _python, {"type": "page", "userId": "u-1", "name": "Pricing", "properties": {}})
    add("py screen", _python, {"type": "screen", "userId": "u-1", "name": "Home", "properties": {}})
    add(
        "py Braze off",
        _python,
        {"type": "track", "userId": "u-1", "event": "Internal", "integrations": {"Braze": False}},
        off,
    )
    add(
        "py All off",
        _python,
        {"type": "identify", "userId": "u-1", "traits": {"x": 1}, "integrations": {"All": False}},
        all_off,
    )
    add(
        "py All off, Braze on",
        _python,
        {
            "type": "track",
            "userId": "u-1",
            "event": "Kept",
            "integrations": {"All": False, "Braze": True},
        },
    )
    # analytics-node
    add(
        "node identify",
        _node,
        {"type": "identify", "userId": "u-2", "traits": {"email": "a@example.com", "gender": None}},
    )
    add(
        "node track",
        _node,
        {"type": "track", "userId": "u-2", "event": "Checkout Started", "properties": ORDER},
    )
    add(
        "node braze_id",
        _node,
        {
            "type": "track",
            "event": "Opened",
            "integrations": {"Braze": {"braze_id": "5e1234567890abcdef"}},
        },
    )
    add(
        "node Appboy off",
        _node,
        {"type": "track", "userId": "u-2", "event": "Hidden", "integrations": {"Appboy": False}},
        appboy_off,
    )
    add("node delete", _node, {"type": "delete", "userId": "u-2", "integrations": {"All": False}})
    # analytics-next (browser)
    add(
        "ajs page",
        _browser,
        {
            "type": "page",
            "userId": "u-3",
            "name": "Pricing",
            "properties": {**AJS_PAGE, "name": "Pricing"},
        },
    )
    add(
        "ajs identify",
        _browser,
        {
            "type": "identify",
            "userId": "u-3",
            "traits": {"email": "c@example.com", "birthday": "1990-05-17"},
        },
    )
    add(
        "ajs anonymous track",
        _browser,
        {
            "type": "track",
            "event": "Product Viewed",
            "properties": {"product_id": "p-1", "price": 9.5},
        },
    )
    add(
        "ajs track",
        _browser,
        {
            "type": "track",
            "userId": "u-3",
            "event": "Product Added",
            "properties": {"product_id": "p-1", "price": 9.5, "quantity": 1},
        },
    )
    add(
        "ajs context Braze off",
        _browser,
        {
            "type": "track",
            "userId": "u-3",
            "event": "Ad Seen",
            "context": {"integrations": {"Braze": False}},
        },
        'context.integrations turns Braze off ("Braze": false)',
    )
    return cases
