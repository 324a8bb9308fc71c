import copy
import json
import math
import re

import pycountry
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import (
    ecommerce_messages,
    json_values,
    messages,
    python_built_values,
    python_json_values,
    translation_settings,
)

from segment_braze import InvalidMessage, Settings, Translation, translate
from segment_braze.testing.ecommerce import RECOMMENDED, recommended_problem

MODEST = settings(max_examples=200, deadline=None)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
CURRENCY = re.compile(r"[A-Z]{3}\Z")
IDENTIFIERS = ("external_id", "braze_id", "user_alias")
LOOKUPS = ("email", "phone")
E164 = re.compile(r"\+[1-9][0-9]{0,14}\Z")
TRACK_KEYS = ("attributes", "events", "purchases")
EVENT_KEYS = {
    *IDENTIFIERS,
    *LOOKUPS,
    "app_id",
    "name",
    "time",
    "properties",
    "_update_existing_only",
}
PURCHASE_KEYS = {
    *IDENTIFIERS,
    *LOOKUPS,
    "app_id",
    "product_id",
    "currency",
    "price",
    "quantity",
    "time",
    "properties",
    "_update_existing_only",
}
# Braze's operator objects for arrays of objects, and the keys inside them.
ARRAY_OPERATORS = {"$add", "$remove", "$update"}
OPERATOR_ENTRY_KEYS = {"$identifier_key", "$identifier_value", "$new_object"}
MAX_EXTERNAL_ID_BYTES = 987


def translate_or_none(message, options):
    """The translation, or None when the message is an InvalidMessage."""
    try:
        return translate(message, options)
    except InvalidMessage:
        return None


def check_nested_keys(value, where, *, operator_entries=False):
    """Nested keys are strings of at most 255 characters; '$' only for $time and operators."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), where
            assert len(key) <= 255, where
            if key.startswith("$"):
                allowed = key == "$time" or (operator_entries and key in OPERATOR_ENTRY_KEYS)
                assert allowed, f"{where}: key {key!r}"
            check_nested_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_nested_keys(item, f"{where}[{index}]", operator_entries=operator_entries)


def check_top_level(mapping, where, *, skip=()):
    """Top-level keys are 1..255 characters without '$'; string values at most 255."""
    for key, value in mapping.items():
        assert isinstance(key, str), where
        assert 0 < len(key) <= 255, f"{where}: key of {len(key)} characters"
        assert not key.startswith("$"), f"{where}: key {key!r}"
        if isinstance(value, str) and key not in skip:
            assert len(value) <= 255, f"{where}.{key}: string of {len(value)}"


def check_identifier(obj, where):
    """Exactly one primary identifier, each well formed; or else an email or E.164 phone."""
    present = [key for key in IDENTIFIERS if key in obj]
    if not present:
        # Braze looks the profile up by email, else phone: normalised, and never both.
        lookups = [key for key in LOOKUPS if key in obj]
        assert lookups in (["email"], ["phone"]), f"{where}: lookups {lookups}"
        value = obj[lookups[0]]
        if lookups == ["email"]:
            assert value == value.strip().lower()
            assert "@" in value
        else:
            assert E164.match(value), value
        return
    assert len(present) == 1, f"{where}: identifiers {present}"
    if "external_id" in obj:
        assert isinstance(obj["external_id"], str)
        assert obj["external_id"]
        assert len(obj["external_id"].encode()) <= MAX_EXTERNAL_ID_BYTES
    if "braze_id" in obj:
        assert isinstance(obj["braze_id"], str)
        assert obj["braze_id"]
    if "user_alias" in obj:
        alias = obj["user_alias"]
        assert set(alias) == {"alias_name", "alias_label"}
        assert all(isinstance(part, str) and part for part in alias.values())


def check_properties(obj, where):
    """Properties, when present, are a non-empty object within the key and value rules."""
    if "properties" in obj:
        properties = obj["properties"]
        assert isinstance(properties, dict)
        assert properties, f"{where}: empty properties sent"
        check_top_level(properties, f"{where}.properties")
        check_nested_keys(properties, f"{where}.properties")


def check_attributes(obj, where):
    """An attributes object: identifier, flag, valid top-level and nested keys."""
    check_identifier(obj, where)
    assert isinstance(obj.get("_update_existing_only"), bool), where
    check_top_level(obj, where, skip=("external_id", "braze_id"))
    for key, value in obj.items():
        if isinstance(value, dict) and value and set(value) <= ARRAY_OPERATORS:
            for operator, entries in value.items():
                check_nested_keys(entries, f"{where}.{key}.{operator}", operator_entries=True)
        else:
            check_nested_keys(value, f"{where}.{key}")


def check_event(obj, where):
    """A custom event: identifier, name, time, flag, properties."""
    check_identifier(obj, where)
    assert set(obj) <= EVENT_KEYS, f"{where}: keys {sorted(obj)}"
    assert isinstance(obj.get("_update_existing_only"), bool), where
    assert isinstance(obj["name"], str)
    assert 0 < len(obj["name"]) <= 255
    assert TIME.match(obj["time"]), obj["time"]
    check_properties(obj, where)
    if obj["name"] in RECOMMENDED:
        # The stand-in's own reading of Braze's schema: never sent invalid.
        assert recommended_problem(obj) is None, (where, recommended_problem(obj))


def check_purchase(obj, where):
    """A purchase: identifier, product_id, currency, price, quantity, time, flag."""
    check_identifier(obj, where)
    assert set(obj) <= PURCHASE_KEYS, f"{where}: keys {sorted(obj)}"
    assert isinstance(obj.get("_update_existing_only"), bool), where
    assert isinstance(obj["product_id"], str)
    assert 0 < len(obj["product_id"]) <= 255
    assert CURRENCY.match(obj["currency"]), obj["currency"]
    assert pycountry.currencies.get(alpha_3=obj["currency"]) is not None, obj["currency"]
    price = obj["price"]
    assert isinstance(price, int | float)
    assert not isinstance(price, bool)
    assert math.isfinite(price)
    quantity = obj["quantity"]
    assert isinstance(quantity, int)
    assert not isinstance(quantity, bool)
    assert 1 <= quantity <= 100
    assert TIME.match(obj["time"]), obj["time"]
    check_properties(obj, where)


def check_track_body(body):
    """A /users/track body obeys Braze's object rules and alias ordering."""
    keys = list(body)
    assert keys, "empty /users/track body"
    assert keys == [key for key in TRACK_KEYS if key in body], keys
    for key in keys:
        assert isinstance(body[key], list)
        assert body[key], f"empty {key}"
    checkers = {"attributes": check_attributes, "events": check_event, "purchases": check_purchase}
    for key in keys:
        for index, obj in enumerate(body[key]):
            checkers[key](obj, f"{key}[{index}]")
    created = [
        obj["user_alias"]
        for obj in body.get("attributes", [])
        if "user_alias" in obj and obj["_update_existing_only"] is False
    ]
    for kind in ("events", "purchases"):
        for obj in body.get(kind, []):
            if "user_alias" in obj:
                assert obj["user_alias"] in created, f"{kind}: alias used before it is created"


