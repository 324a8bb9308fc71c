"""One bad message costs only itself: translate() under hostile input."""

from typing import Any

import pytest
from helpers import USER, identify, track, track_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_braze import InvalidMessage, Settings, _json, translate

SURROGATE = "\ud800"
HUGE = 10**5000  # Python refuses to write integers of over 4,300 digits


def nested(levels: int, leaf: Any = 1) -> Any:
    """A value ``levels`` objects deep: {"a": {"a": ... leaf}}."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def self_referencing() -> dict[str, Any]:
    """A dict that contains itself (only Python callers can make one)."""
    loop: dict[str, Any] = {"x": 1}
    loop["me"] = loop
    return loop


def shared_fanout(levels: int) -> dict[str, Any]:
    """A DAG of 2**levels paths built from ``levels`` dicts (exponential if walked naively)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value, "b": value}
    return value


def serialised(result) -> list[bytes]:
    """Every request body as the sender writes it (strict UTF-8 JSON)."""
    out = [_json.dumps(request.body) for request in result.requests()]
    for body in out:
        body.decode("utf-8")  # strict: a lone surrogate would raise here
    return out


def texts(result, path):
    """The warning texts at one JSON path."""
    return [text for where, text in result.warnings if where == path]


ORDER = "Order Completed"


class TestNesting:
    """Nesting is bounded at 64 levels; a value deeper than that is dropped whole."""

    @pytest.mark.parametrize("levels", [65, 5000])
    def test_deep_property_dropped_whole(self, levels):
        """A property nested deeper than 64 levels is dropped with a warning, never truncated."""
        result = translate(track(properties={"deep": nested(levels), "ok": 1}))
        assert track_body(result)["events"][0]["properties"] == {"ok": 1}
        assert texts(result, "$.properties.deep") == ["nested deeper than 64 levels; dropped"]

    def test_64_levels_kept(self):
        """A property exactly 64 objects deep reaches Braze unchanged."""
        result = translate(track(properties={"deep": nested(64)}))
        assert track_body(result)["events"][0]["properties"] == {"deep": nested(64)}

    def test_deep_list_dropped(self):
        """Arrays count as levels too."""
        value: Any = 1
        for _ in range(3000):
            value = [value]
        result = translate(track(properties={"deep": value}))
        assert "deep" not in track_body(result)["events"][0].get("properties", {})

    def test_deep_trait_dropped(self):
        """A trait nested deeper than 64 levels is dropped; the rest of the profile goes."""
        result = translate(identify(traits={"deep": nested(5000), "plan": "pro"}))
        attributes = track_body(result)["attributes"][0]
        assert attributes["plan"] == "pro"
        assert "deep" not in attributes

    @pytest.mark.parametrize("where", ["property", "trait", "properties"])
    def test_self_referencing_structures(self, where):
        """A structure that contains itself is dropped with a warning, not a RecursionError."""
        loop = self_referencing()
        if where == "property":
            message = track(properties={"loop": loop})
        elif where == "trait":
            message = identify(traits={"loop": loop})
        else:
            message = track(properties=loop)
        result = translate(message)
        serialised(result)
        assert any("nested deeper than 64 levels" in text for _, text in result.warnings)

    def test_shared_fanout_bounded(self):
        """A value reaching 2**40 paths through shared dicts is dropped, in bounded work."""
        result = translate(track(properties={"fan": shared_fanout(40)}))
        assert texts(result, "$.properties.fan") == ["more than 200,000 nested values; dropped"]

    @pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "stdlib"])
    def test_reader_refuses_deep_documents(self, monkeypatch, orjson):
        """The JSON reader refuses a document nested 100,000 deep with ValueError."""
        if not orjson:
            monkeypatch.setattr(_json, "_orjson", None)
        with pytest.raises(ValueError, match=r"nested|depth"):
            _json.loads(b"[" * 100_000 + b"]" * 100_000)


