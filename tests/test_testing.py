"""BrazeStandIn, exercised over real loopback sockets with ``requests``.

The expectations come from Braze's REST documentation, not from the
implementation: each test states the Braze behaviour it pins.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import segment_braze.testing as testing_module
from segment_braze.testing import BrazeStandIn, Fault, IgnoredObject, RecordedRequest

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIME = "2024-05-01T12:00:00Z"
ALIAS = {"alias_name": "anon-1", "alias_label": "segment_anonymous_id"}
ALIAS_KEY = ("user_alias", "anon-1", "segment_anonymous_id")
TRACK = "/users/track"
# A read timeout far below every delay injected here, so the client gives up.
SHORT_READ = (5, 0.05)


def post(
    braze: BrazeStandIn,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float | tuple[float, float] = 5,
) -> requests.Response:
    """POST ``body`` as JSON to the stand-in, with the right key unless overridden."""
    return requests.post(
        braze.url + path, json=body, headers={**AUTH, **(headers or {})}, timeout=timeout
    )


def event(**fields: Any) -> dict[str, Any]:
    """A valid event object for u1; ``fields`` override."""
    return {"external_id": "u1", "name": "Signed Up", "time": TIME, **fields}


def purchase(**fields: Any) -> dict[str, Any]:
    """A valid purchase object for u1; ``fields`` override."""
    return {
        "external_id": "u1",
        "product_id": "sku-1",
        "currency": "USD",
        "price": 9.99,
        "time": TIME,
        **fields,
    }


def attributes(**fields: Any) -> dict[str, Any]:
    """A valid attributes object for u1; ``fields`` add attributes."""
    return {"external_id": "u1", **fields}


def without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``obj`` without ``keys``."""
    return {key: value for key, value in obj.items() if key not in keys}


def wait_for(condition: Callable[[], object]) -> None:
    """Poll until the stand-in has done something (a condition, not a duration)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the stand-in never got there"
        time.sleep(0.005)


@pytest.fixture
def braze():
    """A running stand-in with the default options."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


class TestModule:
    """What segment_braze.testing exports and depends on."""

    def test_public_names(self):
        """segment_braze.testing exports exactly the stand-in, its records and Fault."""
        assert testing_module.__all__ == [
            "BrazeStandIn",
            "Fault",
            "IgnoredObject",
            "RecordedRequest",
        ]


class TestLifecycle:
    """Starting, stopping and configuring the stand-in."""

    def test_url_is_loopback_without_trailing_slash(self, braze):
        """The URL is http://127.0.0.1:PORT with no trailing slash."""
        assert braze.url.startswith("http://127.0.0.1:")
        assert not braze.url.endswith("/")

    def test_url_before_start_raises(self):
        """Asking for the URL of a stand-in that is not running is an error."""
        with pytest.raises(RuntimeError, match="not running"):
            _ = BrazeStandIn().url

    def test_start_twice_raises(self, braze):
        """A running stand-in cannot be started again."""
        with pytest.raises(RuntimeError, match="already running"):
            braze.start()

    def test_closed_stand_in_refuses_connections(self):
        """After the with block the port no longer answers."""
        with BrazeStandIn() as braze:
            url = braze.url
        with pytest.raises(requests.ConnectionError):
            requests.post(url + TRACK, json={}, headers=AUTH, timeout=2)

    def test_exit_abandons_delayed_answers(self):
        """Leaving the block while an answer is held back does not wait for it."""
        with BrazeStandIn() as braze:
            braze.inject(Fault.timeout_after_receipt(delay=60))
            with pytest.raises(requests.ReadTimeout):
                post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)
            wait_for(lambda: braze.requests)
        assert len(braze.accepted_events) == 1

    def test_usable_without_with(self):
        """start() and close() work like the context manager; close() is idempotent."""
        braze = BrazeStandIn().start()
        try:
            assert post(braze, TRACK, {"events": [event()]}).status_code == 201
        finally:
            braze.close()
            braze.close()
        with braze:  # and it starts again after closing
            assert post(braze, TRACK, {"events": [event()]}).status_code == 201

    def test_repr_hides_the_key(self):
        """The stand-in's repr never shows its API key."""
        with BrazeStandIn(api_key="SECRET-key-123") as braze:
            assert "SECRET" not in repr(braze)
            assert braze.url in repr(braze)

    @pytest.mark.parametrize(
        "options",
        [
            {"api_key": ""},
            {"max_body_bytes": 0},
            {"latency": -1},
            {"post_receipt_delay": -1},
            {"random_faults": 1.5},
            {"random_faults": -0.1},
            {"rate_limit": (0, 1.0)},
            {"rate_limit": (10, 0)},
            {"rate_limit_reset_style": "minutes"},
        ],
    )
    def test_invalid_options(self, options):
        """Out-of-range options are refused when the stand-in is built."""
        with pytest.raises(ValueError):  # noqa: PT011 (each option has its own message)
            BrazeStandIn(**options)


class TestTransport:
    """Braze's HTTP-level checks: method, path, key, content type, size, JSON."""

    def test_only_post(self, braze):
        """Any method but POST gets 405 with Allow: POST."""
        response = requests.get(braze.url + TRACK, headers=AUTH, timeout=5)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"

    def test_head_gets_405_without_body(self, braze):
        """HEAD is refused like any other method, with an empty body as HTTP requires."""
        response = requests.head(braze.url + TRACK, headers=AUTH, timeout=5)
        assert response.status_code == 405
        assert response.content == b""

    def test_unknown_path(self, braze):
        """A path that is not a Braze user endpoint gets 404 with a message."""
        response = post(braze, "/users/export/everything", {"events": [event()]})
        assert response.status_code == 404
        assert "message" in response.json()

    def test_trailing_slash(self, braze):
        """A trailing slash on a Braze path gets 403, as Braze answers."""
        assert post(braze, TRACK + "/", {"events": [event()]}).status_code == 403

    @pytest.mark.parametrize(
        "path", ["/users/track", "/users/identify", "/users/merge", "/users/delete"]
    )
    def test_missing_key(self, braze, path):
        """No Authorization header gets 401 'Invalid API key' on every endpoint."""
        response = requests.post(braze.url + path, json={}, timeout=5)
        assert response.status_code == 401
        assert response.json()["message"].startswith("Invalid API key")

    def test_wrong_key_is_not_echoed(self, braze):
        """A wrong key gets 401 and the presented key never appears in the answer."""
        response = post(
            braze, TRACK, {"events": [event()]}, headers={"Authorization": "Bearer SECRET-9f2"}
        )
        assert response.status_code == 401
        assert "SECRET" not in response.text
        assert braze.accepted_events == []

    @pytest.mark.parametrize("header", [KEY, f"Basic {KEY}", "Bearer", f"Bearer  {KEY}"])
    def test_malformed_authorization(self, braze, header):
        """Authorization must be exactly 'Bearer <key>'."""
        response = post(braze, TRACK, {"events": [event()]}, headers={"Authorization": header})
        assert response.status_code == 401

    @pytest.mark.parametrize(
        "content_type", [None, "text/plain", "application/x-www-form-urlencoded"]
    )
    def test_content_type_must_be_json(self, braze, content_type):
        """A missing or non-JSON Content-Type gets 415."""
        headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
        response = requests.post(braze.url + TRACK, data=b"{}", headers=headers, timeout=5)
        assert response.status_code == 415

    def test_content_type_parameters_allowed(self, braze):
        """application/json with a charset parameter is JSON."""
        response = requests.post(
            braze.url + TRACK,
            data=b'{"events": [{"external_id": "u1", "name": "x", "time": "2024-05-01"}]}',
            headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
            timeout=5,
        )
        assert response.status_code == 201

    def test_body_over_limit(self):
        """A body over max_body_bytes gets 413 and the connection still answers."""
        with BrazeStandIn(max_body_bytes=1000) as braze:
            big = {"events": [event(properties={"text": "x" * 200}) for _ in range(10)]}
            with requests.Session() as session:
                session.headers.update(AUTH)
                assert session.post(braze.url + TRACK, json=big, timeout=5).status_code == 413
                small = {"events": [event()]}
                assert session.post(braze.url + TRACK, json=small, timeout=5).status_code == 201
            assert len(braze.accepted_events) == 1

    @pytest.mark.parametrize(
        "raw",
        [b"{not json", b'{"events": NaN}', b"\xff\xfe", b"[]", b'"events"', b""],
        ids=["syntax", "nan", "not-utf8", "array", "string", "empty"],
    )
    def test_body_must_be_a_json_object(self, braze, raw):
        """Invalid JSON, or JSON that is not an object, gets 400."""
        response = requests.post(
            braze.url + TRACK,
            data=raw,
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=5,
        )
        assert response.status_code == 400

    def test_chunked_body_needs_length(self, braze):
        """A body without Content-Length (chunked) gets 411 and the connection is closed."""
        response = requests.post(
            braze.url + TRACK,
            data=iter([b"{}"]),
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=5,
        )
        assert response.status_code == 411
        assert response.headers["Connection"] == "close"

    def test_keep_alive(self, braze):
        """Several requests share one connection, as with Braze's load balancers."""
        with requests.Session() as session:
            for _ in range(3):
                response = session.post(
                    braze.url + TRACK, json={"events": [event()]}, headers=AUTH, timeout=5
                )
                assert response.status_code == 201
        assert len(braze.accepted_events) == 3


