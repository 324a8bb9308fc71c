"""Connection and translation options: Braze's Segment connection settings.

Build :class:`Settings` with keywords, or from a Segment Braze (Classic) export
with :meth:`Settings.from_segment`. The REST API key never enters a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import attrs

from segment_braze._endpoints import cluster_name, resolve_endpoints
from segment_braze.exceptions import SettingsError

__all__ = [
    "SEGMENT_IGNORED_KEYS",
    "AliasCalls",
    "AnonymousUsers",
    "Ecommerce",
    "EventTime",
    "FallbackIdentifier",
    "Naming",
    "Settings",
]

AnonymousUsers = Literal["drop", "alias"]
AliasCalls = Literal["identify", "merge", "drop"]
EventTime = Literal["timestamp", "receivedAt", "originalTimestamp"]
Naming = Literal["segment", "rudderstack"]
FallbackIdentifier = Literal["email", "phone"]
Ecommerce = Literal["purchases", "recommended", "both"]

# The alias label each naming uses when anonymous_alias_label is not given:
# RudderStack's Braze destination labels anonymous ids "rudder_id" (util.ts,
# setAliasObject).
_ALIAS_LABELS: dict[str, str] = {"segment": "segment_anonymous_id", "rudderstack": "rudder_id"}

_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")

# Segment Braze (Classic) export key -> Settings field. Key names as Segment's own
# Braze integrations read them (analytics.js-integration-appboy, integration-appboy,
# analytics-swift-braze) and as a destination-settings export shows them.
_SEGMENT_FIELDS: dict[str, str] = {
    "apiKey": "app_id",  # Segment's "API Key" is Braze's App identifier, not secret
    "appGroupId": "rest_api_key",  # "REST API Key", once "App Group Identifier"
    "datacenter": "datacenter",
    "customEndpoint": "sdk_endpoint",
    "restCustomEndpoint": "rest_endpoint",
    "updateExistingOnly": "update_existing_only",
    "logPurchaseWhenRevenuePresent": "log_purchase_when_revenue_present",
    "trackAllPages": "track_all_pages",
    "trackNamedPages": "track_named_pages",
    "safariWebsitePushId": "safari_website_push_id",
    "version": "web_sdk_version",
    "allowCrawlerActivity": "allow_crawler_activity",
    "automaticallyDisplayMessages": "automatically_send_in_app_messages",
    "doNotLoadFontAwesome": "do_not_load_font_awesome",
    "enableHtmlInAppMessages": "enable_html_in_app_messages",
    "enableLogging": "enable_logging",
    "minimumIntervalBetweenTriggerActionsInSeconds": "min_trigger_interval_seconds",
    "openInAppMessagesInNewTab": "open_in_app_messages_in_new_tab",
    "openNewsFeedCardsInNewTab": "open_news_feed_cards_in_new_tab",
    "sessionTimeoutInSeconds": "session_timeout_seconds",
}

#: Segment Braze (Classic) settings that :meth:`Settings.from_segment` accepts and
#: ignores because nothing here acts on them (see docs/settings.md).
SEGMENT_IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "automatic_in_app_message_registration_enabled",  # native mobile SDKs only
        "localization",  # Web SDK options this library does not model
        "requireExplicitInAppMessageDismissal",
        "serviceWorkerLocation",
        "onlyTrackKnownUsersOnWeb",  # Segment's web device mode only
        "type",  # Segment bookkeeping in the settings it serves to its SDKs
        "bundlingStatus",
        "versionSettings",
    }
)


def _is_bool(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # Truthiness would turn "no" or "false" from a config file into True.
    if not isinstance(value, bool):
        kind = type(value).__name__
        raise SettingsError(f"{attribute.name} must be True or False, not {kind}")


def _is_optional_str(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # Name the type, never the value: this also guards rest_api_key.
    if value is not None and not isinstance(value, str):
        kind = type(value).__name__
        raise SettingsError(f"{attribute.name} must be a string or None, not {kind}")


def _is_key(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _is_optional_str(_, attribute, value)
    # A pasted key with a line break or spaces would reach the HTTP layer, whose
    # errors print the header: refuse it here, without ever showing it.
    if value is not None and (
        value != value.strip() or not value.isprintable() or not value.isascii()
    ):
        raise SettingsError(
            f"{attribute.name} contains a line break, a control or non-ASCII character, or"
            " surrounding spaces: copy the key again from Braze's dashboard"
        )


def _is_source(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # Braze: source is a required non-blank string of at most 255 characters.
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise SettingsError(
            f"{attribute.name} must be a non-empty string of at most 255 characters"
        )


def _alias_label(value: str | None) -> str:
    # None means "not given": __attrs_post_init__ picks the naming's label.
    if value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("anonymous_alias_label must be a non-empty string")
    return value


def _is_version(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _is_optional_str(_, attribute, value)
    if value is not None and not _VERSION.fullmatch(value):
        raise SettingsError(f"{attribute.name} must look like '5' or '4.10', not {value!r}")


def _flag(default: bool) -> Any:
    return attrs.field(default=default, validator=_is_bool)


def _text() -> Any:
    return attrs.field(default=None, validator=_is_optional_str)


def _number(default: int, *, high: int | None = None, low: int = 0) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            kind = type(value).__name__
            raise SettingsError(f"{attribute.name} must be an integer, not {kind}")
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"{low} to {high}"
            raise SettingsError(f"{attribute.name} must be {bounds}, not {value}")

    return attrs.field(default=default, validator=check)


def _one_of(choices: Any) -> Any:
    allowed = get_args(choices)

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            names = "/".join(allowed)
            raise SettingsError(f"{attribute.name} must be {names}, not {value!r}")

    return check


def _names(field: str, value: Any) -> frozenset[str]:
    # A lone string is iterable too: "Signed Up" would become 8 one-letter names.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        kind = type(value).__name__
        raise SettingsError(f"{field} must be a list or set of event names, not {kind}")
    names = frozenset(value)
    if not all(isinstance(name, str) for name in names):
        raise SettingsError(f"{field} must contain only strings")
    return names


def _purchase_events(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else _names("purchase_events", value)


def _strings(field: str, value: Any) -> tuple[str, ...]:
    """A tuple of non-empty strings, in the order given."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        kind = type(value).__name__
        raise SettingsError(f"{field} must be a list of names, not {kind}")
    names = tuple(value)
    if not all(isinstance(name, str) and name for name in names):
        raise SettingsError(f"{field} must contain only non-empty strings")
    return names


