"""What Segment itself would deliver to Braze, on messages shaped as real clients send them."""

import json
import math
import os
import subprocess
import sys
from typing import Any, ClassVar

import pytest
from helpers import BRAZE_TIME, USER, identify, page, sent, track, track_body, warning_paths
from real_clients import ORDER, messages

from segment_braze import InvalidMessage, Settings, _json, translate

OFF = 'integrations object turns Braze off ("Braze": false)'


class TestIntegrationsObject:
    """Segment's per-message integrations object decides whether Braze gets the message."""

    @pytest.mark.parametrize(
        ("integrations", "reason"),
        [
            pytest.param({"Braze": False}, OFF, id="Braze-false"),
            pytest.param(
                {"All": False}, 'integrations object turns Braze off ("All": false)', id="All-false"
            ),
            pytest.param({"All": False, "Braze": True}, None, id="All-false-Braze-true"),
            pytest.param(
                {"Appboy": False},
                'integrations object turns Braze off ("Appboy": false)',
                id="Appboy-false",
            ),
            pytest.param(
                {"Braze Cloud Mode (Actions)": False},
                'integrations object turns Braze off ("Braze Cloud Mode (Actions)": false)',
                id="Actions-false",
            ),
            pytest.param({"Braze": {"braze_id": "b-1"}}, None, id="Braze-options-object"),
            pytest.param({"All": False, "Braze": {"braze_id": "b-1"}}, None, id="All-off-options"),
            pytest.param({"Braze": True}, None, id="Braze-true"),
            pytest.param({"braze": False}, None, id="keys-are-case-sensitive"),
            pytest.param({"Mixpanel": False}, None, id="another-destination"),
            pytest.param({}, None, id="empty"),
        ],
    )
    def test_top_level_object(self, integrations, reason):
        """The first Braze name present decides, else All, else the message flows."""
        result = translate(track(integrations=integrations))
        assert result.dropped == reason
        assert (not result.requests()) == (reason is not None)

    @pytest.mark.parametrize(
        ("top", "context", "reason"),
        [
            pytest.param(
                None,
                {"Braze": False},
                'context.integrations turns Braze off ("Braze": false)',
                id="context-only",
            ),
            pytest.param({"Braze": True}, {"Braze": False}, None, id="top-level-decides"),
            pytest.param({"All": True}, {"Braze": False}, None, id="top-level-All-decides"),
            pytest.param({"Mixpanel": True}, {"All": False}, "All", id="context-when-top-silent"),
        ],
    )
    def test_context_integrations(self, top, context, reason):
        """context.integrations counts like the top level; the top level wins where both decide."""
        overrides = {"context": {"integrations": context}}
        if top is not None:
            overrides["integrations"] = top
        dropped = translate(track(**overrides)).dropped
        if reason is None or reason.startswith("context"):
            assert dropped == reason
        else:
            assert dropped == f'context.integrations turns Braze off ("{reason}": false)'

    def test_first_configured_name_decides(self):
        """With Braze on and Appboy off, the first name in integration_names decides."""
        message = track(integrations={"Appboy": False, "Braze": True})
        assert translate(message).dropped is None
        settings = Settings(integration_names=("Appboy", "Braze"))
        assert translate(message, settings).dropped == (
            'integrations object turns Braze off ("Appboy": false)'
        )

    def test_empty_names_turn_the_filter_off(self):
        """integration_names=() delivers whatever the integrations object says."""
        message = track(integrations={"All": False, "Braze": False})
        assert translate(message, Settings(integration_names=())).dropped is None

    def test_delete_is_always_delivered(self):
        """A deletion request goes to Braze even when the integrations object turns Braze off."""
        result = translate({"type": "delete", "userId": USER, "integrations": {"All": False}})
        assert sent(result) == [("/users/delete", {"external_ids": [USER]})]

    def test_malformed_message_turned_off_is_dropped_not_invalid(self):
        """Segment never sends Braze a message the object turns off, so it is no fault of ours."""
        message = {"type": "track", "userId": USER, "integrations": {"Braze": False}}
        result = translate(message)
        assert result.dropped == OFF

    def test_integrations_not_an_object_is_ignored_with_a_warning(self):
        """A non-object integrations value cannot switch anything off; the warning says so."""
        result = translate(track(integrations=["Braze"]))
        assert result.dropped is None
        assert "$.integrations" in warning_paths(result)

    def test_drop_keeps_the_message_id(self):
        """The dropped translation names the message, for the report and dead-letter file."""
        result = translate(track(messageId="m-7", integrations={"Braze": False}))
        assert result.message_id == "m-7"