class TestRecordedRequests:
    """What the stand-in records about each request."""

    def test_every_request_is_recorded(self, braze):
        """Requests are recorded in order with method, path, status and parsed body."""
        post(braze, TRACK, {"events": [event()]})
        requests.get(braze.url + "/nowhere?x=1", timeout=5)
        first, second = braze.requests
        assert (first.method, first.path, first.status) == ("POST", TRACK, 201)
        assert first.body == {"events": [event()]}
        assert (second.method, second.path, second.status, second.body) == (
            "GET",
            "/nowhere?x=1",
            405,
            None,
        )
        assert isinstance(first.received_at, float)

    def test_headers_kept_with_lower_case_names(self, braze):
        """Headers are kept as sent, under lower-case names."""
        post(braze, TRACK, {"events": [event()]}, headers={"User-Agent": "my-pipeline/1.0"})
        headers = braze.requests[0].headers
        assert headers["user-agent"] == "my-pipeline/1.0"
        assert headers["content-type"] == "application/json"
        assert headers["authorization"] == f"Bearer {KEY}"

    def test_repr_hides_authorization(self, braze):
        """A recorded request's repr hides the Authorization value."""
        post(braze, TRACK, {"events": [event()]})
        text = repr(braze.requests[0])
        assert KEY not in text
        assert "authorization" in text

    def test_ledgers_are_copies(self, braze):
        """Changing a returned list does not change the stand-in's ledger."""
        post(braze, TRACK, {"events": [event()]})
        braze.requests.clear()
        braze.accepted_events.clear()
        assert len(braze.requests) == 1
        assert len(braze.accepted_events) == 1

    def test_recorded_request_is_a_value(self):
        """RecordedRequest is a frozen, keyword-only value."""
        recorded = RecordedRequest(
            method="POST", path=TRACK, headers={}, body=None, status=201, received_at=0.0
        )
        with pytest.raises(AttributeError):
            recorded.status = 500  # type: ignore[misc]


class TestTrackSuccess:
    """Successful /users/track answers and the ledgers."""

    def test_counts_only_arrays_sent(self, braze):
        """201 success names *_processed only for the arrays present."""
        response = post(braze, TRACK, {"events": [event(), event()]})
        assert response.status_code == 201
        assert response.json() == {"message": "success", "events_processed": 2}

    def test_all_three_arrays(self, braze):
        """Attributes, events and purchases are each counted and recorded in order."""
        body = {
            "attributes": [attributes(plan="pro")],
            "events": [event(name="A"), event(name="B")],
            "purchases": [purchase()],
        }
        assert post(braze, TRACK, body).json() == {
            "message": "success",
            "attributes_processed": 1,
            "events_processed": 2,
            "purchases_processed": 1,
        }
        assert braze.accepted_attributes == [attributes(plan="pro")]
        assert [e["name"] for e in braze.accepted_events] == ["A", "B"]
        assert braze.accepted_purchases == [purchase()]

    def test_partner_and_unknown_keys_ignored(self, braze):
        """Top-level keys other than the three arrays (such as partner) are ignored."""
        assert post(braze, TRACK, {"partner": "segment", "events": [event()]}).status_code == 201

    def test_profiles_merge_attributes(self, braze):
        """Profiles merge attributes: later values win, null unsets, inc and add apply."""
        post(braze, TRACK, {"attributes": [attributes(plan="free", visits=1, tags=["a"], x=1)]})
        post(
            braze,
            TRACK,
            {
                "attributes": [
                    attributes(plan="pro", visits={"inc": 2}, tags={"add": ["b"]}, x=None)
                ]
            },
        )
        assert braze.profiles == {
            ("external_id", "u1"): {"plan": "pro", "visits": 3, "tags": ["a", "b"]}
        }

    def test_operations_on_other_types(self, braze):
        """An inc on a non-number, or an add on a non-array, starts afresh instead of failing."""
        post(braze, TRACK, {"attributes": [attributes(n="text", tags="text")]})
        post(braze, TRACK, {"attributes": [attributes(n={"inc": 2}, tags={"add": ["a"]})]})
        assert braze.profiles[("external_id", "u1")] == {"n": 2, "tags": ["a"]}


class TestIdentifiers:
    """Braze's rule of exactly one primary identifier per object."""

    @pytest.mark.parametrize(
        ("array", "obj"),
        [
            ("events", without(event(), "external_id")),
            ("events", event(braze_id="b1")),
            ("events", event(user_alias=ALIAS)),
            ("events", event(external_id="")),
            ("events", event(external_id=12)),
            ("events", event(external_id=None)),
            ("events", event(external_id="é" * 494)),  # 988 bytes
            ("events", without(event(user_alias={"alias_name": "a"}), "external_id")),
            (
                "events",
                without(event(user_alias={"alias_name": "", "alias_label": "l"}), "external_id"),
            ),
            ("events", without(event(user_alias="anon-1"), "external_id")),
            ("events", without(event(braze_id=7), "external_id")),
            ("events", without(event(phone="555-0100"), "external_id")),
            ("purchases", without(purchase(), "external_id")),
            ("attributes", {"first_name": "Ann"}),
            ("attributes", {"email": "", "first_name": "Ann"}),
        ],
        ids=[
            "missing",
            "external-and-braze",
            "external-and-alias",
            "empty",
            "number",
            "null",
            "too-long",
            "alias-no-label",
            "alias-empty-name",
            "alias-not-object",
            "braze-id-number",
            "event-by-phone-not-e164",
            "purchase-missing",
            "attributes-missing",
            "attributes-empty-email",
        ],
    )
    def test_invalid_identifier(self, braze, array, obj):
        """Each object needs exactly one valid primary identifier."""
        response = post(braze, TRACK, {array: [obj]})
        assert response.status_code == 400
        assert response.json()["errors"][0]["input_array"] == array

    @pytest.mark.parametrize(
        "obj",
        [
            event(external_id="é" * 493 + "a"),  # 987 bytes
            without(event(braze_id="b-1"), "external_id"),
        ],
        ids=["external-id-987-bytes", "braze-id"],
    )
    def test_valid_identifier(self, braze, obj):
        """external_id up to 987 bytes and braze_id identify an event."""
        assert post(braze, TRACK, {"events": [obj]}).status_code == 201
        assert braze.accepted_events == [obj]

    @pytest.mark.parametrize("lookup", [{"email": "ann@example.com"}, {"phone": "+15555550100"}])
    def test_attributes_by_email_or_phone(self, braze, lookup):
        """An attributes object may identify by email or phone when no primary id is present."""
        assert (
            post(braze, TRACK, {"attributes": [{**lookup, "first_name": "Ann"}]}).status_code == 201
        )
        assert braze.accepted_attributes == [{**lookup, "first_name": "Ann"}]

    @pytest.mark.parametrize(
        ("lookup", "key"),
        [
            pytest.param({"email": "ann@example.com"}, ("email", "ann@example.com"), id="email"),
            pytest.param({"phone": "+15555550100"}, ("phone", "+15555550100"), id="phone"),
            pytest.param(
                {"email": "ann@example.com", "phone": "+15555550100"},
                ("email", "ann@example.com"),
                id="email-wins",
            ),
        ],
    )
    def test_events_and_purchases_by_email_or_phone(self, braze, lookup, key):
        """Events and purchases may name the user by email or phone; email wins over phone."""
        body = {
            "events": [{**without(event(), "external_id"), **lookup}],
            "purchases": [{**without(purchase(), "external_id"), **lookup}],
        }
        assert post(braze, TRACK, body).status_code == 201
        assert len(braze.accepted_events) == len(braze.accepted_purchases) == 1
        assert key in braze.profiles


