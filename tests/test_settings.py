from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from segment_braze._settings import SEGMENT_IGNORED_KEYS, Settings
from segment_braze.exceptions import SettingsError

KEY = "SECRET-rest-key-8f3a"

# Written from Braze's published instance table, not from the implementation.
CLUSTERS = [
    ("US-01", "https://rest.iad-01.braze.com", "sdk.iad-01.braze.com"),
    ("US-02", "https://rest.iad-02.braze.com", "sdk.iad-02.braze.com"),
    ("US-03", "https://rest.iad-03.braze.com", "sdk.iad-03.braze.com"),
    ("US-04", "https://rest.iad-04.braze.com", "sdk.iad-04.braze.com"),
    ("US-05", "https://rest.iad-05.braze.com", "sdk.iad-05.braze.com"),
    ("US-06", "https://rest.iad-06.braze.com", "sdk.iad-06.braze.com"),
    ("US-07", "https://rest.iad-07.braze.com", "sdk.iad-07.braze.com"),
    ("US-08", "https://rest.iad-08.braze.com", "sdk.iad-08.braze.com"),
    ("US-10", "https://rest.us-10.braze.com", "sdk.us-10.braze.com"),
    ("EU-01", "https://rest.fra-01.braze.eu", "sdk.fra-01.braze.eu"),
    ("EU-02", "https://rest.fra-02.braze.eu", "sdk.fra-02.braze.eu"),
    ("AU-01", "https://rest.au-01.braze.com", "sdk.au-01.braze.com"),
    ("ID-01", "https://rest.id-01.braze.com", "sdk.id-01.braze.com"),
    ("JP-01", "https://rest.jp-01.braze.com", "sdk.jp-01.braze.com"),
    ("KR-01", "https://rest.kr-01.braze.com", "sdk.kr-01.braze.com"),
]

# A Braze (Classic) destination-settings export as Segment produces it.
SEGMENT_EXPORT: dict[str, Any] = {
    "allowCrawlerActivity": False,
    "apiKey": "app-identifier-1",
    "appGroupId": KEY,
    "automatic_in_app_message_registration_enabled": True,
    "automaticallyDisplayMessages": True,
    "customEndpoint": "",
    "datacenter": "us03",
    "doNotLoadFontAwesome": False,
    "enableHtmlInAppMessages": False,
    "enableLogging": False,
    "logPurchaseWhenRevenuePresent": False,
    "minimumIntervalBetweenTriggerActionsInSeconds": 30,
    "onlyTrackKnownUsersOnWeb": False,
    "openInAppMessagesInNewTab": False,
    "openNewsFeedCardsInNewTab": False,
    "restCustomEndpoint": "",
    "safariWebsitePushId": "",
    "serviceWorkerLocation": "",
    "sessionTimeoutInSeconds": 30,
    "trackAllPages": False,
    "trackNamedPages": True,
    "updateExistingOnly": False,
    "version": "2",
}