class TestConsent:
    """Segment Consent Management: every configured category must be consented to."""

    SETTINGS = Settings(consent_categories=("Advertising", "Analytics"))

    @pytest.mark.parametrize(
        ("context", "reason"),
        [
            pytest.param({}, None, id="no-consent-object"),
            pytest.param({"consent": {}}, None, id="no-preferences"),
            pytest.param({"consent": {"categoryPreferences": {}}}, None, id="empty-preferences"),
            pytest.param(
                {"consent": {"categoryPreferences": {"Advertising": True, "Analytics": True}}},
                None,
                id="all-granted",
            ),
            pytest.param(
                {"consent": {"categoryPreferences": {"Advertising": True, "Analytics": False}}},
                "Analytics",
                id="one-refused",
            ),
            pytest.param(
                {"consent": {"categoryPreferences": {"Advertising": True}}},
                "Analytics",
                id="one-missing",
            ),
            pytest.param(
                {"consent": {"categoryPreferences": {"Advertising": "yes", "Analytics": True}}},
                "Advertising",
                id="not-literally-true",
            ),
        ],
    )
    def test_categories(self, context, reason):
        """Messages without preferences flow; others need every category true."""
        dropped = translate(track(context=context), self.SETTINGS).dropped
        if reason is None:
            assert dropped is None
        else:
            assert dropped == f"consent not given for category {reason!r} (context.consent)"

    def test_off_by_default(self):
        """Without consent_categories, consent preferences do not filter."""
        context = {"consent": {"categoryPreferences": {"Advertising": False}}}
        assert translate(track(context=context)).dropped is None

    def test_consent_before_integrations(self):
        """Consent is evaluated first, as in Segment's reconcile order."""
        message = track(
            integrations={"Braze": False},
            context={"consent": {"categoryPreferences": {"Advertising": False}}},
        )
        dropped = translate(message, self.SETTINGS).dropped
        assert dropped is not None
        assert dropped.startswith("consent not given")

    def test_delete_ignores_consent(self):
        """A deletion is a privacy obligation: consent preferences never hold it back."""
        message = {
            "type": "delete",
            "userId": USER,
            "context": {"consent": {"categoryPreferences": {"Advertising": False}}},
        }
        assert translate(message, self.SETTINGS).dropped is None

    def test_from_segment_keeps_defaults(self):
        """Settings.from_segment leaves the delivery rules at their defaults."""
        settings = Settings.from_segment({"appGroupId": "k", "datacenter": "us"})
        assert settings.integration_names == ("Braze", "Appboy", "Braze Cloud Mode (Actions)")
        assert settings.consent_categories == ()


