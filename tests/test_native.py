"""Messages built in Python: datetimes, Decimals, UUIDs, Enums, sets, NumPy scalars.

A service that builds its Segment messages in Python hands ``translate()`` the
values Segment's analytics-python accepts and turns into JSON before sending
(``segment/analytics/utils.py`` ``clean``: a Decimal becomes a float, an Enum its
value, a set a list; its JSON encoder writes dates and datetimes in ISO 8601).
They must give the Braze data the JSON form would give, never an invalid message
or a silently lost field.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from helpers import USER, identify, only, order, track, warning_paths
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_braze import InvalidMessage, Settings, translate

UTC = dt.UTC
PLUS_2 = dt.timezone(dt.timedelta(hours=2))
ID = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


class Plan(enum.Enum):
    """A plain Enum of text."""

    PRO = "pro"


class Currency(enum.StrEnum):
    """A StrEnum, as currency codes are often kept."""

    EUR = "EUR"


class Seats(enum.IntEnum):
    """An IntEnum."""

    TEN = 10


class Event(enum.Enum):
    """Event names kept in an Enum."""

    SIGNED_UP = "Signed Up"


class Nested(enum.Enum):
    """A member whose value is another member."""

    PLAN = Plan.PRO


class BadZone(dt.tzinfo):
    """A caller's own time zone whose offset datetime refuses (a day or more)."""

    def utcoffset(self, moment: dt.datetime | None) -> dt.timedelta:
        """An offset of 25 hours."""
        return dt.timedelta(hours=25)

    def dst(self, moment: dt.datetime | None) -> dt.timedelta:
        """No daylight saving."""
        return dt.timedelta(0)

    def tzname(self, moment: dt.datetime | None) -> str:
        """Its name."""
        return "bad"


def event_of(message: dict[str, Any], **options: Any) -> dict[str, Any]:
    """The one event a track message sends."""
    return only(translate(message, Settings(**options)), "events")


class TestEventTime:
    """A datetime or date as the message's time."""

    @pytest.mark.parametrize(
        ("timestamp", "expected"),
        [
            pytest.param(
                dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=PLUS_2),
                "2026-01-02T01:04:05.000Z",
                id="aware-in-utc",
            ),
            pytest.param(
                dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000Z", id="naive-is-utc"
            ),
            pytest.param(
                dt.datetime(2026, 1, 2, 3, 4, 5, 123_456, tzinfo=UTC),
                "2026-01-02T03:04:05.123Z",
                id="milliseconds",
            ),
            pytest.param(dt.date(2026, 1, 2), "2026-01-02T00:00:00.000Z", id="date-midnight"),
        ],
    )
    def test_time_in_braze_form(self, timestamp, expected):
        """The event's time is the instant in UTC, in Braze's form."""
        assert event_of(track(timestamp=timestamp))["time"] == expected

    @given(
        st.datetimes(
            min_value=dt.datetime(1971, 1, 1),
            max_value=dt.datetime(2099, 12, 31),
            timezones=st.one_of(st.none(), st.timezones()),
        )
    )
    @settings(max_examples=200, deadline=None)
    def test_same_as_the_iso_text_analytics_python_sends(self, moment):
        """A datetime gives the time its ISO 8601 text (what analytics-python sends) gives."""
        built = translate(track(timestamp=moment))
        parsed = translate(track(timestamp=moment.isoformat()))
        assert built == parsed

    @pytest.mark.parametrize(
        "timestamp",
        [
            pytest.param(dt.datetime(1, 1, 1, tzinfo=PLUS_2), id="before-year-1-in-utc"),
            pytest.param(dt.datetime(2026, 1, 2, tzinfo=BadZone()), id="bad-zone"),
        ],
    )
    def test_unusable_datetime_falls_back(self, timestamp):
        """A datetime with no instant in UTC is noted, and the next time field is used."""
        t = translate(track(timestamp=timestamp, sentAt="2026-03-04T05:06:07Z"))
        assert only(t, "events")["time"] == "2026-03-04T05:06:07.000Z"
        assert warning_paths(t) == ["$.timestamp"]


class TestIds:
    """UUIDs and Enum members as ids."""

    def test_uuid_ids_are_their_text(self):
        """A UUID userId, anonymousId and messageId are sent as their canonical text."""
        t = translate(track(userId=ID, messageId=uuid.UUID(int=7)))
        assert only(t, "events")["external_id"] == str(ID)
        assert t.message_id == "00000000-0000-0000-0000-000000000007"

    def test_enum_event_name(self):
        """An Enum member as the event name is sent as its value."""
        assert event_of(track(event=Event.SIGNED_UP))["name"] == "Signed Up"

    def test_object_id_still_invalid(self):
        """An id with no JSON form is still an invalid message naming its path."""
        with pytest.raises(InvalidMessage) as err:
            translate(track(userId=object()))
        assert err.value.path == "$.userId"


