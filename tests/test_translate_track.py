import pytest
from helpers import BRAZE_TIME, USER, order, sent, track, track_body, warning_paths

from segment_braze import Settings, translate


def event_of(t):
    """The single event of a translation's one /users/track body."""
    body = track_body(t)
    assert list(body) == ["events"], body
    (event,) = body["events"]
    return event


def purchases_of(t):
    """The purchases of a translation's one /users/track body (nothing else sent)."""
    body = track_body(t)
    assert list(body) == ["purchases"], body
    return body["purchases"]


def purchase(**fields):
    """The JSON of a purchase for USER at the test time, with ``fields`` overriding."""
    body = {
        "external_id": USER,
        "product_id": "p-1",
        "currency": "USD",
        "price": 10,
        "quantity": 1,
        "time": BRAZE_TIME,
        "_update_existing_only": False,
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


class TestEvent:
    """A track call becomes one custom event by default."""

    def test_event_shape(self):
        """The event carries external_id, name, time, properties and _update_existing_only."""
        t = translate(track(event="Signed Up", properties={"plan": "pro", "seats": 3}))
        assert sent(t) == [
            (
                "/users/track",
                {
                    "events": [
                        {
                            "external_id": USER,
                            "name": "Signed Up",
                            "time": BRAZE_TIME,
                            "properties": {"plan": "pro", "seats": 3},
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]
        assert t.dropped is None
        assert t.warnings == ()

    def test_type_in_any_case(self):
        """A message type in another case ("Track") is read as its lower-case call type."""
        assert sent(translate(track(type="Track"))) == sent(translate(track()))

    def test_app_id_when_set(self):
        """With app_id configured the event carries it."""
        t = translate(track(), Settings(app_id="app-123"))
        assert event_of(t)["app_id"] == "app-123"

    def test_no_app_id_when_unset(self):
        """Without app_id the event has no app_id key at all."""
        assert "app_id" not in event_of(translate(track()))

    @pytest.mark.parametrize("flag", [True, False], ids=["update-only", "create"])
    def test_update_existing_only_follows_setting(self, flag):
        """The event carries the update_existing_only setting."""
        t = translate(track(), Settings(update_existing_only=flag))
        assert event_of(t)["_update_existing_only"] is flag

    @pytest.mark.parametrize(
        "properties",
        [
            pytest.param({}, id="empty"),
            pytest.param(None, id="null"),
            pytest.param({"time": "2020-01-01"}, id="only-reserved"),
        ],
    )
    def test_empty_properties_omitted(self, properties):
        """An event whose properties are empty (or end up empty) has no properties key."""
        assert "properties" not in event_of(translate(track(properties=properties)))

    def test_nested_properties_kept(self):
        """Nested objects and arrays in properties reach Braze unchanged."""
        properties = {
            "cart": {"items": [{"sku": "a", "n": 2}], "total": 12.5},
            "tags": ["x", "y"],
        }
        assert event_of(translate(track(properties=properties)))["properties"] == properties

    @pytest.mark.parametrize(
        "products",
        [
            pytest.param([], id="empty-list"),
            pytest.param({"sku": "a", "price": 1}, id="object"),
            pytest.param("a,b", id="string"),
        ],
    )
    def test_products_not_a_list_stay_event_property(self, products):
        """A ``products`` value that is not a non-empty list is an ordinary property."""
        event = event_of(translate(track(properties={"products": products})))
        assert event["properties"] == {"products": products}


class TestEventProperties:
    """Braze-rejected property keys and values are removed with a warning."""

    @pytest.mark.parametrize(
        ("properties", "remaining", "path"),
        [
            pytest.param({"time": "now"}, {}, "$.properties.time", id="reserved-time"),
            pytest.param(
                {"event_name": "x"}, {}, "$.properties.event_name", id="reserved-event_name"
            ),
            pytest.param({"$revenue": 1}, {}, '$.properties["$revenue"]', id="dollar-key"),
            pytest.param({"": 1}, {}, '$.properties[""]', id="empty-key"),
            pytest.param({"k" * 256: 1}, {}, "$.properties." + "k" * 256, id="key-over-255"),
            pytest.param({"note": "n" * 256}, {}, "$.properties.note", id="string-over-255"),
            pytest.param(
                {"meta": {"note": "n" * 256, "ok": 1}},
                {"meta": {"ok": 1}},
                "$.properties.meta.note",
                id="nested-string-over-255",
            ),
        ],
    )
    def test_removed_with_warning(self, properties, remaining, path):
        """Each rejected property is removed, the others kept, and a warning names it."""
        t = translate(track(properties={**properties, "kept": "yes"}))
        assert event_of(t)["properties"] == {**remaining, "kept": "yes"}
        assert warning_paths(t) == [path]

    def test_boundaries_kept(self):
        """A key and a string value of exactly 255 characters are kept."""
        properties = {"k" * 255: "v" * 255}
        assert event_of(translate(track(properties=properties)))["properties"] == properties


class TestPurchases:
    """A track with a non-empty ``properties.products`` list becomes purchases."""

    def test_order_completed(self):
        """Each product becomes one purchase with order properties merged in."""
        t = translate(
            order(
                {"product_id": "p-1", "price": 10, "quantity": 2, "name": "Shirt"},
                {"product_id": "p-2", "price": 5.5, "name": "Socks", "coupon": "SOCKS"},
                order_id="o-9",
                coupon="SUMMER",
                revenue=25.5,
                currency="EUR",
            )
        )
        assert purchases_of(t) == [
            purchase(
                product_id="p-1",
                currency="EUR",
                price=10,
                quantity=2,
                properties={"order_id": "o-9", "coupon": "SUMMER", "name": "Shirt"},
            ),
            purchase(
                product_id="p-2",
                currency="EUR",
                price=5.5,
                quantity=1,
                properties={"order_id": "o-9", "coupon": "SOCKS", "name": "Socks"},
            ),
        ]
        assert t.warnings == ()
        assert t.dropped is None

    def test_any_event_with_products_when_purchase_events_is_none(self):
        """purchase_events=None restores Braze's guide: any track with products is purchases."""
        message = track(
            event="Cart Checked Out", properties={"products": [{"sku": "p-1", "price": 10}]}
        )
        settings = Settings(purchase_events=None)
        assert purchases_of(translate(message, settings)) == [purchase()]

    @pytest.mark.parametrize(
        ("product", "product_id"),
        [
            pytest.param({"product_id": "a", "id": "b", "sku": "c"}, "a", id="product_id-first"),
            pytest.param({"id": "b", "sku": "c"}, "b", id="id-second"),
            pytest.param({"sku": "c"}, "c", id="sku-last"),
            pytest.param({"product_id": 507}, "507", id="number-as-string"),
        ],
    )
    def test_product_id_precedence(self, product, product_id):
        """product_id comes from product_id, else id, else sku."""
        (result,) = purchases_of(translate(order({**product, "price": 1})))
        assert result["product_id"] == product_id

    def test_unused_id_keys_stay_properties(self):
        """The id keys not used as product_id stay purchase properties."""
        (result,) = purchases_of(translate(order({"product_id": "a", "sku": "c", "price": 1})))
        assert result["properties"] == {"sku": "c"}

    @pytest.mark.parametrize(
        ("price", "expected"),
        [
            pytest.param(10, 10, id="int"),
            pytest.param(9.99, 9.99, id="float"),
            pytest.param(0, 0, id="zero-is-valid"),
            pytest.param("9.99", 9.99, id="numeric-string"),
            pytest.param("12", 12, id="integer-string"),
        ],
    )
    def test_price(self, price, expected):
        """The price is the product's price as a number; numeric strings are converted."""
        (result,) = purchases_of(translate(order({"sku": "p-1", "price": price})))
        assert result["price"] == expected
        assert isinstance(result["price"], int | float)
        assert not isinstance(result["price"], bool)

    @pytest.mark.parametrize(
        "price",
        [
            pytest.param("ten", id="word"),
            pytest.param(None, id="null"),
            pytest.param(True, id="bool"),
            pytest.param([1], id="array"),
            pytest.param("", id="empty-string"),
        ],
    )
    def test_invalid_price_drops_product(self, price):
        """A product with no valid price is dropped with a warning; the others are kept."""
        t = translate(order({"sku": "bad", "price": price}, {"sku": "p-1", "price": 10}))
        assert purchases_of(t) == [purchase()]
        assert "$.properties.products[0].price" in warning_paths(t)

    def test_missing_price_drops_product(self):
        """A product without a price is dropped with a warning naming that product."""
        t = translate(order({"sku": "bad"}, {"sku": "p-1", "price": 10}))
        assert purchases_of(t) == [purchase()]
        assert warning_paths(t)
        assert all(p.startswith("$.properties.products[0]") for p in warning_paths(t))

    @pytest.mark.parametrize(
        ("quantity", "expected"),
        [
            pytest.param(None, [1], id="absent-is-1"),
            pytest.param(1, [1], id="one"),
            pytest.param(7, [7], id="seven"),
            pytest.param(100, [100], id="braze-maximum"),
            pytest.param(101, [100, 1], id="split-101"),
            pytest.param(250, [100, 100, 50], id="split-250"),
            pytest.param(300, [100, 100, 100], id="split-300"),
        ],
    )
    def test_quantity_split(self, quantity, expected):
        """Quantities above Braze's 100 are split into purchases that add up to them."""
        product = {"sku": "p-1", "price": 10, "color": "red"}
        if quantity is not None:
            product["quantity"] = quantity
        results = purchases_of(translate(order(product)))
        assert [p["quantity"] for p in results] == expected
        assert all(
            p == purchase(quantity=p["quantity"], properties={"color": "red"}) for p in results
        )

    @pytest.mark.parametrize(
        "quantity",
        [
            pytest.param(0, id="zero"),
            pytest.param(-2, id="negative"),
            pytest.param(2.5, id="fraction"),
            pytest.param("many", id="word"),
            pytest.param(True, id="bool"),
            pytest.param("²", id="superscript-digit-string"),
        ],
    )
    def test_invalid_quantity_drops_product(self, quantity):
        """A product whose quantity is invalid is dropped with a warning."""
        t = translate(
            order({"sku": "bad", "price": 1, "quantity": quantity}, {"sku": "p-1", "price": 10})
        )
        assert purchases_of(t) == [purchase()]
        assert "$.properties.products[0].quantity" in warning_paths(t)

    @pytest.mark.parametrize(
        ("product_currency", "order_currency", "expected"),
        [
            pytest.param(None, None, "USD", id="default-usd"),
            pytest.param(None, "EUR", "EUR", id="order-currency"),
            pytest.param(None, "gbp", "GBP", id="order-currency-upper-cased"),
            pytest.param("JPY", None, "JPY", id="product-currency"),
            pytest.param("chf", None, "CHF", id="product-currency-upper-cased"),
            pytest.param("JPY", "EUR", "JPY", id="product-wins"),
        ],
    )
    def test_currency(self, product_currency, order_currency, expected):
        """Currency is the product's, else the order's, else USD, upper-cased."""
        product = {"sku": "p-1", "price": 10}
        if product_currency is not None:
            product["currency"] = product_currency
        extra = {} if order_currency is None else {"currency": order_currency}
        (result,) = purchases_of(translate(order(product, **extra)))
        assert result["currency"] == expected

    @pytest.mark.parametrize(
        "currency",
        [
            pytest.param("EURO", id="four-letters"),
            pytest.param("E", id="one-letter"),
            pytest.param("ZZQ", id="not-iso-4217"),
            pytest.param(978, id="numeric-code"),
        ],
    )
    def test_invalid_product_currency_drops_product(self, currency):
        """A product whose own currency is invalid is dropped with a warning."""
        t = translate(
            order({"sku": "bad", "price": 1, "currency": currency}, {"sku": "p-1", "price": 10})
        )
        assert purchases_of(t) == [purchase()]
        assert "$.properties.products[0].currency" in warning_paths(t)

    def test_invalid_order_currency_drops_products_that_use_it(self):
        """An invalid order currency drops the products that fall back to it, with a warning."""
        t = translate(
            order(
                {"sku": "bad", "price": 1},
                {"sku": "p-1", "price": 10, "currency": "USD"},
                currency="dollars",
            )
        )
        assert purchases_of(t) == [purchase()]
        assert "$.properties.currency" in warning_paths(t)

    @pytest.mark.parametrize(
        ("length", "kept"),
        [pytest.param(255, True, id="255-kept"), pytest.param(256, False, id="256-dropped")],
    )
    def test_product_id_length(self, length, kept):
        """A product_id over 255 characters drops the product with a warning."""
        t = translate(order({"product_id": "p" * length, "price": 1}, {"sku": "p-1", "price": 10}))
        ids = [p["product_id"] for p in purchases_of(t)]
        if kept:
            assert ids == ["p" * length, "p-1"]
            assert t.warnings == ()
        else:
            assert ids == ["p-1"]
            assert warning_paths(t) == ["$.properties.products[0].product_id"]

    @pytest.mark.parametrize(
        "product",
        [
            pytest.param("p-1", id="string"),
            pytest.param(None, id="null"),
            pytest.param({"price": 1}, id="no-id"),
        ],
    )
    def test_unusable_product_dropped(self, product):
        """A product that is not an object or has no id is dropped with a warning."""
        t = translate(order(product, {"sku": "p-1", "price": 10}))
        assert purchases_of(t) == [purchase()]
        assert warning_paths(t) == ["$.properties.products[0]"]

    def test_all_products_invalid_drops_message(self):
        """A message whose products are all invalid is dropped with a reason."""
        t = translate(order({"sku": "a"}, {"price": 3}, "junk"))
        assert t.dropped
        assert t.requests() == []
        assert len(t.warnings) >= 3

    def test_properties_merge(self):
        """Purchase properties: order-level (minus products/revenue/currency) + product keys."""
        t = translate(
            order(
                {
                    "product_id": "p-1",
                    "price": 10,
                    "quantity": 1,
                    "currency": "EUR",
                    "coupon": "SHIRT",
                    "brand": "Acme",
                },
                order_id="o-1",
                coupon="ORDER",
                affiliation="store",
                revenue=10,
                currency="EUR",
            )
        )
        (result,) = purchases_of(t)
        assert result["properties"] == {
            "order_id": "o-1",
            "coupon": "SHIRT",
            "affiliation": "store",
            "brand": "Acme",
        }

    @pytest.mark.parametrize("key", ["time", "event_name"])
    def test_reserved_purchase_keys_removed(self, key):
        """Braze's reserved purchase keys never appear in purchase properties."""
        t = translate(order({"sku": "p-1", "price": 10, key: "x", "color": "red"}))
        (result,) = purchases_of(t)
        assert result["properties"] == {"color": "red"}

    @pytest.mark.parametrize("key", ["time", "event_name", "price", "quantity", "product_id"])
    def test_reserved_order_keys_removed(self, key):
        """Reserved keys at order level are not copied into purchase properties."""
        message = order({"sku": "p-1", "price": 10}, color="red")
        message["properties"][key] = "x"
        (result,) = purchases_of(translate(message))
        assert result["properties"] == {"color": "red"}

    def test_empty_purchase_properties_omitted(self):
        """A purchase with no remaining properties has no properties key."""
        (result,) = purchases_of(translate(order({"sku": "p-1", "price": 10}, currency="USD")))
        assert "properties" not in result

    def test_app_id_on_purchases(self):
        """With app_id configured every purchase carries it."""
        t = translate(order({"sku": "p-1", "price": 10, "quantity": 150}), Settings(app_id="a"))
        assert [p["app_id"] for p in purchases_of(t)] == ["a", "a"]

    @pytest.mark.parametrize("flag", [True, False], ids=["update-only", "create"])
    def test_update_existing_only_on_purchases(self, flag):
        """Purchases carry the update_existing_only setting."""
        t = translate(order({"sku": "p-1", "price": 10}), Settings(update_existing_only=flag))
        assert [p["_update_existing_only"] for p in purchases_of(t)] == [flag]

    def test_order_level_warning_names_order_field(self):
        """A bad order-level property is reported at its own path, once."""
        t = translate(order({"sku": "a", "price": 1}, {"sku": "b", "price": 2}, note="n" * 300))
        assert all("properties" not in p for p in purchases_of(t))
        assert warning_paths(t) == ["$.properties.note"]


class TestRevenue:
    """With log_purchase_when_revenue_present, revenue without products is a purchase."""

    ON = Settings(log_purchase_when_revenue_present=True)

    def test_revenue_becomes_purchase(self):
        """Revenue becomes one purchase of the event name at that price, quantity 1."""
        t = translate(
            track(event="Subscription Renewed", properties={"revenue": 25.5, "plan": "pro"}),
            self.ON,
        )
        assert purchases_of(t) == [
            purchase(product_id="Subscription Renewed", price=25.5, properties={"plan": "pro"})
        ]

    @pytest.mark.parametrize(
        ("currency", "expected"),
        [
            pytest.param(None, "USD", id="default-usd"),
            pytest.param("EUR", "EUR", id="given"),
            pytest.param("eur", "EUR", id="upper-cased"),
        ],
    )
    def test_revenue_currency(self, currency, expected):
        """The revenue purchase uses properties.currency, else USD."""
        properties = {"revenue": 5}
        if currency is not None:
            properties["currency"] = currency
        (result,) = purchases_of(translate(track(properties=properties), self.ON))
        assert result["currency"] == expected
        assert "properties" not in result

    def test_revenue_zero(self):
        """A revenue of 0 is numeric and logs a purchase at price 0."""
        (result,) = purchases_of(translate(track(properties={"revenue": 0}), self.ON))
        assert result["price"] == 0

    def test_setting_off_keeps_event(self):
        """Without the setting, revenue stays an event property."""
        t = translate(track(properties={"revenue": 25.5}))
        assert event_of(t)["properties"] == {"revenue": 25.5}

    @pytest.mark.parametrize(
        "properties",
        [
            pytest.param({}, id="no-revenue"),
            pytest.param({"revenue": None}, id="null-revenue"),
            pytest.param({"revenue": "lots"}, id="non-numeric-revenue"),
        ],
    )
    def test_no_numeric_revenue_keeps_event(self, properties):
        """With the setting on, a track without numeric revenue stays an event."""
        t = translate(track(event="Signed Up", properties=properties), self.ON)
        assert event_of(t)["name"] == "Signed Up"

    def test_products_win_over_revenue(self):
        """With products present, purchases come from products, not from revenue."""
        t = translate(order({"sku": "p-1", "price": 10}, revenue=99), self.ON)
        assert purchases_of(t) == [purchase()]

    @pytest.mark.parametrize(
        "event",
        [
            "order refunded",
            "order_refunded",
            "ORDER-REFUNDED",
            "Order Canceled",
            "order  cancelled",
        ],
    )
    def test_refund_never_revenue_however_spelled(self, event):
        """Money going back stays an event, in any case and with _ or - for spaces."""
        t = translate(track(event=event, properties={"revenue": 20, "currency": "USD"}), self.ON)
        assert "purchases" not in track_body(t)
        assert event_of(t)["name"] == event


class TestNearPurchaseEvent:
    """An order named like a purchase event but spelled otherwise is noted, not revenue."""

    @pytest.mark.parametrize("event", ["order completed", "Order_Completed", "ORDER-COMPLETED"])
    def test_other_spelling_noted(self, event):
        """A custom event with products, and a warning that says how to make it purchases."""
        message = order({"product_id": "p-1", "price": 10})
        message["event"] = event
        t = translate(message)
        assert "purchases" not in track_body(t)
        assert event_of(t)["name"] == event
        assert t.warnings == (
            (
                "$.event",
                f"{event!r} is not the purchase event 'Order Completed' (names match exactly):"
                " sent as a custom event, no purchases; add it to purchase_events",
            ),
        )

    @pytest.mark.parametrize("event", ["Order Completed", "Checkout Started"])
    def test_exact_name_or_other_event_not_noted(self, event):
        """The purchase event itself, and an unrelated event with products, warn of nothing."""
        message = order({"product_id": "p-1", "price": 10})
        message["event"] = event
        assert translate(message).warnings == ()

    def test_listed_spelling_is_purchases(self):
        """Listing the spelling in purchase_events makes it purchases, as the warning says."""
        message = order({"product_id": "p-1", "price": 10})
        message["event"] = "order completed"
        settings = Settings(purchase_events={"Order Completed", "order completed"})
        t = translate(message, settings)
        assert [p["product_id"] for p in purchases_of(t)] == ["p-1"]
        assert t.warnings == ()


class TestNamedAppId:
    """RudderStack's integrations.braze.appId names the app of one message."""

    WEB = Settings(app_id="web-app")

    def test_event_and_purchases_carry_it(self):
        """The message's app id replaces the configured one on its event and purchases."""
        named = {"integrations": {"braze": {"appId": "ios-app"}}}
        event = event_of(translate(track(**named), self.WEB))
        message = {**order({"product_id": "p-1", "price": 10}), **named}
        (purchase,) = purchases_of(translate(message, self.WEB))
        assert (event["app_id"], purchase["app_id"]) == ("ios-app", "ios-app")

    def test_number_written_as_text(self):
        """A numeric appId is written as its decimal text, as RudderStack does."""
        t = translate(track(integrations={"Braze": {"appId": 123}}), self.WEB)
        assert event_of(t)["app_id"] == "123"

    def test_push_token_imported_for_that_app(self):
        """A device token in the same message is imported for the named app."""
        message = {
            "type": "identify",
            "userId": USER,
            "context": {"device": {"token": "tok-1"}},
            "integrations": {"braze": {"appId": "android-app"}},
        }
        (attributes,) = track_body(translate(message, self.WEB))["attributes"]
        assert attributes["push_tokens"] == [{"app_id": "android-app", "token": "tok-1"}]

    @pytest.mark.parametrize("value", ["", "  ", {"id": "x"}, True])
    def test_unusable_app_id_noted(self, value):
        """An appId that is not a non-empty string or number is noted; the setting is used."""
        t = translate(track(integrations={"braze": {"appId": value}}), self.WEB)
        assert event_of(t)["app_id"] == "web-app"
        assert warning_paths(t) == ["$.integrations.braze.appId"]

    def test_null_app_id_is_no_app_id(self):
        """appId: null names no app: the setting is used and nothing is noted."""
        t = translate(track(integrations={"braze": {"appId": None}}), self.WEB)
        assert event_of(t)["app_id"] == "web-app"
        assert t.warnings == ()