BAD_OPTIONS: list[dict[str, Any]] = [
    {"update_existing_only": "yes"},
    {"track_all_pages": 1},
    {"legacy_track_limits": None},
    {"automatically_send_in_app_messages": "false"},
    {"allow_custom_endpoint": "true"},
    {"max_array_length": 0},
    {"max_array_length": 501},
    {"max_array_length": True},
    {"max_array_length": "500"},
    {"min_trigger_interval_seconds": -1},
    {"session_timeout_seconds": 1.5},
    {"session_timeout_seconds": -30},
    {"anonymous_users": "keep"},
    {"alias_calls": "ignore"},
    {"anonymous_alias_label": ""},
    {"anonymous_alias_label": "  "},
    {"anonymous_alias_label": 7},
    {"naming": "RudderStack"},
    {"ecommerce": "recommend"},
    {"ecommerce": None},
    {"ecommerce_source": ""},
    {"ecommerce_source": "s" * 256},
    {"ecommerce_source": 3},
    {"group_subscriptions": "yes"},
    {"nested_array_operations": "yes"},
    {"merge_nested_objects": 1},
    {"fallback_identifiers": "email"},
    {"fallback_identifiers": ["email", "email"]},
    {"fallback_identifiers": ["sms"]},
    {"fallback_identifiers": None},
    {"naming": None},
    {"web_sdk_version": "latest"},
    {"web_sdk_version": "v4"},
    {"web_sdk_version": 4},
    {"app_id": 123},
    {"rest_api_key": 42},
    {"safari_website_push_id": ["web.com.example"]},
    {"datacenter": 3},
    {"datacenter": "US-11"},
    {"datacenter": "us"},
    {"events_allowlist": "Signed Up"},
    {"events_denylist": "Signed Up"},
    {"events_denylist": ["Signed Up", 7]},
    {"events_allowlist": 5},
    {"rest_endpoint": "rest.iad-01.braze.com"},
    {"rest_endpoint": "https://rest.iad-01.braze.com/users/track"},
    {"rest_endpoint": "https://rest.iad-01.braze.com?x=1"},
    {"rest_endpoint": "http://rest.iad-01.braze.com"},
    {"rest_endpoint": "https://braze-proxy.example.com"},
    {"rest_endpoint": "http://127.0.0.1:8080"},
    {"rest_endpoint": "https://user:pw@rest.iad-01.braze.com"},
    {"rest_endpoint": 443},
    {"rest_endpoint": "https://"},
    {"rest_endpoint": "https://rest.iad-01.braze.com:https"},
    {"sdk_endpoint": "https://sdk.iad-01.braze.com"},
    {"sdk_endpoint": "sdk.iad-01.braze.com/api/v3"},
    {"sdk_endpoint": "sdk.example.com"},
    {"sdk_endpoint": ""},
    {"datacenter": "US-01", "rest_endpoint": "https://rest.iad-02.braze.com"},
    {"datacenter": "EU-01", "sdk_endpoint": "sdk.iad-01.braze.com"},
    {"rest_endpoint": "https://rest.iad-01.braze.com", "sdk_endpoint": "sdk.fra-01.braze.eu"},
]


def _id(case: dict[str, Any]) -> str:
    return ",".join(f"{k}={v!r}" for k, v in case.items())


class TestDefaults:
    """Construction without options, immutability and rebuilding."""

    def test_settings_without_arguments(self):
        """Settings() works and every option has its documented default."""
        s = Settings()
        assert (s.app_id, s.rest_api_key, s.datacenter) == (None, None, None)
        assert (s.rest_endpoint, s.sdk_endpoint) == (None, None)
        assert s.max_array_length == 500
        assert s.min_trigger_interval_seconds == 30
        assert s.session_timeout_seconds == 1800
        assert s.automatically_send_in_app_messages is True
        assert s.anonymous_users == "drop"
        assert s.anonymous_alias_label == "segment_anonymous_id"
        assert s.alias_calls == "identify"
        assert s.events_allowlist is None
        assert s.events_denylist == frozenset()
        assert s.legacy_track_limits is False

    def test_frozen(self):
        """Settings cannot be changed after construction."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            Settings().datacenter = "US-01"  # type: ignore[misc]

    def test_keyword_only(self):
        """Options cannot be passed positionally."""
        with pytest.raises(TypeError):
            Settings("app")  # type: ignore[misc]

    def test_evolve_keeps_derived_endpoints(self):
        """Rebuilding from a settings object's own values gives the same settings."""
        s = Settings(datacenter="US-05", rest_api_key=KEY)
        assert attrs.evolve(s) == s
        assert attrs.evolve(s, update_existing_only=True).rest_endpoint == s.rest_endpoint


class TestClusters:
    """The Braze cluster table: names and their endpoints."""

    @pytest.mark.parametrize(("cluster", "rest", "sdk"), CLUSTERS)
    def test_datacenter_fills_both_endpoints(self, cluster, rest, sdk):
        """Each Braze cluster maps to its documented REST and SDK endpoints."""
        s = Settings(datacenter=cluster)
        assert (s.datacenter, s.rest_endpoint, s.sdk_endpoint) == (cluster, rest, sdk)

    @pytest.mark.parametrize(("given", "cluster"), [("eu-01", "EU-01"), (" us-10 ", "US-10")])
    def test_name_is_case_insensitive(self, given, cluster):
        """Cluster names are normalised to upper case."""
        assert Settings(datacenter=given).datacenter == cluster

    def test_documented_example(self):
        """datacenter="eu-01" gives the Frankfurt endpoints."""
        s = Settings(datacenter="eu-01")
        assert s.rest_endpoint == "https://rest.fra-01.braze.eu"
        assert s.sdk_endpoint == "sdk.fra-01.braze.eu"

    @pytest.mark.parametrize("name", ["US-11", "EU-03", "iad-01", "APAC"])
    def test_unknown_cluster_lists_valid_names(self, name):
        """An unknown cluster is refused with the list of valid names."""
        with pytest.raises(SettingsError, match="US-01") as info:
            Settings(datacenter=name)
        assert "KR-01" in str(info.value)