class TestEventRules:
    """Braze's rules for event objects."""

    @pytest.mark.parametrize(
        "obj",
        [
            without(event(), "name"),
            event(name=""),
            event(name=5),
            event(name="n" * 256),
            without(event(), "time"),
            event(time=1714564800),
            event(time="yesterday"),
            event(time="2024-13-01T00:00:00Z"),
            event(time="2024-05-01T25:00:00Z"),
            event(time="2024-05-01T12:00:00+25:00"),
            event(properties=["a"]),
            event(properties={"": 1}),
            event(properties={"k" * 256: 1}),
            event(properties={"$revenue": 1}),
            event(properties={"time": TIME}),
            event(properties={"event_name": "x"}),
            event(properties={"text": "x" * 256}),
            event(properties={"blob": ["x" * 1000] * 110}),
            event(_update_existing_only="yes"),
            event(app_id=5),
            "not an object",
        ],
        ids=[
            "no-name",
            "empty-name",
            "name-number",
            "name-too-long",
            "no-time",
            "time-epoch",
            "time-words",
            "time-bad-month",
            "time-bad-hour",
            "time-bad-offset",
            "properties-array",
            "property-empty-key",
            "property-key-too-long",
            "property-dollar",
            "property-time-reserved",
            "property-event-name-reserved",
            "property-string-too-long",
            "properties-over-100kb",
            "update-only-not-bool",
            "app-id-number",
            "not-object",
        ],
    )
    def test_invalid_event(self, braze, obj):
        """Braze's event rules reject the object, named in errors and not recorded."""
        response = post(braze, TRACK, {"events": [event(), obj]})
        assert response.status_code == 201
        assert [(e["input_array"], e["index"]) for e in response.json()["errors"]] == [
            ("events", 1)
        ]
        assert braze.accepted_events == [event()]

    @pytest.mark.parametrize(
        "when",
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.123Z",
            "2024-05-01T12:00:00.123456+00:00",
            "2024-05-01T12:00:00+01:00",
            "2013-07-16T19:20:30+1:00",
            "2024-05-01T12:00:00-0800",
            "2013-07-16T19:20:30:000-0800",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "2024-05-01",
        ],
    )
    def test_time_forms_accepted(self, braze, when):
        """ISO 8601 times in the forms Braze documents are accepted."""
        assert post(braze, TRACK, {"events": [event(time=when)]}).status_code == 201

    def test_valid_properties(self, braze):
        """Properties with ordinary keys and nested values are accepted."""
        obj = event(properties={"plan": "pro", "n": 1, "nested": {"a": [1, 2]}}, app_id="app-1")
        assert post(braze, TRACK, {"events": [obj]}).status_code == 201
        assert braze.accepted_events == [obj]


class TestPurchaseRules:
    """Braze's rules for purchase objects."""

    @pytest.mark.parametrize(
        "obj",
        [
            without(purchase(), "product_id"),
            purchase(product_id=""),
            purchase(product_id="p" * 256),
            purchase(product_id=5),
            without(purchase(), "currency"),
            purchase(currency="usd"),
            purchase(currency="US"),
            purchase(currency="USDX"),
            without(purchase(), "price"),
            purchase(price="9.99"),
            purchase(price=True),
            purchase(quantity=0),
            purchase(quantity=101),
            purchase(quantity=1.5),
            purchase(quantity=True),
            without(purchase(), "time"),
            purchase(properties={"$x": 1}),
            purchase(properties={"blob": ["x" * 1000] * 60}),
            *(
                purchase(properties={key: 1})
                for key in ("time", "product_id", "quantity", "event_name", "price", "currency")
            ),
        ],
        ids=[
            "no-product",
            "empty-product",
            "product-too-long",
            "product-number",
            "no-currency",
            "currency-lower",
            "currency-short",
            "currency-long",
            "no-price",
            "price-string",
            "price-bool",
            "quantity-0",
            "quantity-101",
            "quantity-float",
            "quantity-bool",
            "no-time",
            "property-dollar",
            "properties-over-50kb",
            "reserved-time",
            "reserved-product_id",
            "reserved-quantity",
            "reserved-event_name",
            "reserved-price",
            "reserved-currency",
        ],
    )
    def test_invalid_purchase(self, braze, obj):
        """Braze's purchase rules reject the object, named in errors and not recorded."""
        response = post(braze, TRACK, {"purchases": [purchase(), obj]})
        assert response.status_code == 201
        assert [(e["input_array"], e["index"]) for e in response.json()["errors"]] == [
            ("purchases", 1)
        ]
        assert braze.accepted_purchases == [purchase()]

    @pytest.mark.parametrize(
        "obj",
        [purchase(price=0), purchase(price=12), purchase(quantity=1), purchase(quantity=100)],
        ids=["price-0", "price-int", "quantity-1", "quantity-100"],
    )
    def test_valid_purchase(self, braze, obj):
        """Price 0, integer prices and quantities 1..100 are accepted."""
        assert post(braze, TRACK, {"purchases": [obj]}).status_code == 201


class TestAttributeRules:
    """Braze's rules for attributes objects."""

    @pytest.mark.parametrize(
        "obj",
        [
            attributes(**{"k" * 256: 1}),
            attributes(**{"": 1}),
            attributes(bio="x" * 256),
            attributes(tags=["ok", "x" * 256]),
            attributes(_update_existing_only="false"),
            attributes(_merge_objects=1),
            attributes(push_tokens={"app_id": "a", "token": "t"}),
            attributes(push_tokens=[{"app_id": "a"}]),
            attributes(push_tokens=[{"token": "t"}]),
            attributes(push_tokens=["t"]),
            attributes(push_tokens=[{"app_id": "a", "token": "t", "device_id": "short"}]),
            ["external_id", "u1"],
        ],
        ids=[
            "key-too-long",
            "key-empty",
            "string-too-long",
            "array-item-too-long",
            "update-only-not-bool",
            "merge-objects-not-bool",
            "push-tokens-not-array",
            "push-token-no-token",
            "push-token-no-app",
            "push-token-not-object",
            "push-token-device-short",
            "not-object",
        ],
    )
    def test_invalid_attributes(self, braze, obj):
        """Braze's attribute rules reject the object, named in errors and not recorded."""
        response = post(braze, TRACK, {"attributes": [attributes(), obj]})
        assert response.status_code == 201
        assert [(e["input_array"], e["index"]) for e in response.json()["errors"]] == [
            ("attributes", 1)
        ]
        assert braze.accepted_attributes == [attributes()]

    def test_limits_are_inclusive(self, braze):
        """Keys and string values of exactly 255 characters are accepted."""
        obj = attributes(**{"k" * 255: "v" * 255})
        assert post(braze, TRACK, {"attributes": [obj]}).status_code == 201

    def test_push_tokens_accepted(self, braze):
        """push_tokens entries with app_id, token and a proper device_id are accepted."""
        tokens = [
            {"app_id": "a", "token": "t"},
            {"app_id": "a", "token": "u", "device_id": "d" * 8},
        ]
        assert (
            post(braze, TRACK, {"attributes": [attributes(push_tokens=tokens)]}).status_code == 201
        )


