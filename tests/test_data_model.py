"""Issue 14 end to end: BrazeClient sends Braze's current data model to BrazeStandIn.

The stand-in judges with its own rules (it never imports the translation), so
these tests pin that what the library sends is what Braze takes: recommended
events the stand-in stores, fallbacks it never has to drop, email identifiers,
merges in the right order, subscription groups and merged nested objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_ecommerce import FAILURES, MAPPINGS, ecommerce

from segment_braze import BrazeClient, DeliveryReport, Event, Identifier, Settings, Translation
from segment_braze._translate.ecommerce import recommended_event
from segment_braze.testing import BrazeStandIn

KEY = "test-key"
TIME = "2024-05-01T12:00:00Z"
BRAZE_TIME = "2024-05-01T12:00:00.000Z"
GROUP = "3d2b1b6e-9c1f-4e7a-9d3b-2f1e0c4a5b6d"
NEWS = "0f6e2a47-1c3b-4d5e-8f9a-b0c1d2e3f4a5"


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def send(braze: BrazeStandIn, messages: list[Any], **options: Any) -> DeliveryReport:
    """Send ``messages`` to the stand-in in one call, with the given settings options."""
    settings = Settings(
        rest_api_key=KEY, rest_endpoint=braze.url, allow_custom_endpoint=True, **options
    )
    with BrazeClient(settings, backoff_initial=0.001, seed=1, workers=2) as client:
        return client.send(messages)


def errors(braze: BrazeStandIn) -> list[Any]:
    """Every errors entry the stand-in answered."""
    found = []
    for request in braze.requests:
        body = request.body if isinstance(request.body, dict) else {}
        found.extend(body.get("errors", []))
    return found


class TestRecommendedEventsReachBraze:
    """The library's recommended events are what the stand-in's own schema accepts."""

    def test_every_mapping_stored(self, braze):
        """Each of the seven mappings is delivered and stored as its Braze event."""
        messages = [
            {**ecommerce(event, properties), "messageId": name}
            for name, (event, properties, _, _) in MAPPINGS.items()
        ]
        report = send(braze, messages, ecommerce="recommended")
        assert (report.delivered, report.failed, report.dropped) == (7, (), ())
        assert sorted(event["name"] for event in braze.accepted_events) == sorted(
            name for _, _, name, _ in MAPPINGS.values()
        )

    def test_fallbacks_never_dropped_by_braze(self, braze):
        """Every invalid case is delivered as its plain custom event: nothing is lost."""
        messages = [
            {**ecommerce(event, properties), "messageId": name}
            for name, (event, properties, _, _) in FAILURES.items()
        ]
        report = send(braze, messages, ecommerce="recommended")
        assert (report.delivered, report.failed) == (len(FAILURES), ())
        assert not any(e["name"].startswith("ecommerce.") for e in braze.accepted_events)
        assert len(braze.accepted_events) == len(FAILURES)

    @pytest.mark.parametrize(
        ("event", "properties"), [case[:2] for case in FAILURES.values()], ids=list(FAILURES)
    )
    def test_both_judges_agree_on_invalid(self, braze, event, properties):
        """Forced past the pre-flight check, each invalid event is refused by the stand-in."""
        built = recommended_event(event, properties, source="segment")
        assert built.problems
        forced = Translation(
            message_id="forced",
            events=(
                Event(
                    identifier=Identifier(kind="external_id", value="u1"),
                    name=built.name,
                    time=BRAZE_TIME,
                    properties=built.properties,
                ),
            ),
        )
        report = send(braze, [forced])
        [failure] = report.failed
        # Braze's schema drops it in a success answer; an over-long string is
        # already refused by the ordinary event rules (a 400 for a lone object).
        assert (failure.message_id, failure.status) in {("forced", 201), ("forced", 400)}
        assert braze.accepted_events == []


class TestTheWholeModel:
    """One stream using every new option, as a team moving from RudderStack would."""

    def test_stream(self, braze):
        """Every message is delivered; profiles, events and merges are Braze's result."""
        visitor = {"anonymousId": "anon-1", "timestamp": TIME}
        messages = [
            {**visitor, "type": "page", "messageId": "m1", "properties": {"path": "/"}},
            {
                "type": "track",
                "messageId": "m2",
                "event": "Product Viewed",
                "timestamp": TIME,
                "properties": {"product_id": "p-1", "name": "Shirt", "price": 10},
                "context": {"traits": {"email": " Ann@Example.com "}},
            },
        ]
        first = send(braze, messages, **OPTIONS)
        assert first.delivered == 2
        assert ("email", "ann@example.com") in braze.profiles
        assert ("user_alias", "anon-1", "rudder_id") in braze.profiles

        messages = [
            {
                **visitor,
                "type": "identify",
                "messageId": "m3",
                "userId": "u1",
                "traits": {
                    "email": "ann@example.com",
                    "company": {"name": "Acme"},
                    "braze_subscription_groups": [
                        {"subscription_group_id": NEWS, "subscription_group_state": "subscribed"}
                    ],
                },
            },
            {
                "type": "identify",
                "messageId": "m4",
                "userId": "u1",
                "traits": {"company": {"size": 20}},
            },
            {
                "type": "group",
                "messageId": "m5",
                "userId": "u1",
                "groupId": GROUP,
                "traits": {"subscription_state": "unsubscribed"},
            },
            {**ecommerce(*MAPPINGS["order-completed"][:2]), "userId": "u1", "messageId": "m6"},
            {
                **ecommerce("Product Added", {"product_id": "p-2", "name": "Hat", "price": 5}),
                "userId": "u1",
                "messageId": "m7",
            },
        ]
        second = send(braze, messages, **OPTIONS)
        assert (second.delivered, second.failed, second.dropped) == (5, (), ())
        assert errors(braze) == []
        assert braze.ignored == []

        # The email-only and the alias profiles were merged into u1.
        assert list(braze.profiles) == [("external_id", "u1")]
        profile = braze.profiles[("external_id", "u1")]
        assert profile["email"] == "ann@example.com"
        assert profile["company"] == {"name": "Acme", "size": 20}
        states = {
            entry["subscription_group_id"]: entry["subscription_state"]
            for entry in profile["subscription_groups"]
        }
        assert states == {NEWS: "subscribed", GROUP: "unsubscribed"}
        # The email merge went before the track request writing the email to u1,
        # and the alias merge after it.
        bodies = [request.body or {} for request in braze.requests]
        by_email = next(n for n, body in enumerate(bodies) if "emails_to_identify" in body)
        by_alias = next(n for n, body in enumerate(bodies) if "aliases_to_identify" in body)
        writes_email = next(
            n
            for n, body in enumerate(bodies)
            for obj in body.get("attributes", [])
            if {"external_id": "u1", "email": "ann@example.com"}.items() <= obj.items()
        )
        assert by_email < writes_email < by_alias

        names = sorted(event["name"] for event in braze.accepted_events)
        assert names == [
            "Page Viewed",
            "Product Added",
            "ecommerce.order_placed",
            "ecommerce.product_viewed",
        ]
        assert [p["product_id"] for p in braze.accepted_purchases] == ["p-1"]
        viewed = [e for e in braze.accepted_events if e["name"] == "ecommerce.product_viewed"]
        assert viewed[0]["email"] == "ann@example.com"


OPTIONS: dict[str, Any] = {
    "ecommerce": "both",
    "fallback_identifiers": ("email",),
    "anonymous_users": "alias",
    "naming": "rudderstack",
    "track_all_pages": True,
    "group_subscriptions": True,
    "merge_nested_objects": True,
}
