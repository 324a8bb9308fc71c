"""A message's identity: its source, messageId (or content digest) and time."""

from __future__ import annotations

import pytest

from segment_braze._replay.identity import NO_TIME, identify, message_time

T0 = 1714521600000  # 2024-05-01T00:00:00Z in milliseconds


class TestId:
    """A message is known by its messageId, or by a digest of its content."""

    def test_message_id(self):
        """The messageId is the id."""
        assert identify({"type": "track", "messageId": "abc"}).id == "m:abc"

    def test_digest_ignores_key_order(self):
        """Without a messageId, the same content in another key order is the same id."""
        first = identify({"type": "track", "event": "A", "userId": "u"})
        second = identify({"userId": "u", "event": "A", "type": "track"})
        assert first.id == second.id
        assert first.id.startswith("h:")

    def test_digest_tells_content_apart(self):
        """Different content without a messageId gives different ids."""
        assert identify({"type": "track", "event": "A"}) != identify(
            {"type": "track", "event": "B"}
        )

    @pytest.mark.parametrize("message_id", ["", None, 7])
    def test_unusable_message_id_falls_back_to_the_digest(self, message_id):
        """An empty, null or non-string messageId does not name the message."""
        assert identify({"type": "track", "messageId": message_id}).id.startswith("h:")

    def test_digest_is_the_one_version_1_recorded(self):
        """The digest is 0.1.0's, so a message it recorded without a messageId is known."""
        message = {
            "type": "track",
            "event": "A",
            "userId": "u",
            "timestamp": "2024-05-01T00:00:00Z",
        }
        assert identify(message).id == "h:1c0d24380f4575facc448a2e525201aa"


class TestSource:
    """The source is the projectId, else the segment-logs folder, else one for all input."""

    @pytest.mark.parametrize(
        ("message", "folder", "source"),
        [
            ({"projectId": "Zx8k"}, "folder", "Zx8k"),
            ({"projectId": ""}, "folder", "folder"),
            ({"projectId": 5}, None, ""),
            ({}, "folder", "folder"),
            ({}, None, ""),
        ],
    )
    def test_source(self, message, folder, source):
        """A usable projectId wins over the folder; without either, one source."""
        assert identify({"type": "track", **message}, folder).source == source


class TestTime:
    """The time is when the message happened, in milliseconds, as --since reads it."""

    @pytest.mark.parametrize(
        ("message", "time"),
        [
            ({"timestamp": "2024-05-01T00:00:00.250Z"}, T0 + 250),
            ({"timestamp": "2024-05-01T02:00:00+02:00"}, T0),
            ({"timestamp": "soon", "originalTimestamp": "2024-05-01T00:00:01Z"}, T0 + 1000),
            ({"receivedAt": "2024-05-01T00:00:00Z"}, T0),
            ({"timestamp": "1969-12-31T23:59:59.999Z"}, -1),
            ({}, None),
        ],
    )
    def test_time(self, message, time):
        """The first usable time field decides; offsets count; none gives None."""
        assert message_time(message) == time

    def test_no_time(self):
        """A message with no usable time has the time NO_TIME."""
        assert identify({"type": "track", "messageId": "a"}).time == NO_TIME