class TestMergeObjects:
    """Braze's _merge_objects: nested objects deep-merge instead of being replaced."""

    @pytest.mark.parametrize(
        ("merge", "stored"),
        [
            pytest.param(
                True,
                {"name": "Acme", "address": {"city": "Berlin", "zip": "10115"}, "size": 20},
                id="merged-at-every-level",
            ),
            pytest.param(False, {"address": {"zip": "10115"}, "size": 20}, id="replaced"),
        ],
    )
    def test_nested_object_update(self, braze, merge, stored):
        """With the flag, keys left out of the update keep their stored values."""
        first = {"name": "Acme", "address": {"city": "Berlin"}, "size": 10}
        update = {"address": {"zip": "10115"}, "size": 20}
        post(braze, TRACK, {"attributes": [attributes(company=first)]})
        flag = {"_merge_objects": True} if merge else {}
        post(braze, TRACK, {"attributes": [attributes(company=update, **flag)]})
        assert braze.profiles[("external_id", "u1")]["company"] == stored


class TestPartialAndTotalFailure:
    """Non-fatal errors, and requests with nothing valid in them."""

    def test_mixed_request(self, braze):
        """Invalid objects are listed in errors by array and index; the rest is processed."""
        body = {
            "attributes": [attributes(), {"no": "id"}],
            "events": [without(event(), "time"), event()],
        }
        response = post(braze, TRACK, body)
        assert response.status_code == 201
        payload = response.json()
        assert payload["message"] == "success"
        assert (payload["attributes_processed"], payload["events_processed"]) == (1, 1)
        assert [(e["input_array"], e["index"]) for e in payload["errors"]] == [
            ("attributes", 1),
            ("events", 0),
        ]
        assert all(isinstance(e["type"], str) and e["type"] for e in payload["errors"])
        assert braze.accepted_attributes == [attributes()]
        assert braze.accepted_events == [event()]

    def test_all_invalid_is_400(self, braze):
        """When every object is invalid Braze answers 400 with the errors; nothing is kept."""
        response = post(braze, TRACK, {"events": [event(name=""), event(time="soon")]})
        assert response.status_code == 400
        payload = response.json()
        assert payload["message"]
        assert [e["index"] for e in payload["errors"]] == [0, 1]
        assert braze.accepted_events == []
        assert braze.profiles == {}

    @pytest.mark.parametrize(
        "body",
        [{}, {"events": []}, {"events": [], "attributes": []}, {"partner": "x"}],
        ids=["empty", "empty-events", "empty-arrays", "no-arrays"],
    )
    def test_nothing_to_process_is_400(self, braze, body):
        """A /users/track body with no objects at all gets 400."""
        assert post(braze, TRACK, body).status_code == 400

    @pytest.mark.parametrize("array", ["attributes", "events", "purchases"])
    def test_array_must_be_array(self, braze, array):
        """attributes, events and purchases must be JSON arrays."""
        assert post(braze, TRACK, {array: {"external_id": "u1"}}).status_code == 400


class TestObjectLimit:
    """The 75-object limit of /users/track, current and legacy."""

    @staticmethod
    def body(n_attributes: int, n_events: int, n_purchases: int) -> dict[str, Any]:
        """A /users/track body with that many valid objects in each array."""
        return {
            "attributes": [attributes(i=i) for i in range(n_attributes)],
            "events": [event() for _ in range(n_events)],
            "purchases": [purchase() for _ in range(n_purchases)],
        }

    def test_75_in_total_accepted(self, braze):
        """Current accounts: 75 objects in total are accepted."""
        assert post(braze, TRACK, self.body(25, 25, 25)).status_code == 201

    @pytest.mark.parametrize("sizes", [(76, 0, 0), (0, 76, 0), (25, 25, 26)])
    def test_76_in_total_refused(self, braze, sizes):
        """Current accounts: 76 objects in total get 400 Max Input Length Exceeded, nothing kept."""
        response = post(braze, TRACK, self.body(*sizes))
        assert response.status_code == 400
        assert response.json()["message"] == "Max Input Length Exceeded"
        assert braze.accepted_attributes == braze.accepted_events == []

    def test_legacy_75_per_array_accepted(self):
        """Legacy accounts: 75 of each array (225 objects) are accepted."""
        with BrazeStandIn(legacy_limits=True) as braze:
            assert post(braze, TRACK, self.body(75, 75, 75)).status_code == 201
            assert len(braze.accepted_events) == 75

    @pytest.mark.parametrize("sizes", [(76, 0, 0), (0, 76, 0), (0, 0, 76), (75, 76, 75)])
    def test_legacy_76_in_one_array_refused(self, sizes):
        """Legacy accounts: 76 objects in any one array get 400 Max Input Length Exceeded."""
        with BrazeStandIn(legacy_limits=True) as braze:
            response = post(braze, TRACK, self.body(*sizes))
            assert response.status_code == 400
            assert response.json()["message"] == "Max Input Length Exceeded"