class TestEndpoints:
    """Endpoint normalisation, inference and contradictions."""

    @pytest.mark.parametrize(("cluster", "rest", "sdk"), CLUSTERS)
    def test_cluster_inferred_from_rest_endpoint(self, cluster, rest, sdk):
        """A known Braze REST host implies its cluster and SDK endpoint."""
        s = Settings(rest_endpoint=rest)
        assert (s.datacenter, s.sdk_endpoint) == (cluster, sdk)

    def test_documented_inference_example(self):
        """rest.iad-03.braze.com is US-03 with sdk.iad-03.braze.com."""
        s = Settings(rest_endpoint="https://rest.iad-03.braze.com")
        assert (s.datacenter, s.sdk_endpoint) == ("US-03", "sdk.iad-03.braze.com")

    def test_cluster_inferred_from_sdk_endpoint(self):
        """A known Braze SDK host implies its cluster and REST endpoint."""
        s = Settings(sdk_endpoint="sdk.fra-02.braze.eu")
        assert (s.datacenter, s.rest_endpoint) == ("EU-02", "https://rest.fra-02.braze.eu")

    def test_matching_explicit_endpoints_accepted(self):
        """Endpoints that agree with the datacenter are kept."""
        s = Settings(
            datacenter="US-02",
            rest_endpoint="https://rest.iad-02.braze.com",
            sdk_endpoint="sdk.iad-02.braze.com",
        )
        assert s.rest_endpoint == "https://rest.iad-02.braze.com"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"datacenter": "US-01", "rest_endpoint": "https://rest.iad-02.braze.com"},
            {"datacenter": "US-01", "sdk_endpoint": "sdk.fra-01.braze.eu"},
            {
                "rest_endpoint": "https://rest.iad-01.braze.com",
                "sdk_endpoint": "sdk.iad-02.braze.com",
            },
            {"datacenter": "US-01", "rest_endpoint": "https://sdk.iad-01.braze.com"},
        ],
        ids=_id,
    )
    def test_contradiction_refused(self, kwargs):
        """An endpoint on another Braze cluster than the datacenter is an error."""
        with pytest.raises(SettingsError, match="contradicts"):
            Settings(**kwargs)

    @pytest.mark.parametrize("suffix", ["/", "//"])
    def test_trailing_slash_removed(self, suffix):
        """A trailing slash on the REST endpoint is normalised away."""
        s = Settings(rest_endpoint="https://rest.iad-01.braze.com" + suffix)
        assert s.rest_endpoint == "https://rest.iad-01.braze.com"

    def test_rest_host_lower_cased(self):
        """The REST host is compared and stored in lower case."""
        s = Settings(datacenter="US-01", rest_endpoint="https://REST.iad-01.braze.com")
        assert s.rest_endpoint == "https://rest.iad-01.braze.com"

    @pytest.mark.parametrize("path", ["/users/track", "/api/v3", "/users/track/"])
    def test_path_refused_with_bare_endpoint(self, path):
        """A REST endpoint with a path is refused, showing the endpoint without it."""
        with pytest.raises(SettingsError, match=re.escape("'https://rest.iad-01.braze.com'")):
            Settings(rest_endpoint="https://rest.iad-01.braze.com" + path)

    def test_unlisted_braze_host_accepted_without_cluster(self):
        """A Braze REST host not in the table is accepted and infers nothing."""
        s = Settings(rest_endpoint="https://rest.iad-99.braze.com")
        assert (s.datacenter, s.sdk_endpoint) == (None, None)