class TestSurrogates:
    """A lone surrogate never reaches a request body."""

    @pytest.mark.parametrize(
        ("message", "path"),
        [
            pytest.param(track(userId="u" + SURROGATE), "$.userId", id="userId"),
            pytest.param(track(anonymousId="a" + SURROGATE), "$.anonymousId", id="anonymousId"),
            pytest.param(track(event="E" + SURROGATE), "$.event", id="event"),
            pytest.param(track(messageId="m" + SURROGATE), "$.messageId", id="messageId"),
            pytest.param(
                track(userId=None, integrations={"Braze": {"braze_id": "b" + SURROGATE}}),
                "$.integrations.Braze.braze_id",
                id="braze_id",
            ),
            pytest.param(
                track(
                    userId=None,
                    context={"integrations": {"Braze": {"braze_id": "b" + SURROGATE}}},
                ),
                "$.context.integrations.Braze.braze_id",
                id="context-braze_id",
            ),
        ],
    )
    def test_ids_invalid(self, message, path):
        """A surrogate in an id or event name makes the message invalid at that path."""
        with pytest.raises(InvalidMessage) as caught:
            translate(message)
        assert caught.value.path == path

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(track(properties={"k" + SURROGATE: 1, "ok": 1}), id="property-key"),
            pytest.param(track(properties={"k": "v" + SURROGATE, "ok": 1}), id="property-value"),
            pytest.param(track(properties={"k": {"x": SURROGATE}, "ok": 1}), id="nested-value"),
            pytest.param(track(properties={"k": {"x" + SURROGATE: 1}, "ok": 1}), id="nested-key"),
            pytest.param(
                identify(traits={"email": SURROGATE, "first_name": "a" + SURROGATE, "ok": 1}),
                id="standard-traits",
            ),
            pytest.param(identify(traits={"k" + SURROGATE: 1, "ok": 1}), id="trait-key"),
            pytest.param(
                identify(traits={"ok": 1, "push_tokens": [{"app_id": "a", "token": SURROGATE}]}),
                id="push-token-trait",
            ),
            pytest.param(
                identify(traits={"ok": 1}, context={"device": {"token": "t" + SURROGATE}}),
                id="device-token",
            ),
            pytest.param(
                track(
                    event=ORDER,
                    properties={
                        "products": [
                            {"product_id": "p" + SURROGATE, "price": 1},
                            {"product_id": "ok", "price": 1},
                        ]
                    },
                ),
                id="product-id",
            ),
        ],
    )
    def test_values_dropped(self, message):
        """A surrogate in a value or key drops that field with a warning; the rest is sent."""
        result = translate(message, Settings(app_id="app"))
        bodies = serialised(result)
        assert bodies
        assert result.warnings
        assert SURROGATE.encode("utf-8", "surrogatepass") not in b"".join(bodies)


class TestNumbers:
    """Numbers too big to write or to mean anything cost only their own field."""

    @pytest.mark.parametrize(
        ("message", "path"),
        [
            pytest.param(track(properties={"n": HUGE}), "$.properties.n", id="property"),
            pytest.param(track(properties={"n": {"x": HUGE}}), "$.properties.n.x", id="nested"),
            pytest.param(identify(traits={"n": HUGE}), "$.traits.n", id="trait"),
            pytest.param(identify(traits={"n": {"inc": HUGE}}), "$.traits.n.inc", id="increment"),
        ],
    )
    def test_unwritable_integers_dropped(self, message, path):
        """An integer of over 4,300 digits is dropped at its path with a warning."""
        result = translate(message)
        serialised(result)
        assert path in [where for where, _ in result.warnings]

    def test_big_but_writable_integer_kept(self):
        """A 30-digit integer property is kept exactly."""
        result = translate(track(properties={"n": 10**30}))
        assert track_body(result)["events"][0]["properties"] == {"n": 10**30}

    def test_huge_price_drops_the_product(self):
        """A price beyond any float is not a price: that product is dropped."""
        properties = {"products": [{"product_id": "p", "price": HUGE}]}
        result = translate(track(event=ORDER, properties=properties))
        assert result.dropped == "every product is invalid for a Braze purchase"

    def test_huge_revenue_stays_an_event(self):
        """A revenue beyond any float never becomes a purchase."""
        settings = Settings(log_purchase_when_revenue_present=True)
        result = translate(track(event="Paid", properties={"revenue": HUGE}), settings)
        assert list(track_body(result)) == ["events"]
        serialised(result)