class TestUpdateOnly:
    """Objects Braze answers as processed but drops for unknown users."""

    def test_update_only_unknown_user_dropped(self, braze):
        """_update_existing_only for an unknown external_id: success, but not kept."""
        obj = attributes(_update_existing_only=True, plan="pro")
        response = post(braze, TRACK, {"attributes": [obj]})
        assert response.json() == {"message": "success", "attributes_processed": 1}
        assert braze.accepted_attributes == []
        (ignored,) = braze.ignored
        assert (ignored.input_array, ignored.index, ignored.data) == ("attributes", 0, obj)
        assert "_update_existing_only" in ignored.reason
        assert braze.profiles == {}

    def test_update_only_known_user_kept(self, braze):
        """_update_existing_only is kept once the user exists."""
        post(braze, TRACK, {"attributes": [attributes(plan="free")]})
        post(braze, TRACK, {"attributes": [attributes(_update_existing_only=True, plan="pro")]})
        assert len(braze.accepted_attributes) == 2
        assert braze.profiles[("external_id", "u1")] == {"plan": "pro"}

    def test_event_creates_user(self, braze):
        """An event by external_id creates the user."""
        post(braze, TRACK, {"events": [event()]})
        post(braze, TRACK, {"attributes": [attributes(_update_existing_only=True, a=1)]})
        assert braze.ignored == []
        assert ("external_id", "u1") in braze.profiles

    @pytest.mark.parametrize(("array", "make"), [("events", event), ("purchases", purchase)])
    def test_update_only_event_unknown_user(self, braze, array, make):
        """An update-only event or purchase for an unknown user is dropped."""
        post(braze, TRACK, {array: [make(_update_existing_only=True)]})
        assert braze.accepted_events == braze.accepted_purchases == []
        assert [i.input_array for i in braze.ignored] == [array]

    def test_alias_attributes_default_to_update_only(self, braze):
        """Attributes by an unknown alias without _update_existing_only: false are dropped."""
        post(braze, TRACK, {"attributes": [{"user_alias": ALIAS, "plan": "pro"}]})
        assert braze.accepted_attributes == []
        assert len(braze.ignored) == 1

    @pytest.mark.parametrize(("array", "make"), [("events", event), ("purchases", purchase)])
    def test_alias_events_unknown_alias(self, braze, array, make):
        """Events and purchases by an alias that does not exist are dropped."""
        obj = without(make(user_alias=ALIAS), "external_id")
        response = post(braze, TRACK, {array: [obj]})
        assert response.status_code == 201
        assert braze.ignored == [
            IgnoredObject(input_array=array, index=0, data=obj, reason=braze.ignored[0].reason)
        ]

    def test_alias_created_then_events_in_same_request(self, braze):
        """Attributes are processed first: an alias created in a request takes its events."""
        alias_event = without(event(user_alias=ALIAS), "external_id")
        body = {
            "events": [alias_event],
            "attributes": [{"user_alias": ALIAS, "_update_existing_only": False, "plan": "pro"}],
        }
        post(braze, TRACK, body)
        assert braze.accepted_events == [alias_event]
        assert braze.ignored == []
        assert braze.profiles == {ALIAS_KEY: {"plan": "pro"}}

    def test_braze_id_always_kept(self, braze):
        """braze_ids are Braze's own: the stand-in takes them as existing users."""
        obj = {"braze_id": "b-1", "_update_existing_only": True, "a": 1}
        post(braze, TRACK, {"attributes": [obj]})
        assert braze.accepted_attributes == [obj]

    def test_email_lookup_finds_existing_user(self, braze):
        """An update-only attributes object by email updates the user holding that email."""
        post(braze, TRACK, {"attributes": [attributes(email="ann@example.com")]})
        lookup = {"email": "ann@example.com", "_update_existing_only": True, "plan": "pro"}
        post(braze, TRACK, {"attributes": [lookup]})
        assert braze.ignored == []
        assert braze.profiles == {
            ("external_id", "u1"): {"email": "ann@example.com", "plan": "pro"}
        }

    def test_processed_count_includes_dropped(self, braze):
        """Braze counts dropped update-only objects as processed."""
        response = post(braze, TRACK, {"events": [event(_update_existing_only=True), event()]})
        assert response.json()["events_processed"] == 2
        assert len(braze.accepted_events) == 1


class TestOtherEndpoints:
    """/users/identify, /users/merge, /users/delete and /users/alias/new."""

    def test_identify(self, braze):
        """/users/identify: 201 success, merges the alias profile into the user."""
        post(
            braze,
            TRACK,
            {"attributes": [{"user_alias": ALIAS, "_update_existing_only": False, "plan": "pro"}]},
        )
        entry = {"external_id": "u1", "user_alias": ALIAS}
        response = post(braze, "/users/identify", {"aliases_to_identify": [entry]})
        assert (response.status_code, response.json()) == (201, {"message": "success"})
        assert braze.accepted_entries("/users/identify") == [entry]
        assert braze.profiles == {("external_id", "u1"): {"plan": "pro"}}
        alias_event = without(event(user_alias=ALIAS), "external_id")
        post(braze, TRACK, {"events": [alias_event]})
        assert braze.accepted_events == [alias_event]

    def test_merge(self, braze):
        """/users/merge: 202; the kept user gains missing fields, the merged one is gone."""
        post(
            braze, TRACK, {"attributes": [attributes(a=1), attributes(external_id="u2", a=2, b=3)]}
        )
        entry = {
            "identifier_to_merge": {"external_id": "u2"},
            "identifier_to_keep": {"external_id": "u1"},
        }
        response = post(braze, "/users/merge", {"merge_updates": [entry]})
        assert (response.status_code, response.json()) == (202, {"message": "success"})
        assert braze.accepted_entries("/users/merge") == [entry]
        assert braze.profiles == {("external_id", "u1"): {"a": 1, "b": 3}}

    def test_delete(self, braze):
        """/users/delete: 200 with deleted count; the user no longer exists."""
        post(braze, TRACK, {"events": [event()]})
        response = post(braze, "/users/delete", {"external_ids": ["u1", "u2"]})
        assert (response.status_code, response.json()) == (
            200,
            {"deleted": 2, "message": "success"},
        )
        assert braze.accepted_entries("/users/delete") == ["u1", "u2"]
        post(braze, TRACK, {"attributes": [attributes(_update_existing_only=True)]})
        assert len(braze.ignored) == 1

    def test_delete_by_alias(self, braze):
        """/users/delete takes user_aliases and removes the alias-only user."""
        post(braze, "/users/alias/new", {"user_aliases": [ALIAS]})
        assert post(braze, "/users/delete", {"user_aliases": [ALIAS]}).status_code == 200
        assert braze.profiles == {}

    def test_alias_new(self, braze):
        """/users/alias/new: 201; the alias-only user then takes events."""
        response = post(braze, "/users/alias/new", {"user_aliases": [ALIAS]})
        assert (response.status_code, response.json()) == (201, {"message": "success"})
        assert braze.accepted_entries("/users/alias/new") == [ALIAS]
        post(braze, TRACK, {"events": [without(event(user_alias=ALIAS), "external_id")]})
        assert len(braze.accepted_events) == 1

    def test_alias_new_for_user(self, braze):
        """/users/alias/new with external_id adds the alias to that user."""
        post(braze, "/users/alias/new", {"user_aliases": [{**ALIAS, "external_id": "u1"}]})
        post(braze, TRACK, {"attributes": [{"user_alias": ALIAS, "plan": "pro"}]})
        assert braze.profiles == {("external_id", "u1"): {"plan": "pro"}}

    @pytest.mark.parametrize(
        ("path", "array", "entry"),
        [
            ("/users/identify", "aliases_to_identify", {"external_id": "u1", "user_alias": ALIAS}),
            (
                "/users/merge",
                "merge_updates",
                {
                    "identifier_to_merge": {"external_id": "a"},
                    "identifier_to_keep": {"external_id": "b"},
                },
            ),
            ("/users/delete", "external_ids", "u1"),
            ("/users/alias/new", "user_aliases", ALIAS),
        ],
    )
    def test_50_entries(self, braze, path, array, entry):
        """Each non-track endpoint takes 50 entries and refuses 51 with 400."""
        assert post(braze, path, {array: [entry] * 50}).status_code < 300
        response = post(braze, path, {array: [entry] * 51})
        assert response.status_code == 400
        assert len(braze.accepted_entries(path)) == 50

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/users/identify", {"aliases_to_identify": [{"user_alias": ALIAS}]}),
            ("/users/identify", {"aliases_to_identify": [{"external_id": "u1"}]}),
            ("/users/identify", {}),
            ("/users/identify", {"aliases_to_identify": []}),
            (
                "/users/merge",
                {"merge_updates": [{"identifier_to_merge": {"external_id": "a"}}]},
            ),
            (
                "/users/merge",
                {
                    "merge_updates": [
                        {
                            "identifier_to_merge": {"external_id": "a", "email": "a@x.io"},
                            "identifier_to_keep": {"external_id": "b"},
                        }
                    ]
                },
            ),
            ("/users/delete", {"external_ids": ["u1"], "braze_ids": ["b1"]}),
            ("/users/delete", {"external_ids": [5]}),
            ("/users/delete", {}),
            ("/users/alias/new", {"user_aliases": [{"alias_name": "n"}]}),
            ("/users/alias/new", {"user_aliases": [{**ALIAS, "external_id": 5}]}),
        ],
        ids=[
            "identify-no-external-id",
            "identify-no-alias",
            "identify-no-array",
            "identify-empty-array",
            "merge-no-keep",
            "merge-two-identifiers",
            "delete-two-kinds",
            "delete-not-string",
            "delete-nothing",
            "alias-no-label",
            "alias-external-id-number",
        ],
    )
    def test_invalid_body(self, braze, path, body):
        """A malformed entry refuses the whole request with 400; nothing is kept."""
        response = post(braze, path, body)
        assert response.status_code == 400
        assert response.json()["message"]
        assert braze.accepted_entries(path) == []

    def test_track_has_its_own_ledgers(self, braze):
        """accepted_entries is for the other endpoints; /users/track has accepted_*."""
        with pytest.raises(ValueError, match="no entry ledger"):
            braze.accepted_entries(TRACK)


