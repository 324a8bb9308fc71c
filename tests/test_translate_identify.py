import pytest
from helpers import USER, identify, only, sent, track, track_body, warning_paths

from segment_braze import Settings, translate


def attributes_of(traits, settings=None):
    """The attributes Braze receives for an identify with ``traits``, minus the frame."""
    body = only(translate(identify(traits=traits), settings), "attributes")
    assert body.pop("external_id") == USER
    assert body.pop("_update_existing_only") is False
    return body


class TestIdentifyShape:
    """An identify becomes one attributes object in one /users/track request."""

    def test_one_attributes_object(self):
        """An identify sends exactly one /users/track body with one attributes object."""
        t = translate(identify(traits={"email": "ada@example.com"}))
        assert sent(t) == [
            (
                "/users/track",
                {
                    "attributes": [
                        {
                            "external_id": USER,
                            "email": "ada@example.com",
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]
        assert t.dropped is None
        assert t.warnings == ()

    def test_without_traits(self):
        """An identify without traits still sends the bare attributes object."""
        t = translate(identify(traits={}))
        assert track_body(t) == {
            "attributes": [{"external_id": USER, "_update_existing_only": False}]
        }

    @pytest.mark.parametrize("flag", [True, False], ids=["update-only", "create"])
    def test_update_existing_only_follows_setting(self, flag):
        """The attributes object carries the update_existing_only setting."""
        t = translate(identify(traits={"plan": "pro"}), Settings(update_existing_only=flag))
        assert only(t, "attributes")["_update_existing_only"] is flag

    def test_attributes_object_has_no_events(self):
        """An identify sends no events or purchases, only the attributes key."""
        assert list(track_body(translate(identify(traits={"plan": "pro"})))) == ["attributes"]

    def test_id_trait_is_not_copied(self):
        """The ``id`` trait is the external_id and is not sent as an attribute."""
        assert attributes_of({"id": USER, "plan": "pro"}) == {"plan": "pro"}


class TestNames:
    """First and last names come from their traits, or from splitting ``name``."""

    @pytest.mark.parametrize(
        ("traits", "expected"),
        [
            pytest.param({"firstName": "Ada"}, {"first_name": "Ada"}, id="firstName"),
            pytest.param({"first_name": "Ada"}, {"first_name": "Ada"}, id="first_name"),
            pytest.param({"lastName": "Lovelace"}, {"last_name": "Lovelace"}, id="lastName"),
            pytest.param({"last_name": "Lovelace"}, {"last_name": "Lovelace"}, id="last_name"),
            pytest.param(
                {"name": "Ada Lovelace"},
                {"first_name": "Ada", "last_name": "Lovelace"},
                id="name-split",
            ),
            pytest.param(
                {"name": "Ada King Lovelace"},
                {"first_name": "Ada", "last_name": "King Lovelace"},
                id="name-split-at-first-space",
            ),
            pytest.param({"name": "Ada"}, {"first_name": "Ada"}, id="name-one-word"),
            pytest.param(
                {"name": "Ada Lovelace", "firstName": "Augusta"},
                {"first_name": "Augusta"},
                id="name-ignored-with-firstName",
            ),
            pytest.param(
                {"name": "Ada Lovelace", "lastName": "King"},
                {"last_name": "King"},
                id="name-ignored-with-lastName",
            ),
        ],
    )
    def test_name_mapping(self, traits, expected):
        """Name traits map to first_name/last_name; ``name`` is split only as a fall-back."""
        assert attributes_of(traits) == expected


class TestSameAttribute:
    """Several traits giving one Braze attribute: a fixed one wins, whatever the key order."""

    @pytest.mark.parametrize(
        ("winner", "loser", "target"),
        [
            ("firstName", "first_name", "first_name"),
            ("lastName", "last_name", "last_name"),
            ("avatar", "photoUrl", "image_url"),
            ("photoUrl", "avatarUrl", "image_url"),
            ("avatarUrl", "image_url", "image_url"),
            ("birthday", "dob", "dob"),
        ],
    )
    @pytest.mark.parametrize("winner_first", [True, False], ids=["winner-first", "winner-last"])
    def test_winner_independent_of_key_order(self, winner, loser, target, winner_first):
        """The Segment spec name wins; the other value is dropped with a warning at its path."""
        kept, other = ("1990-05-17", "1991-06-18") if target == "dob" else ("kept", "other")
        traits = {winner: kept, loser: other} if winner_first else {loser: other, winner: kept}
        t = translate(identify(traits=traits))
        assert only(t, "attributes")[target] == kept
        assert t.warnings == ((f"$.traits.{loser}", f"{target} comes from '{winner}'; dropped"),)

    def test_same_value_twice_is_not_noted(self):
        """One value under firstName and first_name: sent once, nothing to warn about."""
        t = translate(identify(traits={"first_name": "Ada", "firstName": "Ada"}))
        assert only(t, "attributes")["first_name"] == "Ada"
        assert t.warnings == ()

    @pytest.mark.parametrize("address_first", [True, False], ids=["address-first", "address-last"])
    def test_address_wins_over_top_level_city_and_country(self, address_first):
        """address.city and address.country give home_city and country over the plain traits."""
        traits = {"home_city": "Paris", "country": "FR"}
        address = {"address": {"city": "Berlin", "country": "DE"}}
        merged = {**address, **traits} if address_first else {**traits, **address}
        t = translate(identify(traits=merged))
        body = only(t, "attributes")
        assert (body["home_city"], body["country"]) == ("Berlin", "DE")
        assert sorted(t.warnings) == [
            ("$.traits.country", "country comes from 'address.country'; dropped"),
            ("$.traits.home_city", "home_city comes from 'address.city'; dropped"),
        ]

    def test_deep_values_of_both_cost_only_themselves(self):
        """Two values nested too deep to compare: both dropped, the rest of the traits sent."""
        first: list[object] = []
        second: list[object] = []
        inner, other = first, second
        for _ in range(100_000):  # far past the recursion limit of a comparison
            inner.append([])
            other.append([])
            inner, other = inner[0], other[0]
        traits = {"avatar": first, "photoUrl": second, "name": first, "firstName": "Ada"}
        t = translate(identify(traits={**traits, "plan": "pro"}))
        assert only(t, "attributes") == {
            "external_id": USER,
            "first_name": "Ada",
            "plan": "pro",
            "_update_existing_only": False,
        }
        assert warning_paths(t) == ["$.traits.avatar", "$.traits.photoUrl", "$.traits.name"]

    def test_name_beside_first_name_is_noted(self):
        """A name that the first/last name traits do not repeat is dropped with a warning."""
        t = translate(identify(traits={"name": "Ada Lovelace", "firstName": "Augusta"}))
        assert only(t, "attributes")["first_name"] == "Augusta"
        assert t.warnings == (("$.traits.name", "not split: 'firstName' is given; dropped"),)

    def test_name_repeating_first_and_last_is_not_noted(self):
        """analytics.js's usual name + firstName + lastName: nothing lost, nothing to warn about."""
        traits = {"name": "Ada Lovelace", "firstName": "Ada", "lastName": "Lovelace"}
        t = translate(identify(traits=traits))
        assert t.warnings == ()


class TestStandardStrings:
    """Standard string attributes pass through, renamed the Braze way."""

    @pytest.mark.parametrize(
        ("trait", "attribute"),
        [
            ("email", "email"),
            ("phone", "phone"),
            ("avatar", "image_url"),
            ("photoUrl", "image_url"),
            ("avatarUrl", "image_url"),
        ],
    )
    def test_passes_through(self, trait, attribute):
        """Each standard string trait arrives under its Braze attribute name."""
        assert attributes_of({trait: "value-1"}) == {attribute: "value-1"}

    @pytest.mark.parametrize(
        "trait", ["firstName", "lastName", "email", "phone", "avatar", "photoUrl", "avatarUrl"]
    )
    def test_over_255_characters_dropped(self, trait):
        """A standard string attribute over 255 characters is dropped with a warning."""
        t = translate(identify(traits={trait: "x" * 256}))
        attributes = only(t, "attributes")
        assert attributes == {"external_id": USER, "_update_existing_only": False}
        assert warning_paths(t) == [f"$.traits.{trait}"]

    def test_exactly_255_characters_kept(self):
        """A standard string attribute of exactly 255 characters is kept."""
        assert attributes_of({"email": "e" * 255}) == {"email": "e" * 255}

    def test_str_subclass_key_path(self):
        """A standard trait keyed by a str subclass warns at the quoted path child_path gives."""

        class Key(str):
            __slots__ = ()

        t = translate(identify(traits={Key("email"): 5}))
        assert warning_paths(t) == ['$.traits["email"]']


class TestBirthday:
    """``birthday`` becomes ``dob`` as the UTC date of the parsed value."""

    @pytest.mark.parametrize(
        ("birthday", "dob"),
        [
            pytest.param("1990-05-17", "1990-05-17", id="iso-date"),
            pytest.param("1990-05-17T12:00:00Z", "1990-05-17", id="iso-time-utc"),
            pytest.param("1990-05-17T12:00:00", "1990-05-17", id="naive-time-is-utc"),
            pytest.param("1990-05-17T23:30:00-05:00", "1990-05-18", id="west-offset-next-day"),
            pytest.param("1990-05-17T00:30:00+02:00", "1990-05-16", id="east-offset-day-before"),
            pytest.param("May 17, 1990", "1990-05-17", id="written-out"),
        ],
    )
    def test_dob(self, birthday, dob):
        """The birthday is written as YYYY-MM-DD of its UTC date."""
        assert attributes_of({"birthday": birthday}) == {"dob": dob}

    def test_unknown_zone_name_never_raises(self):
        """A birthday with a zone name the parser does not know gives a date or a warning."""
        t = translate(identify(traits={"birthday": "1990-05-17 10:00 CEST"}))
        attributes = only(t, "attributes")
        if "dob" in attributes:
            assert attributes["dob"] == "1990-05-17"
        else:
            assert warning_paths(t) == ["$.traits.birthday"]

    @pytest.mark.parametrize(
        "birthday",
        [
            pytest.param("not a date", id="words"),
            pytest.param("1990-13-45", id="impossible"),
            pytest.param("", id="empty"),
            pytest.param(True, id="boolean"),
            pytest.param({"year": 1990}, id="object"),
        ],
    )
    def test_unparseable_dropped(self, birthday):
        """An unparseable birthday is dropped with a warning at its path."""
        t = translate(identify(traits={"birthday": birthday}))
        assert "dob" not in only(t, "attributes")
        assert warning_paths(t) == ["$.traits.birthday"]


class TestGender:
    """Gender spellings map to Braze's one-letter codes, case-insensitively."""

    @pytest.mark.parametrize(
        ("gender", "code"),
        [
            ("male", "M"),
            ("Male", "M"),
            ("m", "M"),
            ("M", "M"),
            ("man", "M"),
            ("female", "F"),
            ("FEMALE", "F"),
            ("f", "F"),
            ("woman", "F"),
            ("w", "F"),
            ("W", "F"),
            ("other", "O"),
            ("o", "O"),
            ("non-binary", "O"),
            ("Non-Binary", "O"),
            ("not applicable", "N"),
            ("Not Applicable", "N"),
            ("n", "N"),
            ("na", "N"),
            ("NA", "N"),
            ("prefer not to say", "P"),
            ("Prefer Not To Say", "P"),
            ("p", "P"),
        ],
    )
    def test_recognised(self, gender, code):
        """Each recognised spelling becomes its Braze code."""
        assert attributes_of({"gender": gender}) == {"gender": code}

    @pytest.mark.parametrize(
        "gender",
        [
            pytest.param("blue", id="word"),
            pytest.param("", id="empty"),
            pytest.param(1, id="number"),
        ],
    )
    def test_unrecognised_dropped_never_null(self, gender):
        """An unrecognised gender is dropped with a warning, never sent as null."""
        t = translate(identify(traits={"gender": gender}))
        assert "gender" not in only(t, "attributes")
        assert warning_paths(t) == ["$.traits.gender"]

    def test_warning_text(self):
        """The warning for an unrecognised gender names the value (issue's example)."""
        t = translate(identify(traits={"gender": "blue"}))
        assert t.warnings == (("$.traits.gender", "unrecognised gender 'blue' dropped"),)


class TestAddress:
    """``address`` feeds home_city and country; the rest stays a nested attribute."""

    def test_city_country_and_rest(self):
        """City and country become standard attributes; other fields stay under address."""
        traits = {
            "address": {
                "city": "Paris",
                "country": "FR",
                "postalCode": "75001",
                "street": "1 Rue de Rivoli",
            }
        }
        assert attributes_of(traits) == {
            "home_city": "Paris",
            "country": "FR",
            "address": {"postalCode": "75001", "street": "1 Rue de Rivoli"},
        }

    def test_only_city_and_country_leave_no_address(self):
        """An address of only city and country sends no nested address attribute."""
        assert attributes_of({"address": {"city": "Berlin", "country": "DE"}}) == {
            "home_city": "Berlin",
            "country": "DE",
        }

    @pytest.mark.parametrize(
        ("country", "code"),
        [
            pytest.param("DE", "DE", id="code"),
            pytest.param("de", "DE", id="lower-code-upper-cased"),
            pytest.param("Germany", "DE", id="name"),
            pytest.param("France", "FR", id="name-france"),
            pytest.param("United States", "US", id="name-united-states"),
            pytest.param("Japan", "JP", id="name-japan"),
        ],
    )
    def test_country_code(self, country, code):
        """A country code or unambiguous name becomes its ISO-3166 alpha-2 code."""
        assert attributes_of({"address": {"country": country}}) == {"country": code}

    @pytest.mark.parametrize(
        ("country", "paths"),
        [
            pytest.param("DE", [], id="code-as-is-silent"),
            pytest.param("de", ["$.traits.address.country"], id="upper-cased-warns"),
            pytest.param("Germany", ["$.traits.address.country"], id="name-converted-warns"),
        ],
    )
    def test_normalised_country_warns(self, country, paths):
        """A country that had to be normalised to its code is reported at its path."""
        assert warning_paths(translate(identify(traits={"address": {"country": country}}))) == (
            paths
        )

    @pytest.mark.parametrize(
        "country",
        [
            pytest.param("Atlantis", id="unknown-name"),
            pytest.param("Korea", id="ambiguous-name"),
            pytest.param("XX", id="unassigned-code"),
            pytest.param(49, id="number"),
        ],
    )
    def test_bad_country_dropped(self, country):
        """A country that is no ISO-3166 country is dropped with a warning (Braze nulls it)."""
        t = translate(identify(traits={"address": {"country": country}}))
        assert "country" not in only(t, "attributes")
        assert warning_paths(t) == ["$.traits.address.country"]

    def test_long_city_dropped(self):
        """A city over 255 characters is dropped with a warning at its path."""
        t = translate(identify(traits={"address": {"city": "c" * 256}}))
        assert "home_city" not in only(t, "attributes")
        assert warning_paths(t) == ["$.traits.address.city"]


class TestBrazeStandardAttributes:
    """Standard attributes already named the Braze way pass through, validated."""

    @pytest.mark.parametrize(
        ("traits", "expected"),
        [
            pytest.param({"language": "en"}, {"language": "en"}, id="language"),
            pytest.param({"language": "de"}, {"language": "de"}, id="language-de"),
            pytest.param(
                {"time_zone": "Europe/Berlin"}, {"time_zone": "Europe/Berlin"}, id="time_zone"
            ),
            pytest.param(
                {"time_zone": "America/Argentina/Buenos_Aires"},
                {"time_zone": "America/Argentina/Buenos_Aires"},
                id="time_zone-deep",
            ),
            pytest.param({"time_zone": "UTC"}, {"time_zone": "UTC"}, id="time_zone-utc"),
            pytest.param(
                {"email_subscribe": "opted_in"}, {"email_subscribe": "opted_in"}, id="email-opted"
            ),
            pytest.param(
                {"email_subscribe": "unsubscribed"},
                {"email_subscribe": "unsubscribed"},
                id="email-unsubscribed",
            ),
            pytest.param(
                {"push_subscribe": "subscribed"},
                {"push_subscribe": "subscribed"},
                id="push-subscribed",
            ),
            pytest.param(
                {
                    "subscription_groups": [
                        {
                            "subscription_group_id": "3f1a2b4c-0000-4000-8000-00000000abcd",
                            "subscription_state": "subscribed",
                        }
                    ]
                },
                {
                    "subscription_groups": [
                        {
                            "subscription_group_id": "3f1a2b4c-0000-4000-8000-00000000abcd",
                            "subscription_state": "subscribed",
                        }
                    ]
                },
                id="subscription_groups",
            ),
            pytest.param(
                {"current_location": {"latitude": 52.52, "longitude": 13.4}},
                {"current_location": {"longitude": 13.4, "latitude": 52.52}},
                id="current_location",
            ),
            pytest.param({"country": "DE"}, {"country": "DE"}, id="country"),
        ],
    )
    def test_valid_passes(self, traits, expected):
        """A valid Braze-named standard attribute arrives unchanged."""
        assert attributes_of(traits) == expected

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            pytest.param("language", "english", id="language-word"),
            pytest.param("language", "xx", id="language-unknown-code"),
            pytest.param("language", 7, id="language-number"),
            pytest.param("time_zone", "not a zone!", id="time_zone-garbage"),
            pytest.param("time_zone", 3, id="time_zone-number"),
            pytest.param("email_subscribe", "yes", id="email_subscribe-yes"),
            pytest.param("push_subscribe", True, id="push_subscribe-bool"),
            pytest.param("subscription_groups", "all", id="subscription_groups-string"),
            pytest.param(
                "current_location", {"latitude": 200, "longitude": 0}, id="location-out-of-range"
            ),
            pytest.param("current_location", {"latitude": 1}, id="location-no-longitude"),
            pytest.param("current_location", "Berlin", id="location-string"),
        ],
    )
    def test_invalid_dropped(self, key, value):
        """An invalid Braze-named standard attribute is dropped with a warning at its path."""
        t = translate(identify(traits={key: value}))
        assert key not in only(t, "attributes")
        assert warning_paths(t) == [f"$.traits.{key}"]

    def test_bad_subscription_group_entry_dropped(self):
        """A subscription group without a UUID id is dropped, the valid ones kept."""
        good = {
            "subscription_group_id": "3f1a2b4c-0000-4000-8000-00000000abcd",
            "subscription_state": "unsubscribed",
        }
        bad = {"subscription_group_id": "newsletter", "subscription_state": "subscribed"}
        t = translate(identify(traits={"subscription_groups": [bad, good]}))
        assert only(t, "attributes")["subscription_groups"] == [good]
        assert warning_paths(t) == ["$.traits.subscription_groups[0]"]


class TestCustomAttributes:
    """Every other trait becomes a custom attribute, within Braze's limits."""

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("pro", id="string"),
            pytest.param(42, id="int"),
            pytest.param(4.5, id="float"),
            pytest.param(True, id="bool"),
            pytest.param(None, id="null-unsets"),
            pytest.param("2020-02-02T10:00:00Z", id="iso-date-string"),
            pytest.param(["a", "b", 3], id="array-of-scalars"),
            pytest.param({"tier": "gold", "points": 10}, id="nested-object"),
            pytest.param([], id="empty-array"),
        ],
    )
    def test_kept(self, value):
        """A JSON value Braze accepts is sent unchanged as a custom attribute."""
        assert attributes_of({"plan": value}) == {"plan": value}

    @pytest.mark.parametrize(
        ("key", "value", "path"),
        [
            pytest.param("$plan", "pro", '$.traits["$plan"]', id="dollar-key"),
            pytest.param("k" * 256, "pro", "$.traits." + "k" * 256, id="long-key"),
            pytest.param("plan", "x" * 256, "$.traits.plan", id="long-string"),
            pytest.param("tags", ["x" * 256], "$.traits.tags[0]", id="long-string-in-array"),
        ],
    )
    def test_dropped(self, key, value, path):
        """Braze-rejected keys and values are dropped with a warning at their path."""
        t = translate(identify(traits={key: value, "kept": 1}))
        assert only(t, "attributes") == {
            "external_id": USER,
            "kept": 1,
            "_update_existing_only": False,
        }
        assert warning_paths(t) == [path]

    def test_key_of_255_characters_kept(self):
        """A custom attribute key of exactly 255 characters is kept."""
        assert attributes_of({"k" * 255: 1}) == {"k" * 255: 1}

    def test_string_of_255_characters_kept(self):
        """A custom string value of exactly 255 characters is kept."""
        assert attributes_of({"bio": "b" * 255}) == {"bio": "b" * 255}

    @pytest.mark.parametrize(
        ("limit", "length", "kept"),
        [
            pytest.param(500, 500, True, id="default-at-limit"),
            pytest.param(500, 501, False, id="default-over-limit"),
            pytest.param(25, 25, True, id="legacy-at-limit"),
            pytest.param(25, 26, False, id="legacy-over-limit"),
        ],
    )
    def test_array_limit(self, limit, length, kept):
        """Arrays longer than max_array_length are dropped with a warning."""
        items = [f"v{i}" for i in range(length)]
        t = translate(identify(traits={"tags": items}), Settings(max_array_length=limit))
        attributes = only(t, "attributes")
        if kept:
            assert attributes["tags"] == items
            assert t.warnings == ()
        else:
            assert "tags" not in attributes
            assert warning_paths(t) == ["$.traits.tags"]

    def test_default_array_limit_is_500(self):
        """Without settings the array limit is Braze's current default of 500."""
        t = translate(identify(traits={"tags": list(range(501))}))
        assert "tags" not in only(t, "attributes")
        assert warning_paths(t) == ["$.traits.tags"]

    def test_nested_dollar_key_dropped(self):
        """A '$' key inside a nested object is dropped; the rest of the object is kept."""
        t = translate(identify(traits={"profile": {"$bad": 1, "good": 2}}))
        assert only(t, "attributes")["profile"] == {"good": 2}
        assert warning_paths(t) == ['$.traits.profile["$bad"]']

    def test_long_string_in_add_operation_not_sent(self):
        """A string over 255 characters never reaches Braze, even inside an ``add`` list."""
        t = translate(identify(traits={"tags": {"add": ["x" * 300]}}))
        assert "x" * 300 not in repr(sent(t))
        assert any(path.startswith("$.traits.tags") for path in warning_paths(t))