class TestCustomEndpoint:
    """Non-Braze or plain-http REST endpoints need allow_custom_endpoint."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080",
            "https://braze-proxy.example.com",
        ],
    )
    def test_refused_by_default(self, url):
        """A loopback http or a non-Braze host needs allow_custom_endpoint."""
        with pytest.raises(SettingsError, match="allow_custom_endpoint"):
            Settings(rest_endpoint=url)

    @pytest.mark.parametrize(
        "url",
        ["http://rest.iad-01.braze.com", "http://braze-proxy.example.com", "http://10.0.0.5:8080"],
    )
    @pytest.mark.parametrize("custom", [False, True])
    def test_plain_http_only_for_loopback(self, url, custom):
        """The key never travels in clear text off the machine, even with allow_custom_endpoint."""
        with pytest.raises(SettingsError, match="clear text"):
            Settings(rest_endpoint=url, allow_custom_endpoint=custom)

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080", "http://127.9.9.9", "http://localhost:1", "http://[::1]:8"]
    )
    def test_plain_http_to_loopback_allowed(self, url):
        """A local stand-in or proxy on this machine may be plain http://."""
        assert Settings(rest_endpoint=url, allow_custom_endpoint=True).rest_endpoint == url

    @pytest.mark.parametrize(
        ("url", "stored"),
        [
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://braze-proxy.example.com", "https://braze-proxy.example.com"),
            ("http://localhost:9000", "http://localhost:9000"),
            ("http://[::1]:8080/", "http://[::1]:8080"),
        ],
    )
    def test_accepted_when_allowed(self, url, stored):
        """With allow_custom_endpoint any http(s) URL is kept, trailing slash stripped."""
        s = Settings(rest_endpoint=url, allow_custom_endpoint=True)
        assert (s.rest_endpoint, s.datacenter) == (stored, None)

    def test_proxy_with_datacenter(self):
        """A proxy may front the datacenter's cluster: the SDK endpoint still comes from it."""
        s = Settings(
            datacenter="EU-01", rest_endpoint="http://127.0.0.1:8080", allow_custom_endpoint=True
        )
        assert (s.rest_endpoint, s.sdk_endpoint) == ("http://127.0.0.1:8080", "sdk.fra-01.braze.eu")

    def test_custom_sdk_host_when_allowed(self):
        """A non-Braze SDK host is kept with allow_custom_endpoint."""
        s = Settings(sdk_endpoint="sdk.example.com", allow_custom_endpoint=True)
        assert s.sdk_endpoint == "sdk.example.com"

    def test_non_http_scheme_refused_even_when_allowed(self):
        """allow_custom_endpoint still requires an http(s) URL."""
        with pytest.raises(SettingsError, match="URL"):
            Settings(rest_endpoint="ftp://127.0.0.1", allow_custom_endpoint=True)


class TestSdkEndpointPitfall:
    """The SDK endpoint is a bare host, never a URL with a scheme."""

    @pytest.mark.parametrize(
        ("given", "corrected"),
        [
            ("https://sdk.iad-01.braze.com", "sdk.iad-01.braze.com"),
            ("http://sdk.fra-01.braze.eu/", "sdk.fra-01.braze.eu"),
            ("HTTPS://sdk.iad-03.braze.com/api/v3", "sdk.iad-03.braze.com"),
        ],
    )
    def test_scheme_refused_with_corrected_value(self, given, corrected):
        """A scheme on the SDK endpoint is refused and the message shows the bare host."""
        with pytest.raises(SettingsError, match=re.escape(f"use '{corrected}'")):
            Settings(sdk_endpoint=given)

    def test_bare_host_accepted(self):
        """The bare SDK host, even with a trailing slash, is accepted."""
        assert Settings(sdk_endpoint="sdk.iad-01.braze.com/").sdk_endpoint == "sdk.iad-01.braze.com"


class TestValidation:
    """Option types and ranges."""

    @pytest.mark.parametrize("kwargs", BAD_OPTIONS, ids=_id)
    def test_bad_option_is_settings_error(self, kwargs):
        """Every invalid option raises SettingsError, which is a ValueError."""
        with pytest.raises(SettingsError) as info:
            Settings(**kwargs)
        assert isinstance(info.value, ValueError)

    def test_message_names_the_field(self):
        """A validation message names the offending option."""
        with pytest.raises(SettingsError, match="update_existing_only"):
            Settings(update_existing_only="yes")

    @pytest.mark.parametrize("value", [1, 25, 500])
    def test_array_length_bounds(self, value):
        """max_array_length accepts 1 to 500."""
        assert Settings(max_array_length=value).max_array_length == value

    @pytest.mark.parametrize("version", ["2", "3.5", "4.10", "5", "6.10.1"])
    def test_web_sdk_versions(self, version):
        """Version strings of one to three numeric parts are accepted."""
        assert Settings(web_sdk_version=version).web_sdk_version == version

    @pytest.mark.parametrize("names", [["A", "B", "A"], ("A", "B"), {"A", "B"}, frozenset("AB")])
    def test_event_lists_become_frozensets(self, names):
        """Any iterable of event names is stored as a frozenset."""
        s = Settings(events_allowlist=names, events_denylist=names)
        assert s.events_allowlist == s.events_denylist == frozenset({"A", "B"})

    def test_string_event_list_refused(self):
        """A single string is not split into characters."""
        with pytest.raises(SettingsError, match="events_denylist must be a list"):
            Settings(events_denylist="Signed Up")

    @pytest.mark.parametrize("value", ["drop", "alias"])
    def test_anonymous_users_choices(self, value):
        """anonymous_users accepts drop and alias."""
        assert Settings(anonymous_users=value).anonymous_users == value

    @pytest.mark.parametrize("value", ["identify", "merge", "drop"])
    def test_alias_calls_choices(self, value):
        """alias_calls accepts identify, merge and drop."""
        assert Settings(alias_calls=value).alias_calls == value


