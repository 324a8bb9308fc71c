import pytest
from helpers import (
    ABSENT,
    ALIAS,
    ANON,
    BRAZE_TIME,
    LABEL,
    USER,
    alias,
    delete,
    group,
    identify,
    order,
    page,
    screen,
    sent,
    track,
    track_body,
    warning_paths,
)

from segment_braze import InvalidMessage, Settings, translate

ALIAS_MODE = Settings(anonymous_users="alias")
IDENTIFIERS = ("external_id", "braze_id", "user_alias")
BRAZE_ID = "5e3b7c0f1a2b3c4d5e6f7a8b"


def assert_dropped(t):
    """The translation sends nothing and says why in one line."""
    assert t.requests() == []
    assert isinstance(t.dropped, str)
    assert t.dropped.strip()
    assert "\n" not in t.dropped


def identifiers(obj):
    """The primary identifier keys present in one Braze object."""
    return [key for key in IDENTIFIERS if key in obj]


def track_objects(t):
    """Every attributes, event and purchase object of the translation's track body."""
    (body,) = [body for path, body in sent(t) if path == "/users/track"]
    return [obj for kind in ("attributes", "events", "purchases") for obj in body.get(kind, [])]


def anonymous(builder, **fields):
    """A message from ``builder`` with only an anonymousId."""
    return builder(userId=ABSENT, anonymousId=ANON, **fields)


def tracked_page(**fields):
    """A named page message (tracked under TRACK_PAGES)."""
    return page(name="Home", **fields)


TRACK_PAGES = {"track_named_pages": True}
EVERY_ID = {
    "anonymousId": ANON,
    "integrations": {"Braze": {"braze_id": BRAZE_ID}},
    "context": {"device": {"token": "tok", "id": "device-1234"}},
}


class TestUserId:
    """``userId`` is the external_id; without one, the message is dropped."""

    @pytest.mark.parametrize(
        ("user_id", "external_id"),
        [
            pytest.param("user-1", "user-1", id="string"),
            pytest.param(42, "42", id="integer"),
        ],
    )
    def test_external_id(self, user_id, external_id):
        """The userId becomes external_id, numbers written as strings."""
        t = translate(track(userId=user_id))
        (event,) = track_body(t)["events"]
        assert event["external_id"] == external_id
        assert identifiers(event) == ["external_id"]

    @pytest.mark.parametrize(
        "builder",
        [
            pytest.param(identify, id="identify"),
            pytest.param(track, id="track"),
            pytest.param(group, id="group"),
            pytest.param(order, id="order"),
        ],
    )
    def test_no_user_id_dropped(self, builder):
        """A message with neither userId nor anonymousId is dropped with a reason."""
        message = builder() if builder is not order else order({"sku": "a", "price": 1})
        del message["userId"]
        t = translate(message)
        assert_dropped(t)
        assert "user id" in t.dropped.lower()

    @pytest.mark.parametrize(
        "builder",
        [
            pytest.param(identify, id="identify"),
            pytest.param(track, id="track"),
            pytest.param(group, id="group"),
        ],
    )
    def test_anonymous_dropped_by_default(self, builder):
        """With anonymous_users='drop' (default) an anonymous message is dropped with a reason."""
        t = translate(anonymous(builder))
        assert_dropped(t)
        assert "user id" in t.dropped.lower()

    def test_anonymous_page_dropped_by_default(self):
        """An anonymous page that would be tracked is still dropped without alias mode."""
        assert_dropped(translate(anonymous(tracked_page), Settings(**TRACK_PAGES)))

    @pytest.mark.parametrize(
        ("user_id", "kept"),
        [
            pytest.param("u" * 987, True, id="987-ascii-bytes"),
            pytest.param("u" * 988, False, id="988-ascii-bytes"),
            pytest.param("é" * 493, True, id="986-utf8-bytes"),
            pytest.param("é" * 494, False, id="988-utf8-bytes-494-chars"),
        ],
    )
    def test_external_id_byte_limit(self, user_id, kept):
        """An external_id over Braze's 987 bytes drops the message with a reason."""
        t = translate(track(userId=user_id))
        if kept:
            (event,) = track_body(t)["events"]
            assert event["external_id"] == user_id
        else:
            assert_dropped(t)

    @pytest.mark.parametrize(
        ("message", "settings"),
        [
            pytest.param(identify(userId="u" * 988), Settings(), id="identify"),
            pytest.param(track(userId="u" * 988), Settings(), id="track"),
            pytest.param(tracked_page(userId="u" * 988), Settings(**TRACK_PAGES), id="page"),
            pytest.param(
                screen(name="Cart", userId="u" * 988), Settings(**TRACK_PAGES), id="screen"
            ),
            pytest.param(group(userId="u" * 988), Settings(), id="group"),
            pytest.param(delete(userId="u" * 988), Settings(), id="delete"),
            pytest.param(alias(userId="u" * 988), Settings(), id="alias-identify"),
            pytest.param(alias(userId="u" * 988), Settings(alias_calls="merge"), id="alias-merge"),
            pytest.param(
                alias(previousId="u" * 988),
                Settings(alias_calls="merge"),
                id="alias-merge-previousId",
            ),
        ],
    )
    def test_external_id_byte_limit_every_call(self, message, settings):
        """No call type sends an external_id over Braze's 987 bytes; each is dropped."""
        assert_dropped(translate(message, settings))