MERGE = Settings(merge_nested_objects=True)


class TestMergeNestedObjects:
    """merge_nested_objects adds _merge_objects: true where a nested object is set."""

    @pytest.mark.parametrize(
        ("traits", "settings", "merged"),
        [
            pytest.param({"company": {"name": "Acme"}}, MERGE, True, id="nested-object"),
            pytest.param({"address": {"postalCode": "10115"}}, MERGE, True, id="address-rest"),
            pytest.param(
                {"plan": "pro", "prefs": {"a": {"b": 1}}}, MERGE, True, id="deep-with-scalars"
            ),
            pytest.param({"company": {"name": "Acme"}}, Settings(), False, id="setting-off"),
            pytest.param({"plan": "pro"}, MERGE, False, id="scalars-only"),
            pytest.param({"tags": ["a", "b"]}, MERGE, False, id="scalar-array"),
            pytest.param({"pets": [{"name": "Rex"}]}, MERGE, False, id="array-of-objects"),
            pytest.param({"logins": {"inc": 1}}, MERGE, False, id="increment"),
            pytest.param({"tags": {"add": ["a"]}}, MERGE, False, id="array-operation"),
            pytest.param({"pets": {"$add": [{"name": "Rex"}]}}, MERGE, False, id="nested-op"),
            pytest.param(
                {"current_location": {"latitude": 1.0, "longitude": 2.0}},
                MERGE,
                False,
                id="standard-location",
            ),
            pytest.param({"address": {"city": "Berlin"}}, MERGE, False, id="address-all-standard"),
        ],
    )
    def test_flag(self, traits, settings, merged):
        """Only a nested object custom attribute (not an operation) carries the flag."""
        obj = only(translate(identify(traits=traits), settings), "attributes")
        assert ("_merge_objects" in obj) is merged
        if merged:
            assert obj["_merge_objects"] is True

    def test_alias_profile_object(self):
        """The anonymous identify's profile-creating object carries the flag too."""
        settings = Settings(merge_nested_objects=True, anonymous_users="alias")
        message = identify(userId=None, anonymousId="anon-1", traits={"company": {"n": 1}})
        obj = only(translate(message, settings), "attributes")
        assert obj["_merge_objects"] is True
        assert obj["_update_existing_only"] is False

    def test_events_and_group_unchanged(self):
        """Only identify attributes objects carry the flag: group calls set no object."""
        settings = Settings(merge_nested_objects=True)
        t = translate({"type": "group", "userId": USER, "groupId": "g"}, settings)
        assert "_merge_objects" not in only(t, "attributes")