class TestFromSegment:
    """Reading a Segment Braze (Classic) destination-settings export."""

    def test_full_export(self):
        """A real-shaped Segment export maps to the matching settings."""
        s = Settings.from_segment(SEGMENT_EXPORT)
        assert s.app_id == "app-identifier-1"
        assert s.rest_api_key == KEY
        assert s.datacenter == "US-03"
        assert s.rest_endpoint == "https://rest.iad-03.braze.com"
        assert s.sdk_endpoint == "sdk.iad-03.braze.com"
        assert s.track_named_pages is True
        assert s.session_timeout_seconds == 30
        assert s.web_sdk_version == "2"
        assert s.safari_website_push_id is None

    @pytest.mark.parametrize(
        ("key", "value", "field", "expected"),
        [
            ("apiKey", "app-1", "app_id", "app-1"),
            ("appGroupId", KEY, "rest_api_key", KEY),
            ("updateExistingOnly", True, "update_existing_only", True),
            ("logPurchaseWhenRevenuePresent", True, "log_purchase_when_revenue_present", True),
            ("trackAllPages", True, "track_all_pages", True),
            ("trackNamedPages", True, "track_named_pages", True),
            ("safariWebsitePushId", "web.com.example", "safari_website_push_id", "web.com.example"),
            ("version", "4.10", "web_sdk_version", "4.10"),
            ("version", 2, "web_sdk_version", "2"),
            ("allowCrawlerActivity", True, "allow_crawler_activity", True),
            ("automaticallyDisplayMessages", False, "automatically_send_in_app_messages", False),
            ("doNotLoadFontAwesome", True, "do_not_load_font_awesome", True),
            ("enableHtmlInAppMessages", True, "enable_html_in_app_messages", True),
            ("enableLogging", True, "enable_logging", True),
            (
                "minimumIntervalBetweenTriggerActionsInSeconds",
                60,
                "min_trigger_interval_seconds",
                60,
            ),
            ("openInAppMessagesInNewTab", True, "open_in_app_messages_in_new_tab", True),
            ("openNewsFeedCardsInNewTab", True, "open_news_feed_cards_in_new_tab", True),
            ("sessionTimeoutInSeconds", 900.0, "session_timeout_seconds", 900),
            ("customEndpoint", "sdk.iad-05.braze.com", "sdk_endpoint", "sdk.iad-05.braze.com"),
            (
                "restCustomEndpoint",
                "https://rest.iad-06.braze.com/",
                "rest_endpoint",
                "https://rest.iad-06.braze.com",
            ),
        ],
    )
    def test_key_mapping(self, key, value, field, expected):
        """Each Segment setting lands in its Settings field."""
        assert getattr(Settings.from_segment({key: value}), field) == expected

    @pytest.mark.parametrize(
        ("segment", "cluster"),
        [
            ("us", "US-01"),
            ("us02", "US-02"),
            ("us03", "US-03"),
            ("eu", "EU-01"),
            ("us08", "US-08"),
            ("eu02", "EU-02"),
            ("au01", "AU-01"),
            ("US-10", "US-10"),
        ],
    )
    def test_datacenter_values(self, segment, cluster):
        """Segment's datacenter values map to Braze cluster names."""
        assert Settings.from_segment({"datacenter": segment}).datacenter == cluster

    @pytest.mark.parametrize("segment", ["us11", "mars", "eu03"])
    def test_unknown_datacenter_refused(self, segment):
        """A Segment datacenter with no Braze cluster is an error."""
        with pytest.raises(SettingsError, match="not a Braze cluster"):
            Settings.from_segment({"datacenter": segment})

    def test_custom_endpoint_wins_over_datacenter(self):
        """As in Segment, a custom REST endpoint overrides the datacenter drop-down."""
        s = Settings.from_segment(
            {"datacenter": "us03", "restCustomEndpoint": "https://rest.iad-01.braze.com"}
        )
        assert (s.datacenter, s.sdk_endpoint) == ("US-01", "sdk.iad-01.braze.com")

    def test_custom_sdk_endpoint_wins_over_datacenter(self):
        """A custom SDK endpoint also overrides the drop-down and sets the cluster."""
        s = Settings.from_segment({"datacenter": "us", "customEndpoint": "sdk.iad-07.braze.com"})
        assert (s.datacenter, s.rest_endpoint) == ("US-07", "https://rest.iad-07.braze.com")

    def test_sdk_pitfall_reported(self):
        """An https:// custom endpoint from Segment is refused with the fix."""
        with pytest.raises(SettingsError, match=re.escape("use 'sdk.iad-01.braze.com'")):
            Settings.from_segment({"customEndpoint": "https://sdk.iad-01.braze.com"})

    def test_empty_strings_are_unset(self):
        """Segment's empty strings leave options at their defaults."""
        s = Settings.from_segment({"apiKey": "", "safariWebsitePushId": "", "datacenter": ""})
        assert (s.app_id, s.safari_website_push_id, s.datacenter) == (None, None, None)

    def test_unknown_keys_refused_by_name(self):
        """Strict mode names every unknown key."""
        with pytest.raises(SettingsError, match="restApiKey, zzz"):
            Settings.from_segment({"apiKey": "a", "zzz": 1, "restApiKey": "x"})

    def test_unknown_keys_skipped_when_not_strict(self):
        """strict=False skips unknown keys and still maps the rest."""
        s = Settings.from_segment({"apiKey": "a", "zzz": 1}, strict=False)
        assert s.app_id == "a"

    def test_unknown_segment_keys_lists_them(self):
        """unknown_segment_keys returns the unknown keys, sorted."""
        config = {"zzz": 1, "apiKey": "a", "localization": "en", "aaa": 2}
        assert Settings.unknown_segment_keys(config) == ("aaa", "zzz")
        assert Settings.unknown_segment_keys(SEGMENT_EXPORT) == ()

    @pytest.mark.parametrize("key", sorted(SEGMENT_IGNORED_KEYS))
    def test_ignored_keys_accepted(self, key):
        """Known Segment settings with no meaning here are accepted in strict mode."""
        assert Settings.from_segment({key: "anything"}) == Settings()

    def test_overrides_win(self):
        """Keyword overrides replace values from the export."""
        s = Settings.from_segment(SEGMENT_EXPORT, rest_api_key="from-env", track_named_pages=False)
        assert (s.rest_api_key, s.track_named_pages) == ("from-env", False)

    def test_overrides_add_options_segment_lacks(self):
        """Options Segment has no setting for can be given as overrides."""
        s = Settings.from_segment({}, events_denylist=["Debug"], anonymous_users="alias")
        assert (s.events_denylist, s.anonymous_users) == (frozenset({"Debug"}), "alias")

    def test_unknown_override_refused(self):
        """An override that is not a Settings field is a SettingsError."""
        with pytest.raises(SettingsError, match="datacentre"):
            Settings.from_segment({}, datacentre="US-01")

    def test_bad_value_refused(self):
        """Wrongly typed Segment values are refused, not coerced."""
        with pytest.raises(SettingsError, match="update_existing_only"):
            Settings.from_segment({"updateExistingOnly": "true"})

    def test_non_mapping_refused(self):
        """A config that is not a JSON object is a SettingsError."""
        with pytest.raises(SettingsError, match="JSON object"):
            Settings.from_segment(["apiKey"])  # type: ignore[arg-type]


