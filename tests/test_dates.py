import datetime as dt
import re

import pytest
from helpers import ABSENT, page, screen, track, track_body, warning_paths
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_braze import InvalidMessage, Settings, translate

BRAZE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
STAMPS = {
    "timestamp": "2015-01-01T00:00:01Z",
    "originalTimestamp": "2015-01-01T00:00:02Z",
    "sentAt": "2015-01-01T00:00:03Z",
    "receivedAt": "2015-01-01T00:00:04Z",
}


def event_time(message, settings=None):
    """The ``time`` of the single event a message becomes."""
    (event,) = track_body(translate(message, settings))["events"]
    return event["time"]


class TestTimeFormat:
    """Event times are ISO 8601 in UTC with milliseconds and a Z."""

    @pytest.mark.parametrize(
        ("timestamp", "expected"),
        [
            pytest.param("2015-01-01T00:00:00Z", "2015-01-01T00:00:00.000Z", id="zulu"),
            pytest.param("2015-01-01T00:00:00.123Z", "2015-01-01T00:00:00.123Z", id="millis"),
            pytest.param("2015-01-01T00:00:00.5Z", "2015-01-01T00:00:00.500Z", id="tenths"),
            pytest.param(
                "2015-01-01T00:00:00.123456Z", "2015-01-01T00:00:00.123Z", id="micros-truncated"
            ),
            pytest.param(
                "2015-06-30T23:59:59.999999Z",
                "2015-06-30T23:59:59.999Z",
                id="never-rounded-into-next-day",
            ),
            pytest.param("2015-01-01T00:00:00+00:00", "2015-01-01T00:00:00.000Z", id="plus-zero"),
            pytest.param("2015-01-01T02:00:00+02:00", "2015-01-01T00:00:00.000Z", id="east"),
            pytest.param("2014-12-31T19:00:00-05:00", "2015-01-01T00:00:00.000Z", id="west"),
            pytest.param("2015-01-01T05:30:00+05:30", "2015-01-01T00:00:00.000Z", id="half-hour"),
            pytest.param(
                "2015-03-01T01:00:00+03:00", "2015-02-28T22:00:00.000Z", id="across-month"
            ),
            pytest.param("2015-01-01T00:00:00", "2015-01-01T00:00:00.000Z", id="naive-is-utc"),
            pytest.param(
                "2015-01-01T12:34:56.789", "2015-01-01T12:34:56.789Z", id="naive-millis-is-utc"
            ),
        ],
    )
    def test_track_time(self, timestamp, expected):
        """A track's time is written in UTC with milliseconds and Z."""
        assert event_time(track(timestamp=timestamp)) == expected

    def test_page_and_screen_times(self):
        """Page and screen events use the same time form."""
        settings = Settings(track_all_pages=True)
        stamp = "2015-01-01T01:00:00+01:00"
        assert event_time(page(timestamp=stamp), settings) == "2015-01-01T00:00:00.000Z"
        assert event_time(screen(timestamp=stamp), settings) == "2015-01-01T00:00:00.000Z"

    def test_purchase_time(self):
        """Purchases carry the same time form as events."""
        message = track(
            event="Order Completed",
            timestamp="2015-01-01T01:00:00.250+01:00",
            properties={"products": [{"sku": "a", "price": 1}]},
        )
        (result,) = track_body(translate(message))["purchases"]
        assert result["time"] == "2015-01-01T00:00:00.250Z"

    @settings(max_examples=200, deadline=None)
    @given(
        moment=st.datetimes(
            min_value=dt.datetime(1971, 1, 1),
            max_value=dt.datetime(2099, 12, 31),
            timezones=st.builds(
                dt.timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timedelta(minutes=m))
            ),
        )
    )
    def test_any_aware_time(self, moment):
        """Any offset time becomes the same instant, in UTC, to the millisecond."""
        written = event_time(track(timestamp=moment.isoformat()))
        assert BRAZE_TIME.match(written)
        utc = moment.astimezone(dt.UTC)
        expected = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
        parsed = dt.datetime.strptime(written, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        assert parsed == expected


class TestTimeFallback:
    """time comes from timestamp, else Segment's skew correction, else the other fields in order."""

    @pytest.mark.parametrize(
        ("present", "second"),
        [
            pytest.param(FIELDS, "01", id="all-timestamp-wins"),
            # receivedAt - (sentAt - originalTimestamp) = 04 - (03 - 02) = 03.
            pytest.param(FIELDS[1:], "03", id="skew-corrected"),
            pytest.param(("originalTimestamp", "sentAt"), "02", id="originalTimestamp"),
            pytest.param(FIELDS[2:], "03", id="sentAt"),
            pytest.param(FIELDS[3:], "04", id="receivedAt"),
            pytest.param(("receivedAt", "originalTimestamp"), "02", id="order-not-keys"),
            pytest.param(("timestamp", "receivedAt"), "01", id="timestamp-over-receivedAt"),
        ],
    )
    @pytest.mark.parametrize("builder", [track, page, screen], ids=["track", "page", "screen"])
    def test_precedence(self, builder, present, second):
        """The first usable field in Segment's order gives the time."""
        fields = dict.fromkeys(FIELDS, ABSENT) | {field: STAMPS[field] for field in present}
        message = builder(**fields)
        settings = Settings(track_all_pages=True)
        assert event_time(message, settings) == f"2015-01-01T00:00:{second}.000Z"

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param("yesterday", id="word"),
            pytest.param("", id="empty"),
            pytest.param(1420070400, id="number"),
            pytest.param("2015-13-40T00:00:00Z", id="impossible"),
        ],
    )
    def test_unusable_timestamp_falls_back(self, bad):
        """An unusable timestamp is skipped with a warning and the next field used."""
        t = translate(track(timestamp=bad, sentAt="2015-01-01T00:00:03Z"))
        (event,) = track_body(t)["events"]
        assert event["time"] == "2015-01-01T00:00:03.000Z"
        assert warning_paths(t) == ["$.timestamp"]

    @pytest.mark.parametrize("builder", [track, page, screen], ids=["track", "page", "screen"])
    def test_no_usable_time_invalid(self, builder):
        """With no usable time at all, the message is an InvalidMessage."""
        with pytest.raises(InvalidMessage):
            translate(builder(timestamp="soon", receivedAt=None), Settings(track_all_pages=True))