SUB_A = "3d2b1b6e-9c1f-4e7a-9d3b-2f1e0c4a5b6d"
SUB_B = "0f6e2a47-1c3b-4d5e-8f9a-b0c1d2e3f4a5"


class TestSubscriptionGroupTraits:
    """subscription_groups (Braze's form) and braze_subscription_groups (Segment web mode)."""

    @pytest.mark.parametrize(
        ("traits", "groups"),
        [
            pytest.param(
                {
                    "braze_subscription_groups": [
                        {"subscription_group_id": SUB_A, "subscription_group_state": "subscribed"}
                    ]
                },
                [{"subscription_group_id": SUB_A, "subscription_state": "subscribed"}],
                id="segment-web-mode",
            ),
            pytest.param(
                {
                    "subscription_groups": [
                        {"subscription_group_id": SUB_A, "subscription_state": "unsubscribed"}
                    ]
                },
                [{"subscription_group_id": SUB_A, "subscription_state": "unsubscribed"}],
                id="braze-form",
            ),
            pytest.param(
                {
                    "subscription_groups": [
                        {"subscription_group_id": SUB_A, "subscription_state": "subscribed"}
                    ],
                    "braze_subscription_groups": [
                        {"subscription_group_id": SUB_B, "subscription_group_state": "unsubscribed"}
                    ],
                },
                [
                    {"subscription_group_id": SUB_A, "subscription_state": "subscribed"},
                    {"subscription_group_id": SUB_B, "subscription_state": "unsubscribed"},
                ],
                id="both-traits-add-up",
            ),
        ],
    )
    def test_written_in_braze_form(self, traits, groups):
        """Each valid entry becomes one subscription_groups entry; no custom attribute."""
        assert attributes_of(traits) == {"subscription_groups": groups}

    @pytest.mark.parametrize(
        ("value", "path"),
        [
            pytest.param(
                [{"subscription_group_id": SUB_A, "subscription_group_state": "opted_in"}],
                "$.traits.braze_subscription_groups[0]",
                id="bad-state",
            ),
            pytest.param(
                [{"subscription_group_id": SUB_A, "subscription_state": "subscribed"}],
                "$.traits.braze_subscription_groups[0]",
                id="braze-key-in-web-mode-trait",
            ),
            pytest.param(
                [{"subscription_group_id": "newsletter", "subscription_group_state": "subscribed"}],
                "$.traits.braze_subscription_groups[0]",
                id="not-a-uuid",
            ),
            pytest.param(["x"], "$.traits.braze_subscription_groups[0]", id="not-an-object"),
            pytest.param(
                {"subscription_group_id": SUB_A}, "$.traits.braze_subscription_groups", id="object"
            ),
        ],
    )
    def test_invalid_entry_dropped(self, value, path):
        """An entry Braze would refuse is dropped with a warning at its path."""
        t = translate(identify(traits={"braze_subscription_groups": value, "plan": "pro"}))
        assert only(t, "attributes").get("subscription_groups") is None
        assert only(t, "attributes")["plan"] == "pro"
        assert warning_paths(t) == [path]


