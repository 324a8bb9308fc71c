import pytest
from helpers import BRAZE_TIME, USER, group, identify, order, page, screen, sent, track, track_body

from segment_braze import Settings, translate

NAMED = Settings(track_named_pages=True)
ALL = Settings(track_all_pages=True)
OFF = Settings()
BOTH = Settings(track_named_pages=True, track_all_pages=True)


def event_of(t):
    """The single event of a translation's one /users/track body."""
    body = track_body(t)
    assert list(body) == ["events"], body
    (event,) = body["events"]
    return event


def assert_dropped(t):
    """The translation sends nothing and says why in one line."""
    assert t.requests() == []
    assert isinstance(t.dropped, str)
    assert t.dropped.strip()
    assert "\n" not in t.dropped


class TestPageNames:
    """Page calls become at most one event, gated by the two page settings."""

    @pytest.mark.parametrize(
        ("fields", "settings", "name"),
        [
            pytest.param({"name": "Home"}, NAMED, "Viewed Home Page", id="named-named"),
            pytest.param({"name": "Home"}, ALL, "Viewed Home Page", id="named-all"),
            pytest.param({"name": "Home"}, BOTH, "Viewed Home Page", id="named-both"),
            pytest.param(
                {"name": "Home", "category": "Docs"},
                NAMED,
                "Viewed Docs Home Page",
                id="category-named",
            ),
            pytest.param(
                {"name": "Home", "category": "Docs"},
                ALL,
                "Viewed Docs Home Page",
                id="category-all",
            ),
            pytest.param({}, ALL, "Loaded a Page", id="unnamed-all"),
            pytest.param({}, BOTH, "Loaded a Page", id="unnamed-both"),
            pytest.param({"category": "Docs"}, ALL, "Loaded a Page", id="category-only-all"),
        ],
    )
    def test_event_name(self, fields, settings, name):
        """The event is named Viewed {category }{name} Page or Loaded a Page."""
        assert event_of(translate(page(**fields), settings))["name"] == name

    @pytest.mark.parametrize(
        ("fields", "settings"),
        [
            pytest.param({"name": "Home"}, OFF, id="named-off"),
            pytest.param({}, OFF, id="unnamed-off"),
            pytest.param({}, NAMED, id="unnamed-named-only"),
            pytest.param({"category": "Docs"}, NAMED, id="category-only-named-only"),
        ],
    )
    def test_dropped(self, fields, settings):
        """A page the settings do not track is dropped with a reason."""
        assert_dropped(translate(page(**fields), settings))

    def test_dropped_by_default(self):
        """Without settings, page tracking is off and a named page is dropped."""
        assert_dropped(translate(page(name="Home")))

    def test_event_shape(self):
        """The page event carries time, name and category in properties, and the flags."""
        t = translate(
            page(name="Home", category="Docs", properties={"path": "/docs", "title": "Docs"}),
            Settings(track_named_pages=True, app_id="app-1"),
        )
        assert sent(t) == [
            (
                "/users/track",
                {
                    "events": [
                        {
                            "external_id": USER,
                            "app_id": "app-1",
                            "name": "Viewed Docs Home Page",
                            "time": BRAZE_TIME,
                            "properties": {
                                "path": "/docs",
                                "title": "Docs",
                                "name": "Home",
                                "category": "Docs",
                            },
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]

    def test_unnamed_properties(self):
        """An unnamed page's properties are its own, with no name added."""
        t = translate(page(properties={"url": "https://example.com/"}), ALL)
        assert event_of(t)["properties"] == {"url": "https://example.com/"}

    def test_unnamed_category_in_properties(self):
        """An unnamed page with a category carries the category in its properties."""
        t = translate(page(category="Docs"), ALL)
        assert event_of(t)["properties"] == {"category": "Docs"}

    def test_update_existing_only(self):
        """The page event carries the update_existing_only setting."""
        t = translate(
            page(name="Home"), Settings(track_named_pages=True, update_existing_only=True)
        )
        assert event_of(t)["_update_existing_only"] is True

    def test_reserved_property_removed(self):
        """Page properties follow the event property rules ($ keys removed with a warning)."""
        t = translate(page(name="Home", properties={"$x": 1, "ok": 2}), NAMED)
        assert event_of(t)["properties"] == {"ok": 2, "name": "Home"}
        assert [path for path, _ in t.warnings] == ['$.properties["$x"]']


class TestScreenNames:
    """Screens work like pages, named Viewed {name} Screen / Loaded a Screen."""

    @pytest.mark.parametrize(
        ("fields", "settings", "name"),
        [
            pytest.param({"name": "Cart"}, NAMED, "Viewed Cart Screen", id="named-named"),
            pytest.param({"name": "Cart"}, ALL, "Viewed Cart Screen", id="named-all"),
            pytest.param({}, ALL, "Loaded a Screen", id="unnamed-all"),
            pytest.param(
                {"name": "Cart", "category": "Shop"},
                NAMED,
                "Viewed Cart Screen",
                id="category-not-in-name",
            ),
        ],
    )
    def test_event_name(self, fields, settings, name):
        """The event is named Viewed {name} Screen or Loaded a Screen."""
        assert event_of(translate(screen(**fields), settings))["name"] == name

    @pytest.mark.parametrize(
        ("fields", "settings"),
        [
            pytest.param({"name": "Cart"}, OFF, id="named-off"),
            pytest.param({}, OFF, id="unnamed-off"),
            pytest.param({}, NAMED, id="unnamed-named-only"),
        ],
    )
    def test_dropped(self, fields, settings):
        """A screen the settings do not track is dropped with a reason."""
        assert_dropped(translate(screen(**fields), settings))

    def test_properties_with_name(self):
        """A named screen's properties are its own plus ``name``."""
        t = translate(screen(name="Cart", properties={"items": 2}), NAMED)
        assert event_of(t) == {
            "external_id": USER,
            "name": "Viewed Cart Screen",
            "time": BRAZE_TIME,
            "properties": {"items": 2, "name": "Cart"},
            "_update_existing_only": False,
        }


class TestGroup:
    """A group call sets ab_segment_group_<groupId>: true; traits are not sent."""

    def test_group_attribute(self):
        """The group becomes one boolean custom attribute, group traits left out."""
        t = translate(group(groupId="acme", traits={"name": "Acme Inc", "plan": "enterprise"}))
        assert sent(t) == [
            (
                "/users/track",
                {
                    "attributes": [
                        {
                            "external_id": USER,
                            "ab_segment_group_acme": True,
                            "_update_existing_only": False,
                        }
                    ]
                },
            )
        ]
        assert t.dropped is None

    def test_numeric_group_id(self):
        """A numeric groupId is written into the attribute name as text."""
        t = translate(group(groupId=42))
        assert track_body(t)["attributes"][0]["ab_segment_group_42"] is True

    @pytest.mark.parametrize("flag", [True, False], ids=["update-only", "create"])
    def test_update_existing_only(self, flag):
        """The group's attributes object carries the update_existing_only setting."""
        t = translate(group(), Settings(update_existing_only=flag))
        assert track_body(t)["attributes"][0]["_update_existing_only"] is flag


class TestDelete:
    """Segment's deletion message becomes POST /users/delete by external id."""

    def test_delete(self):
        """A delete sends only /users/delete with the userId as external id."""
        t = translate({"type": "delete", "userId": USER})
        assert sent(t) == [("/users/delete", {"external_ids": [USER]})]
        assert t.dropped is None

    def test_numeric_user_id(self):
        """A numeric userId is deleted by its text form."""
        t = translate({"type": "delete", "userId": 42})
        assert sent(t) == [("/users/delete", {"external_ids": ["42"]})]

    def test_needs_no_time(self):
        """A delete without any timestamp is still translated."""
        t = translate({"type": "delete", "userId": USER, "traits": {"x": 1}})
        assert sent(t) == [("/users/delete", {"external_ids": [USER]})]


class TestEventFilters:
    """events_allowlist and events_denylist decide which events reach Braze."""

    @pytest.mark.parametrize(
        ("settings", "kept"),
        [
            pytest.param(Settings(), True, id="no-lists"),
            pytest.param(Settings(events_allowlist={"Signed Up"}), True, id="allowlisted"),
            pytest.param(Settings(events_allowlist={"Logged In"}), False, id="not-allowlisted"),
            pytest.param(Settings(events_denylist={"Signed Up"}), False, id="denylisted"),
            pytest.param(Settings(events_denylist={"Logged In"}), True, id="other-denylisted"),
            pytest.param(
                Settings(events_allowlist={"Signed Up"}, events_denylist={"Signed Up"}),
                False,
                id="denylist-wins",
            ),
        ],
    )
    def test_track(self, settings, kept):
        """A track event is sent only when allowed and not denied."""
        t = translate(track(event="Signed Up"), settings)
        if kept:
            assert event_of(t)["name"] == "Signed Up"
        else:
            assert_dropped(t)

    def test_filter_is_by_exact_name(self):
        """Event names are matched exactly, case included."""
        assert_dropped(
            translate(track(event="signed up"), Settings(events_allowlist={"Signed Up"}))
        )

    def test_denied_order_sends_no_purchases(self):
        """A denied Order Completed sends no purchases."""
        t = translate(
            order({"sku": "p-1", "price": 1}), Settings(events_denylist={"Order Completed"})
        )
        assert_dropped(t)

    @pytest.mark.parametrize(
        ("lists", "kept"),
        [
            pytest.param({"events_allowlist": {"Viewed Home Page"}}, True, id="allowlisted"),
            pytest.param({"events_allowlist": {"Home"}}, False, id="raw-name-not-enough"),
            pytest.param({"events_denylist": {"Viewed Home Page"}}, False, id="denylisted"),
        ],
    )
    def test_page_filtered_by_event_name(self, lists, kept):
        """Pages are filtered by the Braze event name they become."""
        t = translate(page(name="Home"), Settings(track_named_pages=True, **lists))
        if kept:
            assert event_of(t)["name"] == "Viewed Home Page"
        else:
            assert_dropped(t)

    def test_screen_filtered_by_event_name(self):
        """Screens are filtered by the Braze event name they become."""
        settings = Settings(track_all_pages=True, events_denylist={"Loaded a Screen"})
        assert_dropped(translate(screen(), settings))

    def test_identify_and_group_not_filtered(self):
        """Event filters leave identify and group calls alone."""
        settings = Settings(events_allowlist={"Nothing"})
        assert track_body(translate(identify(traits={"plan": "pro"}), settings))["attributes"]
        assert track_body(translate(group(), settings))["attributes"]


RUDDER = "rudderstack"


class TestRudderStackNaming:
    """naming="rudderstack" writes the names RudderStack's Braze destination writes."""

    @pytest.mark.parametrize(
        ("builder", "fields", "flags", "name"),
        [
            pytest.param(page, {"name": "Home"}, {"track_named_pages": True}, "Home", id="page"),
            pytest.param(
                page,
                {"name": "Home", "category": "Docs"},
                {"track_named_pages": True},
                "Home",
                id="page-category-unused",
            ),
            pytest.param(
                page,
                {"properties": {"name": "Pricing"}},
                {"track_named_pages": True},
                "Pricing",
                id="page-properties-name",
            ),
            pytest.param(page, {}, {"track_all_pages": True}, "Page Viewed", id="page-unnamed"),
            pytest.param(screen, {"name": "Cart"}, {"track_all_pages": True}, "Cart", id="screen"),
            pytest.param(
                screen, {}, {"track_all_pages": True}, "Screen Viewed", id="screen-unnamed"
            ),
        ],
    )
    def test_event_name(self, builder, fields, flags, name):
        """Pages and screens are named after themselves, else Page/Screen Viewed."""
        settings = Settings(naming=RUDDER, **flags)
        assert event_of(translate(builder(**fields), settings))["name"] == name

    @pytest.mark.parametrize(
        ("builder", "fields", "flags"),
        [
            pytest.param(page, {"name": "Home"}, {}, id="named-off"),
            pytest.param(page, {}, {"track_named_pages": True}, id="unnamed-named-only"),
            pytest.param(screen, {}, {"track_named_pages": True}, id="screen-unnamed-named-only"),
        ],
    )
    def test_page_settings_still_decide(self, builder, fields, flags):
        """The naming changes names only: the page settings still decide what is sent."""
        assert_dropped(translate(builder(**fields), Settings(naming=RUDDER, **flags)))

    def test_group_attribute(self):
        """A group call sets ab_rudder_group_<groupId>: true instead of ab_segment_group_."""
        t = translate(group(groupId="acme"), Settings(naming=RUDDER))
        assert track_body(t)["attributes"] == [
            {"external_id": USER, "ab_rudder_group_acme": True, "_update_existing_only": False}
        ]

    def test_filters_see_rudderstack_names(self):
        """Event filters apply to the names written, here RudderStack's."""
        settings = Settings(naming=RUDDER, track_all_pages=True, events_denylist={"Page Viewed"})
        assert translate(page(), settings).dropped == "filtered"


SUBSCRIPTION = "3d2b1b6e-9c1f-4e7a-9d3b-2f1e0c4a5b6d"
SUBSCRIBING = Settings(group_subscriptions=True)


class TestSubscriptionGroupInGroupCall:
    """group_subscriptions: a subscription group's groupId and state set the user's state."""

    @pytest.mark.parametrize(
        ("traits", "state"),
        [
            pytest.param({"subscription_state": "subscribed"}, "subscribed", id="subscribed"),
            pytest.param({"subscription_state": "unsubscribed"}, "unsubscribed", id="unsub"),
            pytest.param({"subscription_state": " Subscribed "}, "subscribed", id="normalised"),
            pytest.param({"subscriptionState": "subscribed"}, "subscribed", id="rudderstack-key"),
            pytest.param(
                {"subscription_state": "subscribed", "name": "Newsletter"},
                "subscribed",
                id="other-traits-not-sent",
            ),
        ],
    )
    def test_state_set(self, traits, state):
        """The attributes object carries subscription_groups, not ab_segment_group_."""
        t = translate(group(groupId=SUBSCRIPTION, traits=traits), SUBSCRIBING)
        assert track_body(t)["attributes"] == [
            {
                "external_id": USER,
                "subscription_groups": [
                    {"subscription_group_id": SUBSCRIPTION, "subscription_state": state}
                ],
                "_update_existing_only": False,
            }
        ]
        assert t.warnings == ()

    @pytest.mark.parametrize(
        ("group_id", "traits", "settings", "warned"),
        [
            pytest.param(
                SUBSCRIPTION, {"subscription_state": "subscribed"}, Settings(), None, id="off"
            ),
            pytest.param(SUBSCRIPTION, {}, SUBSCRIBING, None, id="no-state"),
            pytest.param(
                SUBSCRIPTION,
                {"subscription_state": "opted_in"},
                SUBSCRIBING,
                "$.traits.subscription_state",
                id="invalid-state",
            ),
            pytest.param(
                SUBSCRIPTION,
                {"subscription_state": True},
                SUBSCRIBING,
                "$.traits.subscription_state",
                id="state-not-text",
            ),
            pytest.param(
                "acme",
                {"subscription_state": "subscribed"},
                SUBSCRIBING,
                "$.traits.subscription_state",
                id="not-a-uuid",
            ),
        ],
    )
    def test_ordinary_group(self, group_id, traits, settings, warned):
        """Without a usable state the call stays an ordinary group attribute."""
        t = translate(group(groupId=group_id, traits=traits), settings)
        (attributes,) = track_body(t)["attributes"]
        assert attributes[f"ab_segment_group_{group_id}"] is True
        assert "subscription_groups" not in attributes
        assert [path for path, _ in t.warnings] == ([] if warned is None else [warned])

    def test_anonymous_user_by_alias(self):
        """In alias mode the state goes on the alias profile's creating object."""
        settings = Settings(group_subscriptions=True, anonymous_users="alias")
        message = group(
            userId=None,
            anonymousId="anon-1",
            groupId=SUBSCRIPTION,
            traits={"subscription_state": "subscribed"},
        )
        (attributes,) = track_body(translate(message, settings))["attributes"]
        assert attributes["_update_existing_only"] is False
        assert attributes["subscription_groups"][0]["subscription_group_id"] == SUBSCRIPTION

    def test_traits_not_an_object(self):
        """Group traits that are not an object are ignored with a warning."""
        t = translate(group(traits="premium"), SUBSCRIBING)
        assert track_body(t)["attributes"][0]["ab_segment_group_acme"] is True
        assert [path for path, _ in t.warnings] == ["$.traits"]