class TestWebSdkOptions:
    """Options for the Braze Web SDK's initialize call."""

    def test_all_options(self):
        """Every web option appears under Braze's initialize option name."""
        s = Settings(
            app_id="app-1",
            rest_api_key=KEY,
            datacenter="US-02",
            safari_website_push_id="web.com.example",
            web_sdk_version="5.4",
            allow_crawler_activity=True,
            automatically_send_in_app_messages=False,
            do_not_load_font_awesome=True,
            enable_html_in_app_messages=True,
            enable_logging=True,
            min_trigger_interval_seconds=10,
            open_in_app_messages_in_new_tab=True,
            open_news_feed_cards_in_new_tab=True,
            session_timeout_seconds=600,
        )
        assert s.web_sdk_options() == {
            "apiKey": "app-1",
            "baseUrl": "sdk.iad-02.braze.com",
            "allowCrawlerActivity": True,
            "automaticallyShowInAppMessages": False,
            "doNotLoadFontAwesome": True,
            "allowUserSuppliedJavascript": True,
            "enableLogging": True,
            "minimumIntervalBetweenTriggerActionsInSeconds": 10,
            "openInAppMessagesInNewTab": True,
            "openCardsInNewTab": True,
            "sessionTimeoutInSeconds": 600,
            "safariWebsitePushId": "web.com.example",
        }

    def test_defaults(self):
        """Default settings give Braze's defaults and no Safari push id."""
        options = Settings(app_id="app-1", datacenter="EU-01").web_sdk_options()
        assert options["baseUrl"] == "sdk.fra-01.braze.eu"
        assert options["automaticallyShowInAppMessages"] is True
        assert options["sessionTimeoutInSeconds"] == 1800
        assert options["minimumIntervalBetweenTriggerActionsInSeconds"] == 30
        assert "safariWebsitePushId" not in options

    @pytest.mark.parametrize(
        ("version", "key"),
        [
            (None, "openCardsInNewTab"),
            ("2", "openNewsFeedCardsInNewTab"),
            ("3.5", "openNewsFeedCardsInNewTab"),
            ("4", "openCardsInNewTab"),
            ("4.10", "openCardsInNewTab"),
            ("10.0", "openCardsInNewTab"),
        ],
    )
    def test_cards_option_follows_version(self, version, key):
        """Web SDK 4 renamed openNewsFeedCardsInNewTab to openCardsInNewTab."""
        s = Settings(app_id="a", datacenter="US-01", web_sdk_version=version)
        options = s.web_sdk_options()
        assert options[key] is False
        other = {"openCardsInNewTab", "openNewsFeedCardsInNewTab"} - {key}
        assert other.isdisjoint(options)

    @pytest.mark.parametrize(
        "kwargs",
        [{"datacenter": "US-01"}, {"app_id": "a"}, {}],
        ids=["no app_id", "no sdk", "none"],
    )
    def test_missing_requirements(self, kwargs):
        """The Web SDK needs an app identifier and an SDK endpoint."""
        with pytest.raises(SettingsError, match="app_id and sdk_endpoint"):
            Settings(**kwargs).web_sdk_options()