class TestPurchaseEvents:
    """Only an order is revenue: products become purchases for purchase_events only."""

    @pytest.mark.parametrize(
        ("event", "settings", "kind"),
        [
            pytest.param("Order Completed", Settings(), "purchases", id="order-completed"),
            pytest.param("Order Refunded", Settings(), "events", id="refund-never-revenue"),
            pytest.param("Checkout Started", Settings(), "events", id="checkout-is-an-event"),
            pytest.param(
                "Order Refunded",
                Settings(purchase_events=None),
                "purchases",
                id="None-is-the-old-guide-table",
            ),
            pytest.param(
                "Subscription Paid",
                Settings(purchase_events=["Subscription Paid"]),
                "purchases",
                id="own-purchase-event",
            ),
            pytest.param(
                "Order Completed",
                Settings(purchase_events=["Subscription Paid"]),
                "events",
                id="order-not-in-own-set",
            ),
        ],
    )
    def test_which_tracks_log_purchases(self, event, settings, kind):
        """A track with products is purchases only when its event is a purchase event."""
        body = track_body(translate(track(event=event, properties=ORDER), settings))
        assert list(body) == [kind]

    def test_other_events_keep_products_as_a_property(self):
        """A refund's products stay in the event as a nested property, unchanged."""
        body = track_body(translate(track(event="Order Refunded", properties=ORDER)))
        assert body["events"][0]["properties"]["products"] == ORDER["products"]

    @pytest.mark.parametrize(
        ("log_revenue", "kind"), [(True, "purchases"), (False, "events")], ids=["on", "off"]
    )
    def test_checkout_with_revenue(self, log_revenue, kind):
        """A Checkout Started with products and revenue is one revenue purchase only when asked."""
        settings = Settings(log_purchase_when_revenue_present=log_revenue)
        body = track_body(translate(track(event="Checkout Started", properties=ORDER), settings))
        assert list(body) == [kind]
        if kind == "purchases":
            assert [p["product_id"] for p in body["purchases"]] == ["Checkout Started"]
            assert body["purchases"][0]["price"] == 25.0

    @pytest.mark.parametrize("event", ["Order Refunded", "Order Cancelled"])
    def test_refund_with_revenue_is_never_a_purchase(self, event):
        """Money going back stays an event even with log_purchase_when_revenue_present."""
        settings = Settings(log_purchase_when_revenue_present=True)
        message = track(event=event, properties={"revenue": 25.0, "currency": "EUR"})
        assert list(track_body(translate(message, settings))) == ["events"]


class TestContextTraits:
    """Traits in context.traits are traits too (RudderStack's SDKs send them there)."""

    def test_identify_merges_context_traits(self):
        """An identify whose traits live only in context.traits updates the profile."""
        message = identify(context={"traits": {"email": "a@example.com", "plan": "pro"}})
        attributes = track_body(translate(message))["attributes"][0]
        assert attributes["email"] == "a@example.com"
        assert attributes["plan"] == "pro"

    def test_traits_win_over_context_traits(self):
        """A key in traits wins over the same key in context.traits."""
        message = identify(
            traits={"plan": "enterprise"}, context={"traits": {"plan": "pro", "seats": 3}}
        )
        attributes = track_body(translate(message))["attributes"][0]
        assert (attributes["plan"], attributes["seats"]) == ("enterprise", 3)

    def test_warning_names_the_context_path(self):
        """A bad trait from context.traits is reported at its own JSON path."""
        result = translate(identify(context={"traits": {"gender": "blue"}}))
        assert warning_paths(result) == ["$.context.traits.gender"]

    def test_track_ignores_context_traits_by_default(self):
        """Without context_traits_as_attributes a track sends only its event."""
        message = track(context={"traits": {"plan": "pro"}})
        assert list(track_body(translate(message))) == ["events"]

    @pytest.mark.parametrize("builder", [track, page], ids=["track", "page"])
    def test_events_update_attributes_when_asked(self, builder):
        """With context_traits_as_attributes, the same body carries the attributes object."""
        settings = Settings(context_traits_as_attributes=True, track_all_pages=True)
        message = builder(context={"traits": {"plan": "pro", "gender": "female"}})
        body = track_body(translate(message, settings))
        assert body["attributes"] == [
            {"external_id": USER, "plan": "pro", "gender": "F", "_update_existing_only": False}
        ]
        assert len(body["events"]) == 1