class TestAnonymousAlias:
    """With anonymous_users='alias', anonymous users are tracked by user alias."""

    def test_anonymous_identify(self):
        """An anonymous identify creates the alias profile with its traits."""
        t = translate(anonymous(identify, traits={"plan": "pro", "email": "a@b.co"}), ALIAS_MODE)
        assert sent(t) == [
            (
                "/users/track",
                {
                    "attributes": [
                        {
                            "user_alias": ALIAS,
                            "plan": "pro",
                            "email": "a@b.co",
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]

    def test_anonymous_track(self):
        """An anonymous track sends the alias-creating attributes object before the event."""
        t = translate(anonymous(track, properties={"plan": "pro"}), ALIAS_MODE)
        body = track_body(t)
        assert list(body) == ["attributes", "events"]
        assert body["attributes"] == [{"user_alias": ALIAS, "_update_existing_only": False}]
        (event,) = body["events"]
        assert event["user_alias"] == ALIAS
        assert event["name"] == "Signed Up"
        assert event["time"] == BRAZE_TIME
        assert event["properties"] == {"plan": "pro"}
        assert identifiers(event) == ["user_alias"]

    def test_anonymous_order_completed(self):
        """An anonymous Order Completed creates the alias profile before its purchases."""
        message = anonymous(track, event="Order Completed")
        message["properties"] = {"products": [{"sku": "a", "price": 3, "quantity": 150}]}
        body = track_body(translate(message, ALIAS_MODE))
        assert list(body) == ["attributes", "purchases"]
        assert body["attributes"] == [{"user_alias": ALIAS, "_update_existing_only": False}]
        assert [p["quantity"] for p in body["purchases"]] == [100, 50]
        assert all(p["user_alias"] == ALIAS for p in body["purchases"])
        assert all(identifiers(p) == ["user_alias"] for p in body["purchases"])

    def test_anonymous_page(self):
        """An anonymous tracked page creates the alias profile before the page event."""
        t = translate(anonymous(tracked_page), Settings(anonymous_users="alias", **TRACK_PAGES))
        body = track_body(t)
        assert list(body) == ["attributes", "events"]
        assert body["attributes"] == [{"user_alias": ALIAS, "_update_existing_only": False}]
        assert body["events"][0]["name"] == "Viewed Home Page"

    def test_anonymous_group_single_attributes_object(self):
        """An anonymous group sets the group attribute in the one alias-creating object."""
        t = translate(anonymous(group, groupId="acme"), ALIAS_MODE)
        assert sent(t) == [
            (
                "/users/track",
                {
                    "attributes": [
                        {
                            "user_alias": ALIAS,
                            "ab_segment_group_acme": True,
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(anonymous(identify, traits={"plan": "pro"}), id="identify"),
            pytest.param(anonymous(track), id="track"),
            pytest.param(anonymous(group), id="group"),
        ],
    )
    def test_update_existing_only_not_applied_to_alias_creation(self, message):
        """update_existing_only=True does not stop the alias profile being created."""
        t = translate(message, Settings(anonymous_users="alias", update_existing_only=True))
        (attributes,) = track_body(t)["attributes"]
        assert attributes["user_alias"] == ALIAS
        assert attributes["_update_existing_only"] is False

    def test_alias_events_are_update_only(self):
        """Events sent by alias say they are update-only, as Braze treats them."""
        (event,) = track_body(translate(anonymous(track), ALIAS_MODE))["events"]
        assert event["_update_existing_only"] is True

    def test_custom_label(self):
        """anonymous_alias_label names the alias label on every object."""
        settings = Settings(anonymous_users="alias", anonymous_alias_label="anon")
        expected = {"alias_name": ANON, "alias_label": "anon"}
        assert all(
            obj["user_alias"] == expected
            for obj in track_objects(translate(anonymous(track), settings))
        )

    def test_numeric_anonymous_id(self):
        """A numeric anonymousId becomes the alias name as text."""
        t = translate(track(userId=ABSENT, anonymousId=7), ALIAS_MODE)
        assert all(
            obj["user_alias"] == {"alias_name": "7", "alias_label": LABEL}
            for obj in track_objects(t)
        )

    def test_no_ids_still_dropped(self):
        """Alias mode cannot help a message with neither userId nor anonymousId."""
        assert_dropped(translate(track(userId=ABSENT), ALIAS_MODE))

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(track(anonymousId=ANON), id="track"),
            pytest.param(group(anonymousId=ANON), id="group"),
            pytest.param(order({"sku": "a", "price": 1}) | {"anonymousId": ANON}, id="order"),
        ],
    )
    def test_user_id_wins(self, message):
        """With both ids, only the external_id is used and no alias object is made."""
        for obj in track_objects(translate(message, ALIAS_MODE)):
            assert identifiers(obj) == ["external_id"]
            assert obj["external_id"] == USER


class TestIdentifyMergesAlias:
    """In alias mode an identify with both ids merges the anonymous profile in."""

    def test_identify_both_ids(self):
        """The track request comes first, then /users/identify joining alias to user."""
        t = translate(identify(anonymousId=ANON, traits={"plan": "pro"}), ALIAS_MODE)
        assert sent(t) == [
            (
                "/users/track",
                {
                    "attributes": [
                        {"external_id": USER, "plan": "pro", "_update_existing_only": False}
                    ]
                },
            ),
            (
                "/users/identify",
                {"aliases_to_identify": [{"external_id": USER, "user_alias": ALIAS}]},
            ),
        ]

    def test_custom_label(self):
        """The identify body uses the configured alias label."""
        settings = Settings(anonymous_users="alias", anonymous_alias_label="visitor")
        t = translate(identify(anonymousId=ANON), settings)
        assert sent(t)[1] == (
            "/users/identify",
            {
                "aliases_to_identify": [
                    {
                        "external_id": USER,
                        "user_alias": {"alias_name": ANON, "alias_label": "visitor"},
                    }
                ]
            },
        )

    @pytest.mark.parametrize(
        ("message", "settings"),
        [
            pytest.param(identify(anonymousId=ANON), Settings(), id="drop-mode"),
            pytest.param(identify(), ALIAS_MODE, id="no-anonymousId"),
            pytest.param(track(anonymousId=ANON), ALIAS_MODE, id="track-not-identify"),
        ],
    )
    def test_no_identify_request(self, message, settings):
        """Only an identify with both ids in alias mode calls /users/identify."""
        assert [path for path, _ in sent(translate(message, settings))] == ["/users/track"]


def braze_external(*entries):
    """A context carrying RudderStack's ``externalId`` array."""
    return {"externalId": list(entries)}


class TestRudderStackExternalId:
    """RudderStack's context.externalId entry of type brazeExternalId names the external_id."""

    def test_overrides_user_id(self):
        """Every object goes to the named external id, not to userId."""
        context = braze_external({"type": "brazeExternalId", "id": "ext-9"})
        message = {**order({"product_id": "p-1", "price": 5}), "context": context}
        t = translate(message)
        assert [obj["external_id"] for obj in track_objects(t)] == ["ext-9"]

    def test_identifies_a_message_without_user_id(self):
        """A message with only an anonymousId and the entry is sent under that external id."""
        context = braze_external({"type": "brazeExternalId", "id": 42})
        t = translate(anonymous(track, context=context))
        assert [obj["external_id"] for obj in track_objects(t)] == ["42"]
        assert t.dropped is None

    def test_merges_the_anonymous_profile_into_it(self):
        """In alias mode an identify merges its anonymous alias into the named external id."""
        context = braze_external({"type": "brazeExternalId", "id": "ext-9"})
        t = translate(identify(anonymousId=ANON, context=context), ALIAS_MODE)
        assert sent(t)[1] == (
            "/users/identify",
            {"aliases_to_identify": [{"external_id": "ext-9", "user_alias": ALIAS}]},
        )

    @pytest.mark.parametrize(
        "context",
        [
            pytest.param(braze_external({"type": "hubspotId", "id": "h-1"}), id="other-type"),
            pytest.param(braze_external({"type": "brazeExternalId", "id": ""}), id="empty-id"),
            pytest.param(braze_external({"type": "brazeExternalId"}), id="no-id"),
            pytest.param({"externalId": {"brazeExternalId": "ext-9"}}, id="not-an-array"),
            pytest.param(braze_external("brazeExternalId"), id="entry-not-an-object"),
        ],
    )
    def test_user_id_otherwise(self, context):
        """Without a usable entry of that type, userId identifies the user as always."""
        t = translate(track(context=context))
        assert [obj["external_id"] for obj in track_objects(t)] == [USER]

    def test_last_entry_wins(self):
        """Of two such entries the last is used, as RudderStack's destination does."""
        context = braze_external(
            {"type": "brazeExternalId", "id": "first"},
            {"type": "brazeExternalId", "id": "last"},
        )
        t = translate(track(context=context))
        assert [obj["external_id"] for obj in track_objects(t)] == ["last"]

    def test_unusable_id_is_invalid_at_its_path(self):
        """An id that is neither string nor number makes the message invalid at its path."""
        context = braze_external({"type": "web"}, {"type": "brazeExternalId", "id": ["x"]})
        with pytest.raises(InvalidMessage) as err:
            translate(track(context=context))
        assert err.value.path == "$.context.externalId[1].id"


NAMED = {"alias_name": "crm-42", "alias_label": "crm_id"}


class TestNamedAlias:
    """RudderStack's integrations.braze.alias names the user alias a message belongs to."""

    def test_identifies_an_anonymous_message(self):
        """Without userId the message goes to the named alias, whose profile is created first."""
        message = anonymous(track, integrations={"braze": {"alias": NAMED}})
        t = translate(message)
        assert track_body(t) == {
            "attributes": [{"user_alias": NAMED, "_update_existing_only": False}],
            "events": [
                {
                    "user_alias": NAMED,
                    "name": "Signed Up",
                    "time": BRAZE_TIME,
                    "_update_existing_only": True,
                }
            ],
        }

    def test_read_from_context_integrations(self):
        """context.integrations.Braze.alias names it too."""
        message = anonymous(track, context={"integrations": {"Braze": {"alias": NAMED}}})
        assert [obj["user_alias"] for obj in track_objects(translate(message))] == [NAMED] * 2

    def test_user_id_wins(self):
        """A message with userId is sent under its external_id, the alias unused."""
        t = translate(track(integrations={"braze": {"alias": NAMED}}))
        assert [identifiers(obj) for obj in track_objects(t)] == [["external_id"]]

    def test_identify_merges_the_named_alias(self):
        """An identify with userId merges the named alias into the user, in any mode."""
        t = translate(identify(integrations={"BRAZE": {"alias": NAMED}}))
        assert sent(t)[1] == (
            "/users/identify",
            {"aliases_to_identify": [{"external_id": USER, "user_alias": NAMED}]},
        )

    def test_named_alias_merged_instead_of_anonymous_id(self):
        """In alias mode the named alias, not the anonymousId alias, is merged."""
        t = translate(
            identify(anonymousId=ANON, integrations={"braze": {"alias": NAMED}}), ALIAS_MODE
        )
        operations = [body for path, body in sent(t) if path == "/users/identify"]
        assert operations == [{"aliases_to_identify": [{"external_id": USER, "user_alias": NAMED}]}]

    @pytest.mark.parametrize(
        "alias",
        [
            pytest.param({"alias_name": "crm-42"}, id="no-label"),
            pytest.param({"alias_name": "", "alias_label": "crm_id"}, id="empty-name"),
            pytest.param({"alias_name": 42, "alias_label": "crm_id"}, id="number"),
            pytest.param("crm-42", id="not-an-object"),
        ],
    )
    def test_unusable_alias_noted(self, alias):
        """An alias without both names as strings is noted at its path and not used."""
        t = translate(anonymous(track, integrations={"braze": {"alias": alias}}), ALIAS_MODE)
        assert [obj["user_alias"] for obj in track_objects(t)] == [ALIAS] * 2
        assert warning_paths(t) == ["$.integrations.braze.alias"]


class TestBrazeId:
    """A Braze id given by the sender identifies the user when there is no userId."""

    @pytest.mark.parametrize(
        "message",
        [
            pytest.param(
                track(userId=ABSENT, integrations={"Braze": {"braze_id": BRAZE_ID}}),
                id="integrations",
            ),
            pytest.param(
                track(userId=ABSENT, context={"integrations": {"Braze": {"braze_id": BRAZE_ID}}}),
                id="context-integrations",
            ),
            pytest.param(track(userId=ABSENT, properties={"braze_id": BRAZE_ID}), id="properties"),
            pytest.param(identify(userId=ABSENT, traits={"braze_id": BRAZE_ID}), id="traits"),
        ],
    )
    def test_source(self, message):
        """Each of the four sources yields a braze_id identifier on every object."""
        objects = track_objects(translate(message))
        assert objects
        for obj in objects:
            assert identifiers(obj) == ["braze_id"]
            assert obj["braze_id"] == BRAZE_ID

    def test_identify_by_braze_id(self):
        """An identify by braze_id sends its traits, without copying braze_id as a trait."""
        t = translate(identify(userId=ABSENT, traits={"braze_id": BRAZE_ID, "plan": "pro"}))
        assert track_body(t) == {
            "attributes": [{"braze_id": BRAZE_ID, "plan": "pro", "_update_existing_only": False}]
        }

    def test_user_id_beats_braze_id(self):
        """With a userId, the braze_id is not used as identifier."""
        t = translate(identify(traits={"braze_id": BRAZE_ID, "plan": "pro"}))
        assert track_body(t) == {
            "attributes": [{"external_id": USER, "plan": "pro", "_update_existing_only": False}]
        }

    def test_braze_id_beats_alias(self):
        """A braze_id wins over the anonymous alias: no alias object is made."""
        message = track(
            userId=ABSENT, anonymousId=ANON, integrations={"Braze": {"braze_id": BRAZE_ID}}
        )
        body = track_body(translate(message, ALIAS_MODE))
        assert list(body) == ["events"]
        assert identifiers(body["events"][0]) == ["braze_id"]

    def test_braze_id_follows_update_setting(self):
        """A braze_id user's objects carry the update_existing_only setting."""
        message = group(userId=ABSENT, integrations={"Braze": {"braze_id": BRAZE_ID}})
        t = translate(message, Settings(update_existing_only=True))
        assert track_body(t) == {
            "attributes": [
                {"braze_id": BRAZE_ID, "ab_segment_group_acme": True, "_update_existing_only": True}
            ]
        }


class TestAliasCalls:
    """A Segment alias call maps by alias_calls: identify, merge or drop."""

    def test_identify_mode(self):
        """alias_calls='identify' joins previousId (as alias) to userId."""
        t = translate(alias(previousId="visitor-9"), Settings(alias_calls="identify"))
        assert sent(t) == [
            (
                "/users/identify",
                {
                    "aliases_to_identify": [
                        {
                            "external_id": USER,
                            "user_alias": {"alias_name": "visitor-9", "alias_label": LABEL},
                        }
                    ]
                },
            )
        ]

    def test_identify_is_default(self):
        """Without settings an alias call uses the identify mode."""
        assert sent(translate(alias())) == [
            (
                "/users/identify",
                {"aliases_to_identify": [{"external_id": USER, "user_alias": ALIAS}]},
            )
        ]

    def test_identify_mode_label(self):
        """The identify mode uses the configured alias label."""
        t = translate(alias(), Settings(anonymous_alias_label="visitor"))
        body = sent(t)[0][1]
        assert body["aliases_to_identify"][0]["user_alias"] == {
            "alias_name": ANON,
            "alias_label": "visitor",
        }

    def test_merge_mode(self):
        """alias_calls='merge' merges the previousId user into the userId user."""
        t = translate(alias(previousId="old-id"), Settings(alias_calls="merge"))
        assert sent(t) == [
            (
                "/users/merge",
                {
                    "merge_updates": [
                        {
                            "identifier_to_merge": {"external_id": "old-id"},
                            "identifier_to_keep": {"external_id": USER},
                        }
                    ]
                },
            )
        ]

    def test_drop_mode(self):
        """alias_calls='drop' drops the alias call with a reason."""
        assert_dropped(translate(alias(), Settings(alias_calls="drop")))

    @pytest.mark.parametrize("mode", ["identify", "merge", "drop"])
    @pytest.mark.parametrize(
        ("missing", "path"),
        [("previousId", "$.previousId"), ("userId", "$.userId")],
    )
    def test_missing_id_invalid(self, mode, missing, path):
        """An alias without previousId or userId is an InvalidMessage naming the field."""
        with pytest.raises(InvalidMessage) as caught:
            translate(alias(**{missing: ABSENT}), Settings(alias_calls=mode))
        assert caught.value.path == path


class TestPushTokens:
    """An identify with context.device.token imports the push token."""

    APP = Settings(app_id="app-1")

    @pytest.mark.parametrize(
        ("device_id", "token_entry", "paths"),
        [
            pytest.param(
                "device-1234",
                {"app_id": "app-1", "token": "tok", "device_id": "device-1234"},
                [],
                id="with-device-id",
            ),
            pytest.param(ABSENT, {"app_id": "app-1", "token": "tok"}, [], id="no-device-id"),
            pytest.param(
                "d" * 8,
                {"app_id": "app-1", "token": "tok", "device_id": "d" * 8},
                [],
                id="8-bytes",
            ),
            pytest.param(
                "d" * 255,
                {"app_id": "app-1", "token": "tok", "device_id": "d" * 255},
                [],
                id="255-bytes",
            ),
            pytest.param(
                "é" * 4,
                {"app_id": "app-1", "token": "tok", "device_id": "é" * 4},
                [],
                id="8-utf8-bytes-4-chars",
            ),
            pytest.param(
                "d" * 7,
                {"app_id": "app-1", "token": "tok"},
                ["$.context.device.id"],
                id="7-bytes-omitted",
            ),
            pytest.param(
                "d" * 256,
                {"app_id": "app-1", "token": "tok"},
                ["$.context.device.id"],
                id="256-bytes-omitted",
            ),
            pytest.param(
                "é" * 128,
                {"app_id": "app-1", "token": "tok"},
                ["$.context.device.id"],
                id="256-utf8-bytes-128-chars-omitted",
            ),
        ],
    )
    def test_push_token(self, device_id, token_entry, paths):
        """The token is imported with device_id only when it is 8 to 255 bytes."""
        device = {"token": "tok"}
        if device_id is not ABSENT:
            device["id"] = device_id
        t = translate(identify(context={"device": device}), self.APP)
        assert track_body(t) == {
            "attributes": [
                {"external_id": USER, "push_tokens": [token_entry], "_update_existing_only": False}
            ]
        }
        assert warning_paths(t) == paths

    def test_without_app_id_skipped(self):
        """Without app_id the token is skipped with a warning."""
        t = translate(identify(context={"device": {"token": "tok", "id": "device-1234"}}))
        assert track_body(t) == {
            "attributes": [{"external_id": USER, "_update_existing_only": False}]
        }
        assert warning_paths(t) == ["$.context.device.token"]

    def test_no_token_nothing_added(self):
        """A device without a token adds no push_tokens and no warning."""
        t = translate(identify(context={"device": {"id": "device-1234"}}), self.APP)
        assert "push_tokens" not in track_body(t)["attributes"][0]
        assert t.warnings == ()

    def test_alias_user_token(self):
        """An anonymous identify in alias mode imports the token on the alias profile."""
        settings = Settings(app_id="app-1", anonymous_users="alias")
        t = translate(anonymous(identify, context={"device": {"token": "tok"}}), settings)
        assert track_body(t) == {
            "attributes": [
                {
                    "user_alias": ALIAS,
                    "push_tokens": [{"app_id": "app-1", "token": "tok"}],
                    "_update_existing_only": False,
                }
            ]
        }

    def test_track_does_not_import_tokens(self):
        """Only identify imports push tokens; a track with a device token sends just the event."""
        t = translate(track(context={"device": {"token": "tok"}}), self.APP)
        assert list(track_body(t)) == ["events"]


class TestDeleteIdentity:
    """A delete needs an external id; without userId it is dropped, never silently."""

    @pytest.mark.parametrize(
        ("message", "settings"),
        [
            pytest.param({"type": "delete"}, Settings(), id="no-ids"),
            pytest.param({"type": "delete", "anonymousId": ANON}, Settings(), id="anonymous"),
            pytest.param(
                {"type": "delete", "anonymousId": ANON}, ALIAS_MODE, id="anonymous-alias-mode"
            ),
            pytest.param(
                {"type": "delete", "integrations": {"Braze": {"braze_id": BRAZE_ID}}},
                Settings(),
                id="braze-id-only",
            ),
        ],
    )
    def test_without_user_id_dropped(self, message, settings):
        """A delete without userId sends nothing and gives a reason."""
        assert_dropped(translate(message, settings))

    def test_delete_ignores_anonymous_id(self):
        """A delete with both ids deletes only the external id."""
        t = translate(delete(anonymousId=ANON), ALIAS_MODE)
        assert sent(t) == [("/users/delete", {"external_ids": [USER]})]


class TestOneIdentifier:
    """Every object carries exactly one primary identifier, whatever ids arrive."""

    @pytest.mark.parametrize("user_id", [USER, ABSENT], ids=["with-userId", "without-userId"])
    @pytest.mark.parametrize(
        "builder",
        [
            pytest.param(
                lambda **f: identify(traits={"braze_id": "x", "plan": 1}, **f), id="identify"
            ),
            pytest.param(lambda **f: track(properties={"braze_id": "x"}, **f), id="track"),
            pytest.param(
                lambda **f: track(
                    event="Order Completed",
                    properties={"products": [{"sku": "a", "price": 1}]},
                    **f,
                ),
                id="order",
            ),
            pytest.param(tracked_page, id="page"),
            pytest.param(group, id="group"),
        ],
    )
    def test_exactly_one(self, builder, user_id):
        """No object ever carries two of external_id, braze_id and user_alias."""
        settings = Settings(anonymous_users="alias", app_id="app-1", **TRACK_PAGES)
        objects = track_objects(translate(builder(userId=user_id, **EVERY_ID), settings))
        assert objects
        expected = ["external_id"] if user_id is not ABSENT else ["braze_id"]
        assert all(identifiers(obj) == expected for obj in objects)


class TestRudderStackAliasLabel:
    """naming="rudderstack" labels anonymous aliases rudder_id unless a label is given."""

    @pytest.mark.parametrize(
        ("settings", "label"),
        [
            pytest.param({}, LABEL, id="segment-default"),
            pytest.param({"naming": "rudderstack"}, "rudder_id", id="rudderstack-default"),
            pytest.param(
                {"naming": "rudderstack", "anonymous_alias_label": "visitor"},
                "visitor",
                id="explicit-label-wins",
            ),
            pytest.param(
                {"naming": "rudderstack", "anonymous_alias_label": LABEL},
                LABEL,
                id="explicit-segment-label-kept",
            ),
        ],
    )
    def test_label_on_every_alias(self, settings, label):
        """Alias objects, identify merges and alias calls all carry the one label."""
        settings = Settings(anonymous_users="alias", **settings)
        expected = {"alias_name": ANON, "alias_label": label}
        assert all(
            obj["user_alias"] == expected
            for obj in track_objects(translate(anonymous(track), settings))
        )
        (_, merge) = sent(translate(identify(anonymousId=ANON), settings))
        assert merge[1]["aliases_to_identify"][0]["user_alias"] == expected
        (entry,) = sent(translate(alias(), settings))[0][1]["aliases_to_identify"]
        assert entry["user_alias"] == expected


EMAIL = {"fallback_identifiers": ("email",)}
PHONE = {"fallback_identifiers": ("phone",)}
BOTH_LOOKUPS = {"fallback_identifiers": ("email", "phone")}
JANE = "jane@example.com"
JANE_PHONE = "+14155552671"


def lookup_of(obj):
    """The identifier keys of one Braze object: primary ids, else email or phone."""
    keys = identifiers(obj)
    return keys or [key for key in ("email", "phone") if key in obj][:1]


class TestFallbackIdentifiers:
    """fallback_identifiers: email, then phone, as Braze's lookup identifiers."""

    @pytest.mark.parametrize(
        ("message", "settings", "expected"),
        [
            pytest.param(
                track(userId=ABSENT, properties={"email": " Jane@Example.COM "}),
                EMAIL,
                ("email", JANE),
                id="track-properties-email-normalised",
            ),
            pytest.param(
                track(userId=ABSENT, context={"traits": {"email": JANE}}),
                EMAIL,
                ("email", JANE),
                id="track-context-traits",
            ),
            pytest.param(
                track(
                    userId=ABSENT,
                    context={"traits": {"email": JANE}},
                    properties={"email": "other@example.com"},
                ),
                EMAIL,
                ("email", JANE),
                id="context-traits-before-properties",
            ),
            pytest.param(
                identify(userId=ABSENT, traits={"email": JANE}),
                EMAIL,
                ("email", JANE),
                id="identify-traits",
            ),
            pytest.param(
                identify(
                    userId=ABSENT,
                    traits={"email": JANE},
                    context={"traits": {"email": "ctx@example.com"}},
                ),
                EMAIL,
                ("email", JANE),
                id="traits-before-context-traits",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"phone": f" {JANE_PHONE} "}),
                PHONE,
                ("phone", JANE_PHONE),
                id="phone-trimmed",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"email": JANE, "phone": JANE_PHONE}),
                BOTH_LOOKUPS,
                ("email", JANE),
                id="email-before-phone",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"email": JANE, "phone": JANE_PHONE}),
                {"fallback_identifiers": ("phone", "email")},
                ("phone", JANE_PHONE),
                id="order-given-decides",
            ),
            pytest.param(
                track(properties={"email": JANE}),
                EMAIL,
                ("external_id", USER),
                id="user-id-wins",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"email": JANE, "braze_id": BRAZE_ID}),
                EMAIL,
                ("braze_id", BRAZE_ID),
                id="braze-id-wins",
            ),
            pytest.param(
                track(userId=ABSENT, anonymousId=ANON, properties={"email": JANE}),
                {**EMAIL, "anonymous_users": "alias"},
                ("email", JANE),
                id="email-before-alias",
            ),
            pytest.param(
                group(userId=ABSENT, context={"traits": {"email": JANE}}),
                EMAIL,
                ("email", JANE),
                id="group-context-traits",
            ),
        ],
    )
    def test_identifier(self, message, settings, expected):
        """Every object of the message carries the one identifier chosen."""
        kind, value = expected
        for obj in track_objects(translate(message, Settings(**settings))):
            assert lookup_of(obj) == [kind]
            assert obj[kind] == value

    @pytest.mark.parametrize(
        ("message", "settings", "path"),
        [
            pytest.param(
                track(userId=ABSENT, properties={"phone": "(415) 555-2671"}),
                PHONE,
                "$.properties.phone",
                id="phone-not-e164",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"phone": 14155552671}),
                PHONE,
                "$.properties.phone",
                id="phone-number-type",
            ),
            pytest.param(
                track(userId=ABSENT, properties={"email": "jane at example"}),
                EMAIL,
                "$.properties.email",
                id="email-not-an-address",
            ),
            pytest.param(
                identify(userId=ABSENT, traits={"email": 7}),
                EMAIL,
                "$.traits.email",
                id="email-not-text",
            ),
        ],
    )
    def test_unusable_value_not_used(self, message, settings, path):
        """An unusable email or phone is not used, with a warning; no id left drops it."""
        t = translate(message, Settings(**settings))
        assert_dropped(t)
        assert "email or phone" in t.dropped
        assert path in warning_paths(t)

    def test_unusable_email_then_phone(self):
        """A bad email gives way to the phone number, with a warning at the email."""
        message = track(userId=ABSENT, properties={"email": "nope", "phone": JANE_PHONE})
        t = translate(message, Settings(**BOTH_LOOKUPS))
        (event,) = track_body(t)["events"]
        assert event["phone"] == JANE_PHONE
        assert "email" not in event
        assert warning_paths(t) == ["$.properties.email"]

    def test_unusable_phone_then_alias(self):
        """In alias mode a message without a usable email or phone falls back to the alias."""
        message = track(userId=ABSENT, anonymousId=ANON, properties={"phone": "555"})
        t = translate(message, Settings(anonymous_users="alias", **PHONE))
        assert all(lookup_of(obj) == ["user_alias"] for obj in track_objects(t))
        assert warning_paths(t) == ["$.properties.phone"]

    def test_group_traits_are_not_the_user(self):
        """A group's traits describe the group: its email never identifies the user."""
        t = translate(group(userId=ABSENT, traits={"email": "team@acme.com"}), Settings(**EMAIL))
        assert_dropped(t)

    def test_off_by_default(self):
        """Without fallback_identifiers, a message with only an email is dropped as before."""
        assert_dropped(translate(track(userId=ABSENT, properties={"email": JANE})))

    def test_identify_by_email(self):
        """An identify by email sends one object whose email is the identifier, normalised."""
        message = identify(userId=ABSENT, traits={"email": "Jane@Example.com", "plan": "pro"})
        t = translate(message, Settings(**EMAIL))
        assert track_body(t) == {
            "attributes": [{"email": JANE, "plan": "pro", "_update_existing_only": False}]
        }
        assert t.warnings == ()

    def test_phone_identifier_leaves_email_out(self):
        """Beside a phone identifier an email attribute is left out, with a warning."""
        message = identify(userId=ABSENT, traits={"email": "not-an-address", "phone": JANE_PHONE})
        t = translate(message, Settings(**BOTH_LOOKUPS))
        (attributes,) = track_body(t)["attributes"]
        assert attributes == {"phone": JANE_PHONE, "_update_existing_only": False}
        assert warning_paths(t) == ["$.traits.email", "$.traits.email"]

    @pytest.mark.parametrize("flag", [True, False], ids=["update-only", "create"])
    def test_update_existing_only(self, flag):
        """Objects by email carry update_existing_only like those by external_id."""
        message = track(userId=ABSENT, properties={"email": JANE})
        t = translate(message, Settings(update_existing_only=flag, **EMAIL))
        assert track_body(t)["events"][0]["_update_existing_only"] is flag