ARRAY_OPERATIONS = Settings(nested_array_operations=True)
PETS = {
    "update": [{"identifier": "id", "id": 2, "name": "Rex"}],
    "remove": [{"identifier": "id", "id": 3}],
    "add": [{"id": 4, "name": "Tom"}],
}


class TestNestedArrayOperations:
    """nested_array_operations: RudderStack's add/update/remove traits as Braze's operations."""

    def test_written_in_brazes_form(self):
        """update, remove and add become $update, $remove and $add on the array of objects."""
        t = translate(identify(traits={"pets": PETS}), ARRAY_OPERATIONS)
        assert only(t, "attributes")["pets"] == {
            "$update": [
                {"$identifier_key": "id", "$identifier_value": 2, "$new_object": {"name": "Rex"}}
            ],
            "$remove": [{"$identifier_key": "id", "$identifier_value": 3}],
            "$add": [{"id": 4, "name": "Tom"}],
        }
        assert t.warnings == ()

    def test_scalar_add_remove_unchanged(self):
        """Braze's own add/remove of scalars stays an operation on an array of scalars."""
        t = translate(identify(traits={"tags": {"add": ["a"], "remove": ["b"]}}), ARRAY_OPERATIONS)
        assert only(t, "attributes")["tags"] == {"add": ["a"], "remove": ["b"]}

    def test_context_traits_read_too(self):
        """Traits from context.traits are read the same way, warnings at their own path."""
        pets = {"update": [{"identifier": "id", "id": 2}, {"name": "no id"}]}
        t = translate(identify(context={"traits": {"pets": pets}}), ARRAY_OPERATIONS)
        assert only(t, "attributes")["pets"] == {
            "$update": [{"$identifier_key": "id", "$identifier_value": 2, "$new_object": {}}]
        }
        assert warning_paths(t) == ["$.context.traits.pets.update[1]"]

    @pytest.mark.parametrize(
        ("entry", "why"),
        [
            pytest.param({"id": 2}, "needs 'identifier'", id="no-identifier"),
            pytest.param({"identifier": "sku", "id": 2}, "needs 'identifier'", id="key-absent"),
            pytest.param(5, "must be objects", id="not-an-object"),
        ],
    )
    def test_unidentified_entry_dropped(self, entry, why):
        """An entry that does not name its own key is dropped with a warning; the rest is sent."""
        pets = {"update": [entry, {"identifier": "id", "id": 7, "name": "Kit"}]}
        t = translate(identify(traits={"pets": pets}), ARRAY_OPERATIONS)
        assert only(t, "attributes")["pets"]["$update"] == [
            {"$identifier_key": "id", "$identifier_value": 7, "$new_object": {"name": "Kit"}}
        ]
        ((path, text),) = t.warnings
        assert path == "$.traits.pets.update[0]"
        assert why in text

    def test_new_object_cleaned(self):
        """The updated object's fields are cleaned as any nested object's: a '$' key dropped."""
        pets = {"update": [{"identifier": "id", "id": 2, "$bad": 1, "name": "Rex"}]}
        t = translate(identify(traits={"pets": pets}), ARRAY_OPERATIONS)
        assert only(t, "attributes")["pets"]["$update"][0]["$new_object"] == {"name": "Rex"}
        assert len(t.warnings) == 1

    def test_off_by_default_and_said(self):
        """Without the setting they are not applied, and a warning says how to apply them."""
        t = translate(identify(traits={"pets": PETS}))
        assert only(t, "attributes")["pets"] == PETS
        assert t.warnings == (
            (
                "$.traits.pets",
                "RudderStack's nested array operations are not applied unless"
                " nested_array_operations is set",
            ),
        )