class TestProperties:
    """Python values in event properties, at the top and nested."""

    def test_each_value_as_json(self):
        """Each value is sent as the JSON it stands for, and nothing is noted."""
        t = translate(
            track(
                properties={
                    "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=PLUS_2),
                    "day": dt.date(2026, 1, 2),
                    "amount": Decimal("1.50"),
                    "order": ID,
                    "plan": Plan.PRO,
                    "nested_plan": Nested.PLAN,
                    "seats": Seats.TEN,
                    "tags": {"b", "c", "a"},
                    "sizes": frozenset({3, 1.5, 2}),
                }
            )
        )
        assert only(t, "events")["properties"] == {
            "at": "2026-01-02T01:04:05.000Z",
            "day": "2026-01-02",
            "amount": 1.5,
            "order": str(ID),
            "plan": "pro",
            "nested_plan": "pro",
            "seats": 10,
            "tags": ["a", "b", "c"],
            "sizes": [1.5, 2, 3],
        }
        assert t.warnings == ()

    def test_nested_values_as_json(self):
        """Inside nested objects and arrays, the same values are sent as JSON."""
        t = translate(
            track(properties={"cart": {"at": dt.date(2020, 1, 1), "items": [Decimal("2"), ID]}})
        )
        assert only(t, "events")["properties"] == {
            "cart": {"at": "2020-01-01", "items": [2.0, str(ID)]}
        }

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(Decimal("NaN"), id="nan"),
            pytest.param(Decimal("sNaN"), id="signaling-nan"),
            pytest.param(Decimal("Infinity"), id="infinity"),
            pytest.param(Decimal("1E+400"), id="beyond-a-float"),
        ],
    )
    def test_decimal_that_is_no_number_dropped(self, value):
        """A Decimal with no finite float is dropped with a warning, the rest sent."""
        t = translate(track(properties={"amount": value, "plan": "pro"}))
        assert only(t, "events")["properties"] == {"plan": "pro"}
        assert warning_paths(t) == ["$.properties.amount"]

    def test_value_with_no_json_form_still_dropped(self):
        """A Python object with no JSON form is still dropped with its warning."""
        t = translate(track(properties={"blob": object(), "plan": "pro"}))
        assert only(t, "events")["properties"] == {"plan": "pro"}
        assert t.warnings == (("$.properties.blob", "object is not JSON; dropped"),)


class TestTraits:
    """Python values in identify traits."""

    def test_standard_and_custom_traits(self):
        """A date birthday is dob; datetimes, Decimals and sets are custom attributes as JSON."""
        t = translate(
            identify(
                traits={
                    "birthday": dt.date(1990, 5, 17),
                    "createdAt": dt.datetime(2020, 1, 1, 12, 0),
                    "ltv": Decimal("3.25"),
                    "plan": Plan.PRO,
                    "logins": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
                    "tags": {"vip", "beta"},
                }
            )
        )
        assert only(t, "attributes") == {
            "external_id": USER,
            "dob": "1990-05-17",
            "createdAt": "2020-01-01T12:00:00.000Z",
            "ltv": 3.25,
            "plan": "pro",
            "logins": ["2026-01-01", "2026-01-02"],
            "tags": ["beta", "vip"],
            "_update_existing_only": False,
        }
        assert t.warnings == ()

    def test_date_birthday_agrees_with_dob(self):
        """A date birthday and the same dob as text are one value: nothing is noted."""
        t = translate(identify(traits={"dob": "1990-05-17", "birthday": dt.date(1990, 5, 17)}))
        assert only(t, "attributes")["dob"] == "1990-05-17"
        assert t.warnings == ()


class TestMoney:
    """Decimal prices and revenue are money, not dropped fields."""

    def test_order_products(self):
        """Decimal price and quantity, a UUID product id and an Enum currency make purchases."""
        t = translate(
            order(
                {"product_id": ID, "price": Decimal("19.99"), "quantity": Decimal("2")},
                currency=Currency.EUR,
            )
        )
        purchase = only(t, "purchases")
        assert (purchase["product_id"], purchase["price"], purchase["quantity"]) == (
            str(ID),
            19.99,
            2,
        )
        assert purchase["currency"] == "EUR"
        assert t.warnings == ()

    def test_decimal_revenue_is_a_purchase(self):
        """With log_purchase_when_revenue_present, a Decimal revenue is logged as a purchase."""
        t = translate(
            track(event="Upgraded", properties={"revenue": Decimal("30.00"), "currency": "EUR"}),
            Settings(log_purchase_when_revenue_present=True),
        )
        purchase = only(t, "purchases")
        assert (purchase["product_id"], purchase["price"], purchase["currency"]) == (
            "Upgraded",
            30.0,
            "EUR",
        )

    def test_recommended_event(self):
        """Braze's eCommerce events read Decimal prices and UUID ids the same way."""
        t = translate(
            track(
                event="Product Viewed",
                properties={"product_id": ID, "name": "Shirt", "price": Decimal("19.99")},
            ),
            Settings(ecommerce="recommended"),
        )
        properties = only(t, "events")["properties"]
        assert (properties["product_id"], properties["price"]) == (str(ID), 19.99)


class TestNumpy:
    """NumPy scalars, what pandas' DataFrame.to_dict() gives for numbers."""

    def test_scalars_as_python_values(self):
        """int64, uint8, float32 and bool_ are sent as the number or boolean they hold."""
        t = translate(
            track(
                userId=np.int64(5),
                properties={
                    "count": np.int64(3),
                    "ok": np.bool_(True),
                    "ratio": np.float32(1.5),
                    "nested": {"level": np.uint8(7)},
                },
            )
        )
        event = only(t, "events")
        assert event["external_id"] == "5"
        assert event["properties"] == {"count": 3, "ok": True, "ratio": 1.5, "nested": {"level": 7}}
        assert t.warnings == ()

    def test_money(self):
        """A float32 price and an int64 quantity make the purchase."""
        t = translate(
            order({"product_id": "p-1", "price": np.float32(2.5), "quantity": np.int64(2)})
        )
        purchase = only(t, "purchases")
        assert (purchase["price"], purchase["quantity"]) == (2.5, 2)

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(np.datetime64("2026-01-01T00:00:00.000000000"), id="datetime64"),
            pytest.param(np.array([1, 2]), id="array"),
        ],
    )
    def test_times_and_arrays_dropped(self, value):
        """A datetime64 (never read as its nanoseconds) or an array is dropped with a warning."""
        t = translate(track(properties={"value": value, "plan": "pro"}))
        assert only(t, "events")["properties"] == {"plan": "pro"}
        assert warning_paths(t) == ["$.properties.value"]