PRIORITY = ["unidentified", "most_recently_updated"]


class TestEmailMerges:
    """With email among fallback_identifiers, an identify merges email-only profiles first."""

    @pytest.mark.parametrize(
        ("message", "email"),
        [
            pytest.param(identify(traits={"email": " Jane@Example.com"}), JANE, id="traits"),
            pytest.param(identify(context={"traits": {"email": JANE}}), JANE, id="context-traits"),
        ],
    )
    def test_identify_before_track(self, message, email):
        """/users/identify emails_to_identify goes before the identify's /users/track."""
        requests = sent(translate(message, Settings(**EMAIL)))
        assert [path for path, _ in requests] == ["/users/identify", "/users/track"]
        assert requests[0][1] == {
            "emails_to_identify": [
                {"external_id": USER, "email": email, "prioritization": PRIORITY}
            ]
        }

    def test_with_alias_merge(self):
        """In alias mode the email merge goes first and the alias merge after the track."""
        message = identify(anonymousId=ANON, traits={"email": JANE})
        t = translate(message, Settings(anonymous_users="alias", **EMAIL))
        assert [(path, list(body)) for path, body in sent(t)] == [
            ("/users/identify", ["emails_to_identify"]),
            ("/users/track", ["attributes"]),
            ("/users/identify", ["aliases_to_identify"]),
        ]

    @pytest.mark.parametrize(
        ("message", "settings"),
        [
            pytest.param(identify(traits={"email": JANE}), Settings(), id="fallback-off"),
            pytest.param(identify(traits={"email": JANE}), Settings(**PHONE), id="phone-only"),
            pytest.param(identify(traits={"plan": "pro"}), Settings(**EMAIL), id="no-email"),
            pytest.param(
                identify(userId=ABSENT, traits={"email": JANE}),
                Settings(**EMAIL),
                id="no-user-id",
            ),
            pytest.param(
                track(properties={"email": JANE}), Settings(**EMAIL), id="track-not-identify"
            ),
        ],
    )
    def test_no_merge(self, message, settings):
        """Only an identify with a userId and an email, with email fallback on, merges."""
        assert [path for path, _ in sent(translate(message, settings))] == ["/users/track"]

    def test_unusable_email_not_merged(self):
        """An email that is not an address merges nothing, with a warning; traits still go."""
        t = translate(identify(traits={"email": "n/a"}), Settings(**EMAIL))
        assert [path for path, _ in sent(t)] == ["/users/track"]
        assert warning_paths(t) == ["$.traits.email"]
        assert track_body(t)["attributes"][0]["email"] == "n/a"