ANN = "ann@example.com"
PRIORITY = ["unidentified", "most_recently_updated"]


def email_entry(**fields: Any) -> dict[str, Any]:
    """An emails_to_identify entry merging ANN's email-only profile into u1."""
    return {"external_id": "u1", "email": ANN, "prioritization": PRIORITY, **fields}


class TestEmailsToIdentify:
    """/users/identify emails_to_identify: email-only profiles merge into the known user."""

    def test_email_only_profile_merged(self, braze):
        """The email-only profile's data joins the user; later writes by email reach it."""
        post(braze, TRACK, {"attributes": [{"email": ANN, "plan": "pro"}]})
        post(braze, TRACK, {"attributes": [attributes(seats=3)]})
        response = post(braze, "/users/identify", {"emails_to_identify": [email_entry()]})
        assert (response.status_code, response.json()) == (201, {"message": "success"})
        assert braze.accepted_entries("/users/identify") == [email_entry()]
        assert braze.profiles == {("external_id", "u1"): {"seats": 3, "email": ANN, "plan": "pro"}}
        post(braze, TRACK, {"attributes": [{"email": ANN, "vip": True}]})
        assert braze.profiles[("external_id", "u1")]["vip"] is True

    def test_nothing_merged_when_the_user_has_the_email_too(self, braze):
        """Braze: when the email also matches the identified user, nothing is merged."""
        post(braze, TRACK, {"attributes": [{"email": ANN, "plan": "pro"}]})
        post(braze, TRACK, {"attributes": [attributes(email=ANN)]})
        response = post(braze, "/users/identify", {"emails_to_identify": [email_entry()]})
        assert response.status_code == 201
        assert len(braze.profiles) == 2

    def test_prioritization_picks_the_most_recent(self, braze):
        """Among several unidentified holders, most_recently_updated picks the last one."""
        alias_b = {"alias_name": "b", "alias_label": "l"}
        post(braze, TRACK, {"attributes": [{"email": ANN, "first": True}]})
        post(
            braze,
            TRACK,
            {"attributes": [{"user_alias": alias_b, "_update_existing_only": False, "email": ANN}]},
        )
        post(braze, "/users/identify", {"emails_to_identify": [email_entry()]})
        assert ("user_alias", "b", "l") not in braze.profiles
        assert ("email", ANN) in braze.profiles

    def test_both_arrays_in_one_request(self, braze):
        """One request may carry aliases_to_identify and emails_to_identify together."""
        post(braze, TRACK, {"attributes": [{"user_alias": ALIAS, "_update_existing_only": False}]})
        body = {
            "aliases_to_identify": [{"external_id": "u1", "user_alias": ALIAS}],
            "emails_to_identify": [email_entry()],
        }
        assert post(braze, "/users/identify", body).status_code == 201
        assert len(braze.accepted_entries("/users/identify")) == 2

    @pytest.mark.parametrize(
        "entry",
        [
            pytest.param(without(email_entry(), "prioritization"), id="no-prioritization"),
            pytest.param(email_entry(prioritization=[]), id="empty-prioritization"),
            pytest.param(email_entry(prioritization=["newest"]), id="unknown-rule"),
            pytest.param(
                email_entry(prioritization=["identified", "unidentified"]), id="both-kinds"
            ),
            pytest.param(email_entry(email=""), id="empty-email"),
            pytest.param(without(email_entry(), "external_id"), id="no-external-id"),
        ],
    )
    def test_invalid_entry(self, braze, entry):
        """An entry Braze would refuse refuses the request with 400 naming it."""
        response = post(braze, "/users/identify", {"emails_to_identify": [entry]})
        assert response.status_code == 400
        assert response.json()["message"].startswith("emails_to_identify[0]")