class TestRequireSending:
    """What sending to the REST API needs."""

    def test_complete(self):
        """A REST key and an endpoint are enough to send."""
        Settings(rest_api_key=KEY, datacenter="US-01").require_sending()
        Settings(
            rest_api_key=KEY, rest_endpoint="http://127.0.0.1:1", allow_custom_endpoint=True
        ).require_sending()

    @pytest.mark.parametrize(
        ("kwargs", "missing", "present"),
        [
            ({"datacenter": "US-01"}, "rest_api_key", "endpoint"),
            ({"datacenter": "US-01", "rest_api_key": ""}, "rest_api_key", "endpoint"),
            ({"rest_api_key": KEY}, "endpoint", "rest_api_key"),
            (
                {
                    "rest_api_key": KEY,
                    "sdk_endpoint": "sdk.example.com",
                    "allow_custom_endpoint": True,
                },
                "endpoint",
                "rest_api_key",
            ),
        ],
        ids=["no key", "empty key", "no endpoint", "custom sdk only"],
    )
    def test_names_what_is_missing(self, kwargs, missing, present):
        """The error names exactly what is missing."""
        with pytest.raises(SettingsError, match=missing) as info:
            Settings(**kwargs).require_sending()
        assert present not in str(info.value)

    def test_names_both(self):
        """With nothing configured both requirements are named."""
        with pytest.raises(SettingsError, match=r"rest_api_key .* and an endpoint"):
            Settings().require_sending()


