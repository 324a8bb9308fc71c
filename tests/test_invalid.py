import pytest
from helpers import ABSENT, alias, delete, group, identify, page, screen, track

from segment_braze import InvalidMessage, Settings, translate

NO_TIME = dict.fromkeys(("timestamp", "originalTimestamp", "sentAt", "receivedAt"), ABSENT)


class TestInvalidMessageType:
    """InvalidMessage is the ValueError translate raises, carrying the JSON path."""

    def test_is_value_error(self):
        """InvalidMessage is a ValueError with a path and the path in its text."""
        with pytest.raises(ValueError, match=r"\$\.event") as caught:
            translate(track(event=ABSENT))
        assert isinstance(caught.value, InvalidMessage)
        assert caught.value.path == "$.event"


class TestNotAMessage:
    """Input that is not a JSON object is refused at the root path."""

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(None, id="null"),
            pytest.param([], id="array"),
            pytest.param([{"type": "track"}], id="array-of-message"),
            pytest.param("track", id="string"),
            pytest.param(42, id="number"),
            pytest.param(True, id="bool"),
        ],
    )
    def test_root(self, message):
        """A non-object message is an InvalidMessage at ``$``."""
        with pytest.raises(InvalidMessage) as caught:
            translate(message)
        assert caught.value.path == "$"


class TestType:
    """A missing or unknown ``type`` is invalid at ``$.type``."""

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param({}, id="empty-object"),
            pytest.param({"userId": "u"}, id="missing"),
            pytest.param({"type": None}, id="null"),
            pytest.param({"type": ""}, id="empty"),
            pytest.param({"type": 3}, id="number"),
            pytest.param({"type": ["track"]}, id="array"),
            pytest.param({"type": "purchase", "userId": "u"}, id="unknown"),
            pytest.param({"type": "batch", "batch": []}, id="batch-envelope"),
        ],
    )
    def test_type(self, message):
        """Each bad type is an InvalidMessage at $.type."""
        with pytest.raises(InvalidMessage) as caught:
            translate(message)
        assert caught.value.path == "$.type"


class TestRequiredFields:
    """Fields a call cannot do without are invalid at their own path."""

    @pytest.mark.parametrize(
        ("message", "path"),
        [
            pytest.param(track(event=ABSENT), "$.event", id="track-no-event"),
            pytest.param(track(event=None), "$.event", id="track-null-event"),
            pytest.param(track(event=""), "$.event", id="track-empty-event"),
            pytest.param(track(event="   "), "$.event", id="track-blank-event"),
            pytest.param(track(event=12), "$.event", id="track-numeric-event"),
            pytest.param(track(event={"name": "x"}), "$.event", id="track-object-event"),
            pytest.param(alias(previousId=ABSENT), "$.previousId", id="alias-no-previousId"),
            pytest.param(alias(previousId=""), "$.previousId", id="alias-empty-previousId"),
            pytest.param(alias(userId=ABSENT), "$.userId", id="alias-no-userId"),
            pytest.param(
                alias(userId=ABSENT, anonymousId="a"), "$.userId", id="alias-only-anonymousId"
            ),
            pytest.param(group(groupId=ABSENT), "$.groupId", id="group-no-groupId"),
        ],
    )
    def test_required(self, message, path):
        """A call missing what it needs is an InvalidMessage naming that field."""
        with pytest.raises(InvalidMessage) as caught:
            translate(message)
        assert caught.value.path == path


class TestNoUsableTime:
    """Track, page and screen need a usable time; the others need none."""

    @pytest.mark.parametrize(
        ("builder", "times"),
        [
            pytest.param(track, {}, id="track-none"),
            pytest.param(page, {}, id="page-none"),
            pytest.param(screen, {}, id="screen-none"),
            pytest.param(track, {"timestamp": "later"}, id="track-unusable"),
            pytest.param(
                track,
                {"timestamp": "x", "originalTimestamp": 5, "sentAt": "", "receivedAt": "?"},
                id="track-all-unusable",
            ),
            pytest.param(page, {"sentAt": None}, id="page-null"),
        ],
    )
    def test_invalid(self, builder, times):
        """No usable time is an InvalidMessage at $.timestamp."""
        message = builder(**(NO_TIME | times))
        with pytest.raises(InvalidMessage) as caught:
            translate(message, Settings(track_all_pages=True))
        assert caught.value.path == "$.timestamp"

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(identify(**NO_TIME), id="identify"),
            pytest.param(group(**NO_TIME), id="group"),
            pytest.param(alias(**NO_TIME), id="alias"),
            pytest.param(delete(**NO_TIME), id="delete"),
        ],
    )
    def test_not_needed(self, message):
        """Identify, group, alias and delete translate without any time."""
        t = translate(message)
        assert t.dropped is None
        assert t.requests()


class TestMalformedFields:
    """A field of the wrong JSON type is invalid at its path."""

    @pytest.mark.parametrize(
        ("message", "path"),
        [
            pytest.param(track(userId={"id": 1}), "$.userId", id="userId-object"),
            pytest.param(track(userId=["u"]), "$.userId", id="userId-array"),
            pytest.param(track(userId=True), "$.userId", id="userId-bool"),
            pytest.param(track(anonymousId=["a"]), "$.anonymousId", id="anonymousId-array"),
            pytest.param(track(messageId={"x": 1}), "$.messageId", id="messageId-object"),
            pytest.param(track(properties=["a"]), "$.properties", id="properties-array"),
            pytest.param(track(properties="a"), "$.properties", id="properties-string"),
            pytest.param(identify(traits=[1]), "$.traits", id="traits-array"),
            pytest.param(identify(context="web"), "$.context", id="context-string"),
            pytest.param(page(name=3), "$.name", id="page-name-number"),
            pytest.param(page(category=["a"]), "$.category", id="page-category-array"),
            pytest.param(group(groupId={"id": 1}), "$.groupId", id="groupId-object"),
            pytest.param(alias(previousId=[1]), "$.previousId", id="previousId-array"),
        ],
    )
    def test_malformed(self, message, path):
        """Each malformed field is an InvalidMessage naming its JSON path."""
        with pytest.raises(InvalidMessage) as caught:
            translate(message, Settings(track_all_pages=True))
        assert caught.value.path == path