class TestInjectedFaults:
    """Faults queued with inject()."""

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 401, 403, 404])
    def test_status(self, braze, status):
        """Fault.status answers that status with a Braze-like message; nothing is kept."""
        braze.inject(Fault.status(status))
        response = post(braze, TRACK, {"events": [event()]})
        assert response.status_code == status
        assert set(response.json()) == {"message"}
        assert braze.accepted_events == []
        assert braze.requests[0].fault == Fault.status(status)

    def test_one_shot(self, braze):
        """An injected fault applies to one request; the next is answered normally."""
        braze.inject(Fault.status(500))
        assert post(braze, TRACK, {"events": [event()]}).status_code == 500
        assert post(braze, TRACK, {"events": [event()]}).status_code == 201

    def test_times(self, braze):
        """times=3 applies the fault to the next three requests."""
        braze.inject(Fault.status(503), times=3)
        statuses = [post(braze, TRACK, {"events": [event()]}).status_code for _ in range(4)]
        assert statuses == [503, 503, 503, 201]

    def test_queue_order(self, braze):
        """Faults are consumed in the order they were injected."""
        braze.inject(Fault.status(500))
        braze.inject(Fault.status(502))
        statuses = [post(braze, TRACK, {"events": [event()]}).status_code for _ in range(3)]
        assert statuses == [500, 502, 201]

    def test_path_filter(self, braze):
        """A fault with a path waits for a request to that path."""
        braze.inject(Fault.status(503), path="/users/identify")
        assert post(braze, TRACK, {"events": [event()]}).status_code == 201
        identify = {"aliases_to_identify": [{"external_id": "u1", "user_alias": ALIAS}]}
        assert post(braze, "/users/identify", identify).status_code == 503

    def test_fault_precedes_checks(self, braze):
        """An injected 5xx answers before Braze's own checks, as an outage would."""
        braze.inject(Fault.status(502))
        assert post(braze, TRACK, {}, headers={"Authorization": "Bearer wrong"}).status_code == 502

    @pytest.mark.parametrize("code", [429, 413, 200, 418])
    def test_status_refuses_other_codes(self, code):
        """Fault.status only takes the error codes Braze answers with a message body."""
        with pytest.raises(ValueError, match="status must be one of"):
            Fault.status(code)

    def test_rate_limited_retry_after(self, braze):
        """rate_limited(retry_after=) answers 429 with only X-Ratelimit-Retry-After."""
        braze.inject(Fault.rate_limited(retry_after=7))
        response = post(braze, TRACK, {"events": [event()]})
        assert response.status_code == 429
        assert response.headers["X-Ratelimit-Retry-After"] == "7"
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert name not in response.headers

    def test_rate_limited_reset_epoch(self, braze):
        """reset_style='epoch' sends X-RateLimit-Reset as UTC epoch seconds reset_in ahead."""
        braze.inject(Fault.rate_limited(reset_in=5, reset_style="epoch"))
        before = time.time()
        response = post(braze, TRACK, {"events": [event()]})
        after = time.time()
        assert response.status_code == 429
        reset = int(response.headers["X-RateLimit-Reset"])
        assert before + 5 <= reset <= after + 6
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Limit"]) > 0

    def test_rate_limited_reset_seconds(self, braze):
        """reset_style='seconds' sends X-RateLimit-Reset as the seconds remaining."""
        braze.inject(Fault.rate_limited(reset_in=5, reset_style="seconds"))
        response = post(braze, TRACK, {"events": [event()]})
        assert response.status_code == 429
        assert response.headers["X-RateLimit-Reset"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == "0"

    @pytest.mark.parametrize(
        "arguments",
        [{}, {"retry_after": 1, "reset_in": 1}, {"retry_after": -1}, {"reset_in": -1}],
    )
    def test_rate_limited_needs_one_delay(self, arguments):
        """rate_limited takes exactly one of retry_after and reset_in, non-negative."""
        with pytest.raises(ValueError, match="exactly one"):
            Fault.rate_limited(**arguments)

    def test_rate_limited_reset_style(self):
        """reset_style is 'epoch' or 'seconds'."""
        with pytest.raises(ValueError, match="reset_style"):
            Fault.rate_limited(reset_in=1, reset_style="minutes")  # type: ignore[arg-type]

    def test_disconnect(self, braze):
        """Fault.disconnect drops the connection unanswered; the request is seen, nothing kept."""
        braze.inject(Fault.disconnect())
        with pytest.raises(requests.ConnectionError):
            post(braze, TRACK, {"events": [event()]})
        assert braze.accepted_events == []
        (recorded,) = braze.requests
        assert (recorded.status, recorded.body, recorded.fault) == (None, None, Fault.disconnect())
        assert post(braze, TRACK, {"events": [event()]}).status_code == 201

    def test_timeout_after_receipt_keeps_data(self, braze):
        """timeout_after_receipt keeps the objects although the client times out."""
        braze.inject(Fault.timeout_after_receipt(delay=5))
        with pytest.raises(requests.ReadTimeout):
            post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)
        wait_for(lambda: braze.requests)
        assert braze.accepted_events == [event()]
        assert braze.requests[0].status == 201

    def test_retry_after_timeout_duplicates(self, braze):
        """A retry after a timeout-after-receipt records the event twice (Braze does not dedupe)."""
        braze.inject(Fault.timeout_after_receipt(delay=5))
        with pytest.raises(requests.ReadTimeout):
            post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)
        wait_for(lambda: braze.requests)
        assert post(braze, TRACK, {"events": [event()]}).status_code == 201
        assert braze.accepted_events == [event(), event()]

    def test_timeout_after_receipt_default_delay(self):
        """Without a delay, timeout_after_receipt holds the answer post_receipt_delay seconds."""
        with BrazeStandIn(post_receipt_delay=5) as braze:
            braze.inject(Fault.timeout_after_receipt())
            with pytest.raises(requests.ReadTimeout):
                post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)
            wait_for(lambda: braze.requests)
            assert len(braze.accepted_events) == 1

    def test_slow_answers_normally(self, braze):
        """Fault.slow delays the answer, which is then the normal one."""
        braze.inject(Fault.slow(delay=0.05))
        assert post(braze, TRACK, {"events": [event()]}).status_code == 201
        assert braze.accepted_events == [event()]

    def test_slow_times_out_a_short_client(self, braze):
        """A slow answer times out a client with a shorter read timeout."""
        braze.inject(Fault.slow(delay=5))
        with pytest.raises(requests.ReadTimeout):
            post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)

    @pytest.mark.parametrize("make", [Fault.slow, Fault.timeout_after_receipt])
    def test_negative_delay_refused(self, make):
        """Delays must not be negative."""
        with pytest.raises(ValueError, match="delay"):
            make(delay=-1)

    def test_partial_errors(self, braze):
        """partial_errors names the objects in errors, drops them and processes the rest."""
        braze.inject(Fault.partial_errors(("events", 0), ("attributes", 2), ("purchases", 9)))
        body = {
            "attributes": [attributes(i=0), attributes(i=1), attributes(i=2)],
            "events": [event(name="A"), event(name="B")],
        }
        response = post(braze, TRACK, body)
        assert response.status_code == 201
        payload = response.json()
        assert [(e["input_array"], e["index"]) for e in payload["errors"]] == [
            ("attributes", 2),
            ("events", 0),
        ]
        assert (payload["attributes_processed"], payload["events_processed"]) == (2, 1)
        assert [a["i"] for a in braze.accepted_attributes] == [0, 1]
        assert [e["name"] for e in braze.accepted_events] == ["B"]

    def test_partial_errors_on_every_object(self, braze):
        """partial_errors on every object is Braze's 400 with errors."""
        braze.inject(Fault.partial_errors(("events", 0)))
        response = post(braze, TRACK, {"events": [event()]})
        assert response.status_code == 400
        assert response.json()["errors"][0]["index"] == 0
        assert braze.accepted_events == []

    def test_partial_errors_wait_for_track(self, braze):
        """partial_errors without a path waits for a /users/track request."""
        braze.inject(Fault.partial_errors(("events", 1)))
        assert post(braze, "/users/alias/new", {"user_aliases": [ALIAS]}).status_code == 201
        response = post(braze, TRACK, {"events": [event(), event()]})
        assert response.json()["errors"][0]["index"] == 1

    @pytest.mark.parametrize(
        "objects", [(), (("users", 0),), (("events", -1),), (("events", "0"),)]
    )
    def test_partial_errors_arguments(self, objects):
        """partial_errors needs (array, index) pairs with a known array and index >= 0."""
        with pytest.raises(ValueError, match="array"):
            Fault.partial_errors(*objects)

    def test_too_large(self, braze):
        """too_large answers 413 whatever the size."""
        braze.inject(Fault.too_large())
        assert post(braze, TRACK, {"events": [event()]}).status_code == 413
        assert braze.accepted_events == []

    @pytest.mark.parametrize(("times", "path"), [(0, None), (1, "users/track")])
    def test_inject_arguments(self, braze, times, path):
        """Inject needs times >= 1 and a path starting with '/'."""
        with pytest.raises(ValueError):  # noqa: PT011 (two different messages)
            braze.inject(Fault.status(500), times=times, path=path)

    def test_latency(self):
        """The latency option delays every answer: a shorter read timeout gives up."""
        with BrazeStandIn(latency=5) as braze, pytest.raises(requests.ReadTimeout):
            post(braze, TRACK, {"events": [event()]}, timeout=SHORT_READ)


class TestRateLimit:
    """The rate_limit option and its X-RateLimit-* headers."""

    def test_headers_and_429(self):
        """Beyond rate_limit requests per window: 429 with X-RateLimit-* headers (epoch reset)."""
        with BrazeStandIn(rate_limit=(2, 60.0)) as braze:
            before = time.time()
            responses = [post(braze, TRACK, {"events": [event()]}) for _ in range(3)]
            after = time.time()
        assert [r.status_code for r in responses] == [201, 201, 429]
        assert [r.headers["X-RateLimit-Limit"] for r in responses] == ["2", "2", "2"]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
        reset = int(responses[2].headers["X-RateLimit-Reset"])
        assert before <= reset <= after + 61
        assert reset > 10**9  # an epoch, not a count
        assert len(braze.accepted_events) == 2

    def test_reset_in_seconds(self):
        """rate_limit_reset_style='seconds' sends X-RateLimit-Reset as seconds remaining."""
        with BrazeStandIn(rate_limit=(1, 60.0), rate_limit_reset_style="seconds") as braze:
            post(braze, TRACK, {"events": [event()]})
            response = post(braze, TRACK, {"events": [event()]})
        assert response.status_code == 429
        assert 1 <= int(response.headers["X-RateLimit-Reset"]) <= 60

    def test_refused_keys_do_not_count(self):
        """Requests refused for their key do not use up the limit."""
        with BrazeStandIn(rate_limit=(1, 60.0)) as braze:
            post(braze, TRACK, {}, headers={"Authorization": "Bearer wrong"})
            assert post(braze, TRACK, {"events": [event()]}).status_code == 201

    def test_no_headers_without_limit(self, braze):
        """Without rate_limit no X-RateLimit headers are sent."""
        response = post(braze, TRACK, {"events": [event()]})
        assert "X-RateLimit-Limit" not in response.headers