def check_request(path, body):
    """Any request body follows its endpoint's shape."""
    if path == "/users/track":
        check_track_body(body)
    elif path == "/users/identify" and list(body) == ["emails_to_identify"]:
        for entry in body["emails_to_identify"]:
            assert set(entry) == {"external_id", "email", "prioritization"}
            assert entry["email"] == entry["email"].strip().lower()
            assert entry["prioritization"] == ["unidentified", "most_recently_updated"]
    elif path == "/users/identify":
        assert list(body) == ["aliases_to_identify"]
        for entry in body["aliases_to_identify"]:
            assert set(entry) == {"external_id", "user_alias"}
            assert isinstance(entry["external_id"], str)
            assert len(entry["external_id"].encode()) <= MAX_EXTERNAL_ID_BYTES
            assert set(entry["user_alias"]) == {"alias_name", "alias_label"}
    elif path == "/users/merge":
        assert list(body) == ["merge_updates"]
        for entry in body["merge_updates"]:
            assert set(entry) == {"identifier_to_merge", "identifier_to_keep"}
            for identifier in entry.values():
                assert len(identifier) == 1
                assert set(identifier) <= set(IDENTIFIERS)
    elif path == "/users/delete":
        assert list(body) == ["external_ids"]
        assert all(isinstance(item, str) and item for item in body["external_ids"])
    else:
        pytest.fail(f"unexpected path {path}")


# Found by these properties; kept as explicit examples so they always run.
NESTED_OPERATOR_DOLLAR_KEY = {
    "type": "identify",
    "userId": "u",
    "traits": {"pets": {"$add": [{"$evil": 1}]}},
}
NESTED_TIME_DOLLAR_KEY = {
    "type": "track",
    "userId": "u",
    "event": "E",
    "timestamp": "2015-01-01T00:00:00Z",
    "properties": {"when": {"$time": {"$x": 1}}},
}

SUPERSCRIPT_QUANTITY = {
    "type": "track",
    "userId": "u",
    "event": "Order Completed",
    "timestamp": "2015-01-01T00:00:00Z",
    "properties": {"products": [{"sku": "a", "price": 1, "quantity": "²"}]},
}
UNHASHABLE_TYPE = {
    "type": "track",
    "userId": "u",
    "event": "Product Viewed",
    "timestamp": "2015-01-01T00:00:00Z",
    "properties": {"product_id": "0", "name": "N", "price": 1, "type": [[]]},
}
UNKNOWN_ZONE_BIRTHDAY = {
    "type": "identify",
    "userId": "u",
    "traits": {"birthday": "1990-05-17 10:00 CEST"},
}