def merging(flag: object, **overrides: object) -> dict[str, object]:
    """An identify updating pets, with RudderStack's mergeObjectsUpdateOperation set to ``flag``."""
    return identify(
        traits={"pets": PETS}, properties={"mergeObjectsUpdateOperation": flag}, **overrides
    )


class TestMergeObjectsUpdateOperation:
    """RudderStack's properties.mergeObjectsUpdateOperation: $update merges instead of replacing."""

    def test_true_merges_updates(self):
        """A true flag writes _merge_objects: Braze keeps the matched objects' other fields."""
        obj = only(translate(merging(True), ARRAY_OPERATIONS), "attributes")
        assert obj["_merge_objects"] is True
        assert obj["pets"]["$update"][0]["$new_object"] == {"name": "Rex"}

    @pytest.mark.parametrize("flag", [False, None], ids=["false", "null"])
    def test_false_or_null_replaces(self, flag):
        """False and null (RudderStack's default) write no flag: Braze overwrites the objects."""
        t = translate(merging(flag), ARRAY_OPERATIONS)
        assert "_merge_objects" not in only(t, "attributes")
        assert t.warnings == ()

    def test_other_value_noted(self):
        """A value that is not a boolean is noted at its path and not applied."""
        t = translate(merging("true"), ARRAY_OPERATIONS)
        assert "_merge_objects" not in only(t, "attributes")
        assert warning_paths(t) == ["$.properties.mergeObjectsUpdateOperation"]

    def test_only_with_an_update(self):
        """Without an $update (only $add and $remove, or plain traits) no flag is written."""
        traits = {"pets": {"add": PETS["add"], "remove": PETS["remove"]}, "plan": "pro"}
        message = identify(traits=traits, properties={"mergeObjectsUpdateOperation": True})
        assert "_merge_objects" not in only(translate(message, ARRAY_OPERATIONS), "attributes")

    def test_track_with_context_traits(self):
        """A track's context.traits updates merge too; the event keeps its properties as sent."""
        message = track(
            context={"traits": {"pets": PETS}},
            properties={"mergeObjectsUpdateOperation": True, "revenue": 50},
        )
        settings = Settings(nested_array_operations=True, context_traits_as_attributes=True)
        body = track_body(translate(message, settings))
        assert body["attributes"][0]["_merge_objects"] is True
        assert body["events"][0]["properties"]["mergeObjectsUpdateOperation"] is True