def _integration_names(value: Any) -> tuple[str, ...]:
    return _strings("integration_names", value)


def _consent_categories(value: Any) -> tuple[str, ...]:
    return _strings("consent_categories", value)


def _fallback_identifiers(value: Iterable[str]) -> tuple[FallbackIdentifier, ...]:
    names = _strings("fallback_identifiers", value)
    allowed = get_args(FallbackIdentifier)
    if not set(names) <= set(allowed) or len(set(names)) != len(names):
        raise SettingsError(f"fallback_identifiers must name each of {allowed} at most once")
    return names  # type: ignore[return-value]  # checked against the Literal just above


def _allowlist(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else _names("events_allowlist", value)


def _denylist(value: Iterable[str]) -> frozenset[str]:
    return _names("events_denylist", value)


def _segment_value(field: str, value: Any) -> Any:
    if field == "datacenter" and isinstance(value, str):
        # Segment's drop-down says "us", "us02", "us03", "eu": the bare region is
        # the first cluster. Braze spellings ("US-03") are accepted too.
        match = re.fullmatch(r"([a-z]{2})-?([0-9]{2})?", value.strip().lower())
        if match:
            return f"{match[1].upper()}-{match[2] or '01'}"
    if field == "web_sdk_version" and isinstance(value, int | float):
        return format(value, "g")  # Segment's default is the number 1
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON numbers such as 30.0
    return value


@attrs.frozen(kw_only=True)
class Settings:
    """Everything needed to turn Segment calls into data for one Braze workspace.

    ``datacenter`` fills in both endpoints; without it the cluster is inferred
    from a Braze endpoint. docs/settings.md describes every option.

    Raises:
        SettingsError: an option has the wrong type or value, or the endpoints
            contradict each other or the datacenter.
    """

    app_id: str | None = _text()
    rest_api_key: str | None = attrs.field(default=None, repr=False, validator=_is_key)
    datacenter: str | None = attrs.field(default=None, converter=cluster_name)
    rest_endpoint: str | None = _text()
    sdk_endpoint: str | None = _text()
    allow_custom_endpoint: bool = _flag(False)
    # Braze: arrays hold up to 500 items (the default); older accounts 25.
    max_array_length: int = _number(500, high=500, low=1)
    update_existing_only: bool = _flag(False)
    log_purchase_when_revenue_present: bool = _flag(False)
    track_all_pages: bool = _flag(False)
    track_named_pages: bool = _flag(False)
    safari_website_push_id: str | None = _text()
    web_sdk_version: str | None = attrs.field(default=None, validator=_is_version)
    allow_crawler_activity: bool = _flag(False)
    automatically_send_in_app_messages: bool = _flag(True)
    do_not_load_font_awesome: bool = _flag(False)
    enable_html_in_app_messages: bool = _flag(False)
    enable_logging: bool = _flag(False)
    min_trigger_interval_seconds: int = _number(30)
    open_in_app_messages_in_new_tab: bool = _flag(False)
    open_news_feed_cards_in_new_tab: bool = _flag(False)
    session_timeout_seconds: int = _number(1800)
    anonymous_users: AnonymousUsers = attrs.field(default="drop", validator=_one_of(AnonymousUsers))
    anonymous_alias_label: str = attrs.field(default=None, converter=_alias_label)
    alias_calls: AliasCalls = attrs.field(default="identify", validator=_one_of(AliasCalls))
    events_allowlist: frozenset[str] | None = attrs.field(default=None, converter=_allowlist)
    events_denylist: frozenset[str] = attrs.field(default=frozenset(), converter=_denylist)
    # Braze: legacy accounts take 75 attributes + 75 events + 75 purchases per
    # /users/track request; current accounts 75 objects in total.
    legacy_track_limits: bool = _flag(False)
    # Segment's delivery rules (docs/mapping.md, "Which messages reach Braze").
    integration_names: tuple[str, ...] = attrs.field(
        default=("Braze", "Appboy", "Braze Cloud Mode (Actions)"),
        converter=_integration_names,
    )
    consent_categories: tuple[str, ...] = attrs.field(default=(), converter=_consent_categories)
    # Segment's e-commerce spec: only these track events log purchases.
    purchase_events: frozenset[str] | None = attrs.field(
        default=frozenset({"Order Completed"}), converter=_purchase_events
    )
    # Braze's eCommerce recommended events (docs/mapping.md, "eCommerce").
    ecommerce: Ecommerce = attrs.field(default="purchases", validator=_one_of(Ecommerce))
    ecommerce_source: str = attrs.field(default="segment", validator=_is_source)
    context_traits_as_attributes: bool = _flag(False)
    context_attributes: bool = _flag(False)
    event_time: EventTime = attrs.field(default="timestamp", validator=_one_of(EventTime))
    # Names written for page, screen and group calls (docs/mapping.md).
    naming: Naming = attrs.field(default="segment", validator=_one_of(Naming))
    # Braze: _merge_objects deep-merges nested object attributes (docs/mapping.md).
    merge_nested_objects: bool = _flag(False)
    # RudderStack's "subscription group in group call" (docs/mapping.md).
    group_subscriptions: bool = _flag(False)
    # RudderStack's "enableNestedArrayOperations": add/update/remove traits (docs/mapping.md).
    nested_array_operations: bool = _flag(False)
    # Braze's email/phone identifiers, for messages without a primary id
    # (docs/identity.md), in the order tried.
    fallback_identifiers: tuple[FallbackIdentifier, ...] = attrs.field(
        default=(), converter=_fallback_identifiers
    )

    def __attrs_post_init__(self) -> None:
        cluster, rest, sdk = resolve_endpoints(
            self.datacenter,
            self.rest_endpoint,
            self.sdk_endpoint,
            custom=self.allow_custom_endpoint,
        )
        # Frozen class: derived values are set once, here, at construction.
        if not self.anonymous_alias_label:
            object.__setattr__(self, "anonymous_alias_label", _ALIAS_LABELS[self.naming])
        object.__setattr__(self, "datacenter", cluster)
        object.__setattr__(self, "rest_endpoint", rest)
        object.__setattr__(self, "sdk_endpoint", sdk)

    @classmethod
    def from_segment(
        cls, config: Mapping[str, Any], *, strict: bool = True, **overrides: Any
    ) -> Settings:
        """Build settings from a Segment Braze (Classic) destination-settings export.

        Empty strings mean "not set". A custom endpoint in the export wins over
        its ``datacenter``, as in Segment; the cluster is inferred from it.

        Args:
            config: the export's settings object, with Segment's camelCase keys.
            strict: raise on keys neither mapped nor in SEGMENT_IGNORED_KEYS;
                False skips them (see :meth:`unknown_segment_keys`).
            **overrides: Settings fields that win over the export, for example
                ``rest_api_key`` read from the environment.

        Returns:
            The validated settings.

        Raises:
            SettingsError: unknown keys (when strict), unknown override names,
                or any invalid option.
        """
        if not isinstance(config, Mapping):
            raise SettingsError("Segment settings must be a JSON object")
        unknown = cls.unknown_segment_keys(config)
        if strict and unknown:
            raise SettingsError(
                f"unknown Segment Braze settings: {', '.join(unknown)}"
                " (pass strict=False to skip them)"
            )
        not_fields = sorted(set(overrides) - set(attrs.fields_dict(cls)))
        if not_fields:
            raise SettingsError(f"unknown Settings fields: {', '.join(not_fields)}")
        values = {
            field: _segment_value(field, config[key])
            for key, field in _SEGMENT_FIELDS.items()
            if config.get(key) not in (None, "")
        }
        if "rest_endpoint" in values or "sdk_endpoint" in values:
            # Segment lets a custom endpoint win over the drop-down, whose
            # default ("us") is often left untouched by users of other clusters.
            values.pop("datacenter", None)
        return cls(**(values | overrides))

    @staticmethod
    def unknown_segment_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
        """Return, sorted, the keys of a Segment export that from_segment does not know.

        Args:
            config: the export's settings object.

        Returns:
            Keys neither mapped to a field nor in SEGMENT_IGNORED_KEYS.
        """
        known = _SEGMENT_FIELDS.keys() | SEGMENT_IGNORED_KEYS
        return tuple(sorted(str(key) for key in config if key not in known))

    def web_sdk_options(self) -> dict[str, Any]:
        """Return the Braze Web SDK initialisation options matching these settings.

        ``apiKey`` is the first argument of ``braze.initialize(apiKey, options)``
        and ``automaticallyShowInAppMessages`` says whether to call
        ``braze.automaticallyShowInAppMessages()``: take both out before passing
        the rest as ``options``. The REST API key is never included.

        Returns:
            A JSON-ready dict with Braze's option names.

        Raises:
            SettingsError: ``app_id`` or the SDK endpoint is missing.
        """
        if not (self.app_id and self.sdk_endpoint):
            raise SettingsError("the Web SDK needs app_id and sdk_endpoint (or datacenter)")
        version = self.web_sdk_version
        # Braze renamed openNewsFeedCardsInNewTab to openCardsInNewTab in Web SDK 4.
        legacy = version is not None and int(version.split(".")[0]) < 4
        cards = "openNewsFeedCardsInNewTab" if legacy else "openCardsInNewTab"
        options: dict[str, Any] = {
            "apiKey": self.app_id,
            "baseUrl": self.sdk_endpoint,
            "allowCrawlerActivity": self.allow_crawler_activity,
            "automaticallyShowInAppMessages": self.automatically_send_in_app_messages,
            "doNotLoadFontAwesome": self.do_not_load_font_awesome,
            "allowUserSuppliedJavascript": self.enable_html_in_app_messages,
            "enableLogging": self.enable_logging,
            "minimumIntervalBetweenTriggerActionsInSeconds": self.min_trigger_interval_seconds,
            "openInAppMessagesInNewTab": self.open_in_app_messages_in_new_tab,
            cards: self.open_news_feed_cards_in_new_tab,
            "sessionTimeoutInSeconds": self.session_timeout_seconds,
        }
        if self.safari_website_push_id:
            options["safariWebsitePushId"] = self.safari_website_push_id
        return options

    def require_sending(self) -> None:
        """Check that these settings can send to the Braze REST API.

        Raises:
            SettingsError: naming what is missing: ``rest_api_key`` and/or an
                endpoint (``datacenter`` or ``rest_endpoint``).
        """
        missing = [
            name
            for name, have in (
                ("rest_api_key (Segment: appGroupId)", self.rest_api_key),
                ("an endpoint (datacenter or rest_endpoint)", self.rest_endpoint),
            )
            if not have
        ]
        if missing:
            raise SettingsError(f"cannot send to Braze without {' and '.join(missing)}")