class TestTranslateContract:
    """translate returns a Translation or raises InvalidMessage, for any input."""

    @MODEST
    @given(message=st.one_of(json_values(), messages()), options=translation_settings())
    @example(message=SUPERSCRIPT_QUANTITY, options=Settings())
    @example(message=UNKNOWN_ZONE_BIRTHDAY, options=Settings())
    def test_json_input(self, message, options):
        """For any strict-JSON input, translate returns or raises InvalidMessage only."""
        try:
            result = translate(message, options)
        except InvalidMessage as error:
            result = error.path
        assert isinstance(result, Translation) or result.startswith("$")

    @MODEST
    @given(
        message=st.one_of(python_json_values(), messages(python_json_values())),
        options=translation_settings(),
    )
    @example(
        message={"type": "identify", "userId": "u", "traits": {"a": {"$time": float("nan")}}},
        options=Settings(),
    )
    @example(message={"type": "identify", "userId": "\ud800"}, options=Settings())
    def test_python_json_input(self, message, options):
        """Input json.loads accepts (NaN, Infinity, lone surrogates) never crashes translate."""
        try:
            result = translate(message, options)
        except InvalidMessage:
            return
        assert isinstance(result, Translation)
        for request in result.requests():
            json.dumps(request.body, allow_nan=False)

    @MODEST
    @given(message=messages(python_built_values()), options=translation_settings())
    def test_python_built_input(self, message, options):
        """Python values (datetimes, Decimals, NumPy, ...) never crash nor reach a body as such."""
        try:
            result = translate(message, options)
        except InvalidMessage:
            return
        for request in result.requests():
            # The standard library's encoder refuses every non-JSON type.
            json.dumps(request.body, allow_nan=False)
            check_request(request.path, request.body)

    @MODEST
    @given(message=messages(), options=translation_settings())
    def test_pure(self, message, options):
        """The translate function leaves its input untouched and gives the same answer twice."""
        before = copy.deepcopy(message)
        first = translate_or_none(message, options)
        assert message == before
        second = translate_or_none(message, options)
        if first is None:
            assert second is None
            return
        assert [(r.path, r.body) for r in first.requests()] == [
            (r.path, r.body) for r in second.requests()
        ]
        assert (first.dropped, first.warnings) == (second.dropped, second.warnings)


class TestBodies:
    """Every body translate produces is JSON Braze accepts."""

    @MODEST
    @given(message=messages(), options=translation_settings())
    @example(message=NESTED_OPERATOR_DOLLAR_KEY, options=Settings())
    @example(message=NESTED_TIME_DOLLAR_KEY, options=Settings())
    def test_braze_object_rules(self, message, options):
        """Bodies serialise strictly and obey Braze's identifier, key, value and type rules."""
        t = translate_or_none(message, options)
        if t is None:
            return
        requests = t.requests()
        paths = [request.path for request in requests]
        if "/users/track" in paths:
            # Only the merge of email-only profiles goes before the track request.
            first = [list(request.body) for request in requests[: paths.index("/users/track")]]
            assert first in ([], [["emails_to_identify"]]), first
        kinds = [(request.path, *request.body) for request in requests]
        assert len(kinds) == len(set(kinds))
        for request in requests:
            json.dumps(request.body, allow_nan=False)
            check_request(request.path, request.body)

    @MODEST
    @given(
        message=ecommerce_messages(),
        options=translation_settings(ecommerce=st.sampled_from(("recommended", "both"))),
    )
    @example(message=UNHASHABLE_TYPE, options=Settings(ecommerce="recommended"))
    def test_recommended_events(self, message, options):
        """An e-commerce track sends its recommended event, valid, or else the plain event."""
        t = translate_or_none(message, options)
        if t is None or t.dropped is not None:
            return
        for request in t.requests():
            json.dumps(request.body, allow_nan=False)
            check_request(request.path, request.body)
        names = [event.name for event in t.events]
        assert len(names) <= 1
        fell_back = any(path == "$.event" for path, _ in t.warnings)
        if names:
            assert names[0].startswith("ecommerce.") is not fell_back
            if fell_back:
                assert names[0] == message["event"]

    @MODEST
    @given(message=messages(), options=translation_settings(anonymous_users="alias"))
    def test_alias_profile_first(self, message, options):
        """In alias mode, every alias event or purchase follows its alias-creating attributes."""
        t = translate_or_none(message, options)
        if t is None:
            return
        for request in t.requests():
            if request.path == "/users/track":
                check_track_body(request.body)

    @MODEST
    @given(message=messages(), options=translation_settings())
    def test_dropped_and_warnings(self, message, options):
        """Dropped (one-line reason) exactly when nothing is sent; warnings are (path, text)."""
        t = translate_or_none(message, options)
        if t is None:
            return
        if t.dropped is None:
            assert t.requests()
        else:
            assert isinstance(t.dropped, str)
            assert t.dropped.strip()
            assert "\n" not in t.dropped
            assert t.requests() == []
        for path, text in t.warnings:
            assert isinstance(path, str)
            assert path.startswith("$")
            assert isinstance(text, str)
            assert text.strip()