class TestQuantities:
    """Quantities over 100 split into purchases, up to what one request can hold."""

    @pytest.mark.parametrize(("quantity", "purchases"), [(250, 3), (7500, 75)])
    def test_split_within_a_request(self, quantity, purchases):
        """Up to 75 purchases of at most 100 each, adding up to the quantity."""
        properties = {"products": [{"product_id": "p", "price": 1, "quantity": quantity}]}
        body = track_body(translate(track(event=ORDER, properties=properties)))
        assert len(body["purchases"]) == purchases
        assert sum(p["quantity"] for p in body["purchases"]) == quantity

    @pytest.mark.parametrize("quantity", [7501, 10**7, 10**300])
    def test_beyond_a_request_dropped_with_warning(self, quantity):
        """A quantity needing more than 75 purchases drops its product, in microseconds."""
        properties = {
            "products": [
                {"product_id": "ok", "price": 1},
                {"product_id": "p", "price": 1, "quantity": quantity},
            ]
        }
        result = translate(track(event=ORDER, properties=properties))
        assert [p["product_id"] for p in track_body(result)["purchases"]] == ["ok"]
        warning = texts(result, "$.properties.products[1].quantity")
        assert len(warning) == 1
        assert "product dropped" in warning[0]


class TestSizes:
    """Event properties over Braze's 100 KB are dropped before sending."""

    def test_flat_event_properties_over_100_kb(self):
        """600 properties of 250 characters (about 156 KB) are dropped with a warning."""
        properties = {f"k{i}": "x" * 250 for i in range(600)}
        result = translate(track(properties=properties))
        assert "properties" not in track_body(result)["events"][0]
        assert any("exceed Braze's 102400" in text for _, text in result.warnings)

    def test_flat_properties_under_the_limit_kept(self):
        """300 properties of 250 characters (about 78 KB) are sent."""
        properties = {f"k{i}": "x" * 250 for i in range(300)}
        body = track_body(translate(track(properties=properties)))
        assert body["events"][0]["properties"] == properties

    def test_flat_purchase_properties_over_50_kb(self):
        """Purchase properties over 50 KB are dropped; the purchase itself is sent."""
        properties = {f"k{i}": "x" * 250 for i in range(300)}
        properties["products"] = [{"product_id": "p", "price": 1}]
        result = translate(track(event=ORDER, properties=properties))
        purchase = track_body(result)["purchases"][0]
        assert purchase["product_id"] == "p"
        assert "properties" not in purchase


hostile_scalars = st.one_of(
    st.text(st.characters(codec=None), max_size=8),
    st.sampled_from((SURROGATE, "a" + SURROGATE, 10**30, 2**63, float("nan"))),
    # Built, not listed: Hypothesis could not show a 5,000-digit integer.
    st.integers(4301, 4400).map(lambda digits: 10**digits),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
)
hostile_keys = st.one_of(st.text(st.characters(codec=None), max_size=6), st.just(SURROGATE))
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(hostile_keys, children, max_size=3)
    ),
    max_leaves=10,
)


class TestAnyHostileInput:
    """For any hostile value anywhere, translate raises only InvalidMessage and bodies are JSON."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        field=st.sampled_from(
            ("userId", "anonymousId", "messageId", "event", "properties", "traits", "context")
        ),
        value=hostile_values,
        kind=st.sampled_from(("track", "identify", "page")),
    )
    def test_hostile_field(self, field, value, kind):
        """Any value in any field: a Translation whose bodies serialise, or InvalidMessage."""
        base = {"type": kind, "userId": USER, "event": "E", "timestamp": "2024-01-01T00:00:00Z"}
        message = {**base, field: value, "properties": {"p": value}, "traits": {"t": value}}
        options = Settings(
            anonymous_users="alias", track_all_pages=True, app_id="app", context_attributes=True
        )
        try:
            result = translate(message, options)
        except InvalidMessage as error:
            path = error.path
        else:
            path = "$"
            serialised(result)
        assert path.startswith("$")