def run_random(braze: BrazeStandIn, count: int = 24) -> list[tuple[int | None, Fault | None]]:
    """Send requests one at a time; return the status and fault the stand-in recorded.

    Each request is awaited on the stand-in's side before the next is sent, so
    the order of random draws is fixed whatever the client saw.
    """
    for i in range(count):
        body = {"events": [event(name=f"e{i}"), event(name=f"f{i}")]}
        with contextlib.suppress(requests.RequestException):  # faults are expected
            post(braze, TRACK, body, timeout=SHORT_READ)
        wait_for(lambda: len(braze.requests) > i)  # noqa: B023 (used before i changes)
    return [(r.status, r.fault) for r in braze.requests[-count:]]


class TestRandomFaults:
    """random_faults and its seed."""

    OPTIONS: dict[str, Any] = {"random_faults": 0.5, "post_receipt_delay": 5}  # noqa: RUF012

    def test_same_seed_same_faults(self):
        """The same seed and the same requests meet the same faults and keep the same data."""
        runs = []
        for _ in range(2):
            with BrazeStandIn(seed=7, **self.OPTIONS) as braze:
                runs.append((run_random(braze), braze.accepted_events))
        assert runs[0] == runs[1]
        faults = [fault for _, fault in runs[0][0]]
        assert any(fault is not None for fault in faults)
        assert any(fault is None for fault in faults)

    def test_other_seed_other_faults(self):
        """A different seed gives a different sequence of faults."""
        sequences = []
        for seed in (1, 2):
            with BrazeStandIn(seed=seed, **self.OPTIONS) as braze:
                sequences.append(run_random(braze))
        assert sequences[0] != sequences[1]

    def test_reset_restarts_the_sequence(self):
        """reset() restarts the random faults from the seed."""
        with BrazeStandIn(seed=3, **self.OPTIONS) as braze:
            first = run_random(braze, 10)
            braze.reset()
            assert run_random(braze, 10) == first

    def test_every_request_faulted_at_probability_one(self):
        """random_faults=1.0 faults every request, drawn from the documented mix."""
        with BrazeStandIn(random_faults=1.0, post_receipt_delay=5) as braze:
            seen = run_random(braze, 16)
        kinds = {fault.kind for _, fault in seen if fault is not None}
        assert all(fault is not None for _, fault in seen)
        assert kinds <= {
            "rate_limited",
            "status",
            "disconnect",
            "timeout_after_receipt",
            "partial_errors",
        }
        assert len(kinds) > 1

    def test_random_partial_error_keeps_one_object(self):
        """A random partial error fails one object of several; the request still succeeds."""
        with BrazeStandIn(random_faults=1.0, seed=0, post_receipt_delay=5) as braze:
            seen = run_random(braze, 40)
        partial = [
            (status, fault) for status, fault in seen if fault and fault.kind == "partial_errors"
        ]
        assert partial
        for status, fault in partial:
            assert status == 201
            assert len(fault.objects) == 1

    def test_random_faults_spare_unknown_paths(self):
        """Random faults are drawn only for Braze's paths."""
        with BrazeStandIn(random_faults=1.0) as braze:
            assert post(braze, "/elsewhere", {}).status_code == 404

    def test_no_faults_by_default(self, braze):
        """random_faults defaults to 0: nothing is injected."""
        assert run_random(braze, 10) == [(201, None)] * 10


class TestConcurrency:
    """Concurrent requests."""

    def test_parallel_requests_all_recorded(self, braze):
        """Concurrent requests are all answered and all recorded, none lost."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(lambda i: post(braze, TRACK, {"events": [event(name=f"e{i}")]}), range(40))
            )
        assert {r.status_code for r in responses} == {201}
        assert sorted(e["name"] for e in braze.accepted_events) == sorted(
            f"e{i}" for i in range(40)
        )
        assert len(braze.requests) == 40

    def test_delayed_answer_does_not_block_others(self):
        """A request whose answer is held back does not stop others being answered."""
        with BrazeStandIn() as braze, ThreadPoolExecutor(max_workers=1) as pool:
            braze.inject(Fault.timeout_after_receipt(delay=60))
            held = pool.submit(post, braze, TRACK, {"events": [event()]}, timeout=(5, 60))
            wait_for(lambda: braze.requests)
            assert post(braze, TRACK, {"events": [event()]}).status_code == 201
            assert not held.done()
            braze.close()  # releases the held answer; the pool can then finish
            held.exception()


class TestReset:
    """reset()."""

    def test_reset_forgets_everything(self, braze):
        """reset() clears requests, ledgers, ignored objects, users and queued faults."""
        post(
            braze, TRACK, {"events": [event(), event(external_id="u2", _update_existing_only=True)]}
        )
        post(braze, "/users/alias/new", {"user_aliases": [ALIAS]})
        braze.inject(Fault.status(500))
        braze.reset()
        assert braze.requests == []
        assert braze.accepted_events == []
        assert braze.accepted_entries("/users/alias/new") == []
        assert braze.ignored == []
        assert braze.profiles == {}
        assert (
            post(braze, TRACK, {"attributes": [attributes(_update_existing_only=True)]}).status_code
            == 201
        )
        assert len(braze.ignored) == 1


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELDS = st.sampled_from(
    [
        "external_id",
        "user_alias",
        "braze_id",
        "email",
        "name",
        "time",
        "product_id",
        "currency",
        "price",
        "quantity",
        "properties",
        "_update_existing_only",
        "push_tokens",
        "alias_name",
        "alias_label",
        "identifier_to_merge",
        "identifier_to_keep",
    ]
)
OBJECTS = st.dictionaries(FIELDS, JSON, max_size=6) | JSON
ARRAYS = st.sampled_from(
    [
        "attributes",
        "events",
        "purchases",
        "aliases_to_identify",
        "merge_updates",
        "external_ids",
        "user_aliases",
    ]
)
BODIES = st.dictionaries(ARRAYS, st.lists(OBJECTS, max_size=4), max_size=3) | JSON
PATHS = st.sampled_from(
    ["/users/track", "/users/identify", "/users/merge", "/users/delete", "/users/alias/new"]
)


@pytest.fixture(scope="module")
def shared_braze():
    """One stand-in for the property tests, so each example costs one request."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


class TestAnyInput:
    """Whatever arrives, the stand-in answers like Braze and never breaks."""

    @given(path=PATHS, body=BODIES)
    @settings(max_examples=30, deadline=None)
    def test_any_body_gets_an_answer(self, shared_braze, path, body):
        """Any JSON body gets a success or a 400 with a message, never a dropped connection."""
        response = requests.post(
            shared_braze.url + path,
            data=json.dumps(body),  # not json=: requests sends no body at all for None
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=5,
        )
        assert response.status_code in {200, 201, 202, 400}
        assert response.json()["message"]

    @given(
        body=st.dictionaries(
            st.sampled_from(["attributes", "events", "purchases"]),
            st.lists(OBJECTS, min_size=1, max_size=4),
            min_size=1,
        )
    )
    @settings(max_examples=30, deadline=None)
    def test_every_object_accounted_for(self, shared_braze, body):
        """On 201, each array's processed count plus its errors equals its length."""
        response = post(shared_braze, TRACK, body)
        if response.status_code == 201:
            payload = response.json()
            errors = payload.get("errors", [])
            for array, objects in body.items():
                failed = [e for e in errors if e["input_array"] == array]
                assert payload[f"{array}_processed"] + len(failed) == len(objects)
        else:
            assert response.status_code == 400