class TestContextAttributes:
    """context_attributes maps the device context to standard attributes on identify."""

    CONTEXT: ClassVar[dict[str, Any]] = {
        "location": {"country": "Germany", "latitude": 52.52, "longitude": 13.405},
        "timezone": "Europe/Berlin",
        "locale": "de-DE",
    }

    def test_off_by_default(self):
        """Braze's SDKs capture these themselves, so nothing is taken from context by default."""
        attributes = track_body(translate(identify(context=self.CONTEXT)))["attributes"][0]
        assert set(attributes) == {"external_id", "_update_existing_only"}

    def test_mapped_when_on(self):
        """Country (ISO), location, time zone and the locale's language become attributes."""
        settings = Settings(context_attributes=True)
        attributes = track_body(translate(identify(context=self.CONTEXT), settings))
        assert attributes["attributes"][0] == {
            "external_id": USER,
            "country": "DE",
            "current_location": {"latitude": 52.52, "longitude": 13.405},
            "time_zone": "Europe/Berlin",
            "language": "de",
            "_update_existing_only": False,
        }

    def test_traits_win_over_context(self):
        """A trait wins over the value the context carries."""
        settings = Settings(context_attributes=True)
        message = identify(
            traits={"language": "fr", "address": {"country": "FR"}}, context=self.CONTEXT
        )
        attributes = track_body(translate(message, settings))["attributes"][0]
        assert (attributes["language"], attributes["country"]) == ("fr", "FR")


class TestStandardValues:
    """Gender null, event time, numbers and birthdays as a user would expect."""

    def test_gender_null_clears(self):
        """gender: null is sent as null, which clears the stored gender in Braze."""
        attributes = track_body(translate(identify(traits={"gender": None})))["attributes"][0]
        assert "gender" in attributes
        assert attributes["gender"] is None

    TIMES: ClassVar[dict[str, str]] = {
        "originalTimestamp": "2024-01-01T00:00:00Z",
        "sentAt": "2024-01-01T00:00:10Z",
        "receivedAt": "2024-01-01T00:05:00Z",
    }

    @pytest.mark.parametrize(
        ("event_time", "expected"),
        [
            ("timestamp", "2024-01-01T00:04:50.000Z"),
            ("receivedAt", "2024-01-01T00:05:00.000Z"),
            ("originalTimestamp", "2024-01-01T00:00:00.000Z"),
        ],
    )
    def test_event_time_setting(self, event_time, expected):
        """Without timestamp: Segment's skew correction, or the field event_time names."""
        message = track(timestamp=None, **self.TIMES)
        body = track_body(translate(message, Settings(event_time=event_time)))
        assert body["events"][0]["time"] == expected

    def test_received_at_mode_reproduces_segment_actions(self):
        """event_time='receivedAt' takes receivedAt even when timestamp is present."""
        message = track(receivedAt="2024-01-01T00:05:00Z")
        body = track_body(translate(message, Settings(event_time="receivedAt")))
        assert body["events"][0]["time"] == "2024-01-01T00:05:00.000Z"
        assert track_body(translate(message))["events"][0]["time"] == BRAZE_TIME

    def test_numeric_user_id_is_the_exact_decimal(self):
        """A big numeric userId keeps every digit."""
        big = 12345678901234567890123
        body = track_body(translate(track(userId=big)))
        assert body["events"][0]["external_id"] == "12345678901234567890123"

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
    def test_non_finite_user_id_is_invalid(self, bad):
        """A NaN or infinite userId is an InvalidMessage, never the user "nan"."""
        with pytest.raises(InvalidMessage) as caught:
            translate(track(userId=bad))
        assert caught.value.path == "$.userId"

    def test_integer_too_long_to_write_is_invalid(self):
        """An id of over 4,300 digits is refused with the path, not a ValueError."""
        with pytest.raises(InvalidMessage) as caught:
            translate(track(userId=10**5000))
        assert caught.value.path == "$.userId"

    @pytest.mark.parametrize(
        ("birthday", "dob", "note"),
        [
            pytest.param("1990-05-17", "1990-05-17", None, id="iso"),
            pytest.param("05/06/1990", "1990-05-06", "month-first (ambiguous)", id="us-slash"),
            pytest.param("17/05/1990", "1990-05-17", "day-first", id="day-first"),
            pytest.param("06.05.1990", "1990-05-06", "day-first (ambiguous)", id="dotted"),
            pytest.param("19900517", "1990-05-17", "YYYYMMDD", id="compact"),
            pytest.param("May 17, 1990", "1990-05-17", "read as", id="words"),
            pytest.param("2024", None, "bare year", id="bare-year"),
            pytest.param("111111111111", None, "digits", id="digit-run"),
            pytest.param("05/06/90", None, "two-digit year", id="two-digit-year"),
            pytest.param("31/31/1990", None, "not a date", id="impossible"),
        ],
    )
    def test_birthdays_say_how_they_were_read(self, birthday, dob, note):
        """A guessed birthday carries a warning saying how; an implausible one is dropped."""
        result = translate(identify(traits={"birthday": birthday}))
        attributes = track_body(result)["attributes"][0]
        assert attributes.get("dob") == dob
        texts = [text for path, text in result.warnings if path == "$.traits.birthday"]
        if note is None:
            assert texts == []
        else:
            assert len(texts) == 1
            assert note in texts[0]
            assert ("dropped" in texts[0]) == (dob is None)