class TestKeySecrecy:
    """The REST API key never leaves the settings object in text."""

    def test_repr_and_str(self):
        """The REST API key never appears in repr() or str()."""
        s = Settings(rest_api_key=KEY, datacenter="US-01")
        assert KEY not in repr(s)
        assert KEY not in str(s)
        assert "rest_api_key" not in repr(s)

    @pytest.mark.parametrize("kwargs", BAD_OPTIONS, ids=_id)
    def test_not_in_any_validation_error(self, kwargs):
        """No SettingsError from a bad option quotes the REST API key."""
        with pytest.raises(SettingsError) as info:
            Settings(**{"rest_api_key": KEY, **kwargs})
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)

    @pytest.mark.parametrize(
        "pasted",
        [f"{KEY}\n", f" {KEY}", f"{KEY} ", f"{KEY[:4]}\r\n{KEY[4:]}", f"{KEY}\x00", f"{KEY}\u00e9"],
        ids=["newline", "leading-space", "trailing-space", "crlf", "nul", "non-ascii"],
    )
    def test_malformed_key_refused_without_quoting_it(self, pasted):
        """A key with a line break, control character or spaces is refused; the error hides it."""
        with pytest.raises(SettingsError, match="copy the key again") as info:
            Settings(rest_api_key=pasted, datacenter="US-01")
        assert KEY not in str(info.value)
        assert KEY[:8] not in repr(info.value)

    def test_key_of_wrong_type_not_quoted(self):
        """A REST API key of the wrong type is not echoed back."""
        with pytest.raises(SettingsError) as info:
            Settings(rest_api_key=[KEY])
        assert KEY not in str(info.value)

    @pytest.mark.parametrize(
        "config",
        [
            {"appGroupId": KEY, "zzz": 1},
            {"appGroupId": KEY, "datacenter": "us11"},
            {"appGroupId": KEY, "customEndpoint": "https://sdk.iad-01.braze.com"},
            {"appGroupId": KEY, "updateExistingOnly": "yes"},
        ],
    )
    def test_not_in_from_segment_errors(self, config):
        """No SettingsError from a Segment export quotes the REST API key."""
        with pytest.raises(SettingsError) as info:
            Settings.from_segment(config)
        assert KEY not in str(info.value)

    def test_not_in_web_sdk_options(self):
        """The REST API key is never part of the Web SDK options."""
        s = Settings(app_id="a", rest_api_key=KEY, datacenter="US-01")
        assert KEY not in repr(s.web_sdk_options())

    def test_not_in_require_sending_error(self):
        """require_sending names the missing endpoint without quoting the key."""
        with pytest.raises(SettingsError) as info:
            Settings(rest_api_key=KEY).require_sending()
        assert KEY not in str(info.value)


class TestNaming:
    """naming picks Segment's or RudderStack's names, and the default alias label."""

    def test_default_is_segment(self):
        """Settings() writes Segment's names and labels aliases segment_anonymous_id."""
        s = Settings()
        assert (s.naming, s.anonymous_alias_label) == ("segment", "segment_anonymous_id")

    def test_rudderstack_label(self):
        """With RudderStack's names and no label given, aliases are labelled rudder_id."""
        assert Settings(naming="rudderstack").anonymous_alias_label == "rudder_id"

    def test_given_label_wins(self):
        """An explicit anonymous_alias_label is kept whatever the naming."""
        s = Settings(naming="rudderstack", anonymous_alias_label="visitor")
        assert s.anonymous_alias_label == "visitor"

    def test_from_segment_keeps_segment_names(self):
        """A Segment export never switches naming: Segment's names stay."""
        s = Settings.from_segment({"apiKey": "app", "trackAllPages": True})
        assert (s.naming, s.anonymous_alias_label) == ("segment", "segment_anonymous_id")

    def test_evolve_keeps_the_derived_label(self):
        """Like the endpoints, the derived label is stored; pass None to derive it again."""
        s = attrs.evolve(Settings(), naming="rudderstack")
        assert s.anonymous_alias_label == "segment_anonymous_id"
        s = attrs.evolve(Settings(), naming="rudderstack", anonymous_alias_label=None)
        assert s.anonymous_alias_label == "rudder_id"


class TestFallbackIdentifiers:
    """fallback_identifiers takes email and phone, each once, in the order given."""

    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            pytest.param((), (), id="none"),
            pytest.param(["phone", "email"], ("phone", "email"), id="list-keeps-order"),
            pytest.param(("email",), ("email",), id="tuple"),
        ],
    )
    def test_stored_as_tuple(self, given, stored):
        """Any sequence of the two names is stored as a tuple in the order given."""
        assert Settings(fallback_identifiers=given).fallback_identifiers == stored


class TestDataModelDefaults:
    """The options of Braze's current data model leave today's behaviour by default."""

    def test_defaults(self):
        """Purchases, source "segment", no group subscriptions, merging, array ops or fallback."""
        s = Settings()
        assert (s.ecommerce, s.ecommerce_source) == ("purchases", "segment")
        assert (s.group_subscriptions, s.merge_nested_objects) == (False, False)
        assert s.nested_array_operations is False
        assert s.fallback_identifiers == ()

    @pytest.mark.parametrize("mode", ["purchases", "recommended", "both"])
    def test_ecommerce_modes(self, mode):
        """The three eCommerce modes are accepted."""
        assert Settings(ecommerce=mode).ecommerce == mode