class TestBigIntegers:
    """Integers of any size survive parsing and serialising, with and without orjson."""

    DOCUMENT = (
        b'{"type":"track","userId":"u","event":"E","timestamp":"2024-01-01T00:00:00Z",'
        b'"properties":{"big":123456789012345678901234567890,"small":7}}'
    )

    @pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "stdlib"])
    def test_round_trip(self, monkeypatch, orjson):
        """A 30-digit property is delivered exactly; orjson alone would turn it into a float."""
        if not orjson:
            monkeypatch.setattr(_json, "_orjson", None)
        message = _json.loads(self.DOCUMENT)
        properties = message["properties"]
        assert properties["big"] == 123456789012345678901234567890
        assert isinstance(properties["big"], int)
        body = translate(message).requests()[0].body
        assert b"123456789012345678901234567890" in _json.dumps(body)
        assert json.loads(_json.dumps(body))["events"][0]["properties"]["small"] == 7


class TestClusters:
    """US-09 exists, and host names compare case-insensitively."""

    def test_us_09(self):
        """Braze opened US-09 in 2025; its endpoints are rest./sdk.us-09.braze.com."""
        settings = Settings(datacenter="US-09")
        assert settings.rest_endpoint == "https://rest.us-09.braze.com"
        assert settings.sdk_endpoint == "sdk.us-09.braze.com"

    def test_mixed_case_host_is_braze(self):
        """rest.iad-01.Braze.com is Braze's host, normalised to lower case."""
        settings = Settings(rest_endpoint="https://rest.iad-01.Braze.com")
        assert settings.rest_endpoint == "https://rest.iad-01.braze.com"
        assert settings.datacenter == "US-01"


class TestRealClients:
    """Messages as Segment's official clients send them translate; the switched-off ones drop."""

    @pytest.mark.parametrize(
        ("name", "message", "reason"), messages(), ids=lambda v: v if isinstance(v, str) else ""
    )
    def test_translates(self, name, message, reason):
        """Every client message translates; Braze-off ones are dropped with the key named."""
        settings = Settings(anonymous_users="alias", track_all_pages=True)
        result = translate(message, settings)
        assert result.dropped == reason, name
        assert bool(result.requests()) == (reason is None), name


class TestTranslateCommand:
    """segment-braze translate --summary counts what the delivery rules held back."""

    def test_summary_counts_integrations_drops(self, tmp_path):
        """Integrations-object drops get their own summary line, apart from other drops."""
        path = tmp_path / "clients.jsonl"
        path.write_text("".join(json.dumps(m) + "\n" for _, m, _ in messages()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRAZE_")}
        result = subprocess.run(
            [sys.executable, "-m", "segment_braze", "translate", "--summary", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stderr
        lines = [" ".join(line.split()) for line in result.stderr.splitlines()]
        expected = sum(1 for _, _, reason in messages() if reason is not None)
        assert f"{expected} turned off for Braze by the integrations object" in lines
        assert len(result.stdout.splitlines()) == len(messages())
