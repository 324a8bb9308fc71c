"""Pure translation: one small function per Segment call type, dispatched by a table.

No I/O, no clock, no global state: the same message and settings always give the
same :class:`Translation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from segment_braze._settings import Settings
from segment_braze._translate.array_ops import has_object_update
from segment_braze._translate.braze import (
    Event,
    Identifier,
    Purchase,
    UserAttributes,
    UserOperation,
)
from segment_braze._translate.devices import push_token
from segment_braze._translate.ecommerce import SEGMENT_EVENTS, recommended_event
from segment_braze._translate.identity import (
    TOO_LONG,
    identifier_of,
    identify_alias,
    identify_email,
    lookup_attributes,
    too_long,
)
from segment_braze._translate.products import track_purchases
from segment_braze._translate.profile import event_attributes, identify_attributes
from segment_braze._translate.routing import blocked
from segment_braze._translate.segment import (
    Alias,
    Call,
    Delete,
    Group,
    Identify,
    Page,
    Screen,
    Track,
    Warnings,
    is_mapping,
    is_text,
    parse_call,
)
from segment_braze._translate.traits import (
    group_subscription,
    has_nested_object,
)
from segment_braze._translate.translation import Translation
from segment_braze._translate.values import MAX_KEY, clean_properties
from segment_braze.exceptions import InvalidMessage

__all__ = ["translate"]

_DEFAULT_SETTINGS: Final = Settings()
_EVENT_RESERVED: Final = frozenset({"time", "event_name"})
_FILTERED: Final = "filtered"
_LOOKUP_KINDS: Final = frozenset({"email", "phone"})
_GROUP_PREFIXES: Final = {"segment": "ab_segment_group_", "rudderstack": "ab_rudder_group_"}


def translate(message: Mapping[str, Any], settings: Settings | None = None) -> Translation:
    """Translate one Segment message into what Braze should receive.

    Args:
        message: a Segment spec message as Segment sends it (camelCase keys).
        settings: connection and translation options; defaults serve translation
            and unit tests.

    Returns:
        The Braze objects and requests, with ``dropped`` set when the message maps
        to nothing and ``warnings`` for every field dropped or normalised.

    Raises:
        InvalidMessage: the message is malformed (not an object, missing or unknown
            ``type``, a track without an event name, no usable time, ...); its
            ``path`` names the JSON path of the fault.
    """
    warnings: Warnings = []
    settings = settings or _DEFAULT_SETTINGS
    try:
        if is_mapping(message):
            reason = blocked(message, settings, warnings)
            if reason is not None:
                return _blocked(message, reason, settings, warnings)
        call = parse_call(message, warnings, event_time=settings.event_time)
        return _HANDLERS[type(call)](call, settings, warnings)
    except InvalidMessage:
        raise
    except (RecursionError, OverflowError, UnicodeError, ValueError, TypeError) as err:
        # A value no rule above foresaw (a hostile Mapping, say) costs only this
        # message: the contract is InvalidMessage, never another exception.
        raise InvalidMessage("$", f"cannot be translated ({type(err).__name__})") from err


def _blocked(
    message: Mapping[str, Any], reason: str, settings: Settings, warnings: Warnings
) -> Translation:
    """A message Segment would not deliver to Braze: dropped, malformed or not."""
    try:
        message_id = parse_call(message, [], event_time=settings.event_time).message_id
    except InvalidMessage:
        raw = message.get("messageId")
        message_id = raw if isinstance(raw, str) and raw and is_text(raw) else None
    return Translation(message_id=message_id, dropped=reason, warnings=tuple(warnings))


def _dropped(call: Call, reason: str, warnings: Warnings) -> Translation:
    return Translation(message_id=call.message_id, dropped=reason, warnings=tuple(warnings))


def _build(
    call: Call,
    identifier: Identifier,
    settings: Settings,
    warnings: Warnings,
    *,
    attributes: dict[str, Any] | None = None,
    events: tuple[Event, ...] = (),
    purchases: tuple[Purchase, ...] = (),
    operations: tuple[UserOperation, ...] = (),
    merge_objects: bool = False,
) -> Translation:
    """Assemble a translation, creating the alias profile first when needed."""
    attribute_objects: tuple[UserAttributes, ...] = ()
    if attributes and identifier.kind in _LOOKUP_KINDS:
        where = "$.traits" if isinstance(call, Identify) else "$.context.traits"
        attributes = lookup_attributes(identifier, attributes, where, warnings)
    if call.merge_updates and attributes and has_object_update(attributes):
        # RudderStack's mergeObjectsUpdateOperation: without _merge_objects,
        # Braze replaces each object an $update names with its $new_object.
        merge_objects = True
    if identifier.is_alias:
        # Braze creates an alias-only profile only from an attributes object with
        # _update_existing_only false, and drops alias events for a profile that
        # does not exist yet: so the alias profile comes first, whatever the
        # update_existing_only setting says.
        attribute_objects = (
            UserAttributes(
                identifier=identifier,
                attributes=attributes or {},
                update_existing_only=False,
                merge_objects=merge_objects,
            ),
        )
    elif attributes is not None:
        attribute_objects = (
            UserAttributes(
                identifier=identifier,
                attributes=attributes,
                update_existing_only=settings.update_existing_only,
                merge_objects=merge_objects,
            ),
        )
    return Translation(
        message_id=call.message_id,
        attributes=attribute_objects,
        events=events,
        purchases=purchases,
        operations=operations,
        warnings=tuple(warnings),
    )


def _objects_update_only(identifier: Identifier, settings: Settings) -> bool:
    # Braze treats events and purchases sent by alias as update-only; say so.
    return True if identifier.is_alias else settings.update_existing_only


def _identify(call: Identify, settings: Settings, warnings: Warnings) -> Translation:
    identifier = identifier_of(call, settings, warnings)
    if isinstance(identifier, str):
        return _dropped(call, identifier, warnings)
    attributes = identify_attributes(call, settings, warnings)
    token = push_token(call, settings, warnings)
    if token is not None:
        attributes.setdefault("push_tokens", []).append(token)
    operations: tuple[UserOperation, ...] = ()
    if identifier.kind == "external_id":
        if "email" in settings.fallback_identifiers:
            # The email-only profile's history merges into the known user.
            by_email = identify_email(call, identifier.value, warnings)
            if by_email is not None:
                operations = (by_email,)
        if call.named_alias is not None:
            # RudderStack's named alias: that profile merges into the known user.
            operations += (identify_alias(identifier.value, *call.named_alias),)
        elif settings.anonymous_users == "alias" and call.anonymous_id is not None:
            # The anonymous profile's history merges into the known user.
            label = settings.anonymous_alias_label
            operations += (identify_alias(identifier.value, call.anonymous_id, label),)
    return _build(
        call,
        identifier,
        settings,
        warnings,
        attributes=attributes,
        operations=operations,
        # Braze: without _merge_objects a nested object replaces the stored one.
        merge_objects=settings.merge_nested_objects and has_nested_object(attributes),
    )


def _allowed(name: str, settings: Settings) -> bool:
    if name in settings.events_denylist:
        return False
    return settings.events_allowlist is None or name in settings.events_allowlist


def _track(call: Track, settings: Settings, warnings: Warnings) -> Translation:
    if not _allowed(call.event, settings):
        return _dropped(call, _FILTERED, warnings)
    identifier = identifier_of(call, settings, warnings)
    if isinstance(identifier, str):
        return _dropped(call, identifier, warnings)
    update_only = _objects_update_only(identifier, settings)
    attributes = event_attributes(call, settings, warnings)
    if settings.ecommerce != "purchases" and call.event in SEGMENT_EVENTS:
        return _ecommerce(
            call, identifier, settings, warnings, attributes=attributes, update_only=update_only
        )
    # Hot path: most tracks have no products and log no revenue.
    if "products" in call.properties or settings.log_purchase_when_revenue_present:
        purchases = track_purchases(
            call.event,
            call.properties,
            settings,
            identifier=identifier,
            time=call.time,
            app_id=call.app_id or settings.app_id,
            update_existing_only=update_only,
            warnings=warnings,
        )
        if isinstance(purchases, str):
            return _dropped(call, purchases, warnings)
        if purchases:
            return _build(
                call, identifier, settings, warnings, attributes=attributes, purchases=purchases
            )
    return _event(
        call,
        call.event,
        properties=call.properties,
        identifier=identifier,
        update_existing_only=update_only,
        settings=settings,
        warnings=warnings,
        attributes=attributes,
    )


def _ecommerce(
    call: Track,
    identifier: Identifier,
    settings: Settings,
    warnings: Warnings,
    *,
    attributes: dict[str, Any] | None,
    update_only: bool,
) -> Translation:
    """A Segment e-commerce event as Braze's recommended event (``ecommerce`` on).

    Braze drops an invalid recommended event, so one that fails its schema is
    sent as what it would otherwise be: the plain custom event, or in "both"
    mode the purchases; never invalid, never lost.
    """
    built = recommended_event(call.event, call.properties, source=settings.ecommerce_source)
    purchases: tuple[Purchase, ...] = ()
    if settings.ecommerce == "both":
        logged = track_purchases(
            call.event,
            call.properties,
            settings,
            identifier=identifier,
            time=call.time,
            app_id=call.app_id or settings.app_id,
            update_existing_only=update_only,
            warnings=warnings,
        )
        # Every product invalid: their warnings say why, and the event stands alone.
        purchases = () if isinstance(logged, str) else logged
    if built.problems:
        warnings.extend(built.problems)
        instead = "purchases" if purchases else f"the custom event {call.event!r}"
        count = len(built.problems)
        warnings.append(
            (
                "$.event",
                f"not sent as {built.name}: {count} field{'s' * (count > 1)} missing or "
                f"invalid; sent as {instead}",
            )
        )
        if purchases:
            return _build(
                call, identifier, settings, warnings, attributes=attributes, purchases=purchases
            )
        return _event(
            call,
            call.event,
            properties=call.properties,
            identifier=identifier,
            update_existing_only=update_only,
            settings=settings,
            warnings=warnings,
            attributes=attributes,
        )
    warnings.extend(built.warnings)
    event = Event(
        identifier=identifier,
        name=built.name,
        time=call.time,
        app_id=call.app_id or settings.app_id,
        properties=built.properties,
        update_existing_only=update_only,
    )
    return _build(
        call,
        identifier,
        settings,
        warnings,
        attributes=attributes,
        events=(event,),
        purchases=purchases,
    )


def _event(
    call: Track | Page,
    name: str,
    *,
    properties: Mapping[str, Any],
    identifier: Identifier,
    update_existing_only: bool,
    settings: Settings,
    warnings: Warnings,
    attributes: dict[str, Any] | None = None,
) -> Translation:
    if len(name) > MAX_KEY:
        return _dropped(call, f"event name over Braze's {MAX_KEY} characters", warnings)
    event = Event(
        identifier=identifier,
        name=name,
        time=call.time,
        app_id=call.app_id or settings.app_id,
        properties=clean_properties(properties, "$.properties", _EVENT_RESERVED, warnings),
        update_existing_only=update_existing_only,
    )
    return _build(call, identifier, settings, warnings, attributes=attributes, events=(event,))


def _page(call: Page, settings: Settings, warnings: Warnings) -> Translation:
    noun = "Screen" if isinstance(call, Screen) else "Page"
    rudderstack = settings.naming == "rudderstack"
    if call.name is not None and (settings.track_named_pages or settings.track_all_pages):
        # Braze's Segment mapping: Viewed {category }{name} Page / Viewed {name} Screen.
        # RudderStack's (transform.ts, process): the page or screen name itself.
        prefix = f"{call.category} " if call.category and noun == "Page" else ""
        name = call.name if rudderstack else f"Viewed {prefix}{call.name} {noun}"
    elif call.name is None and settings.track_all_pages:
        name = f"{noun} Viewed" if rudderstack else f"Loaded a {noun}"
    else:
        setting = "track_named_pages or track_all_pages" if call.name else "track_all_pages"
        return _dropped(call, f"{noun.lower()} calls are not tracked ({setting} is off)", warnings)
    if not _allowed(name, settings):
        return _dropped(call, _FILTERED, warnings)
    identifier = identifier_of(call, settings, warnings)
    if isinstance(identifier, str):
        return _dropped(call, identifier, warnings)
    properties = dict(call.properties)
    if call.name is not None:
        properties["name"] = call.name
    if call.category is not None:
        properties["category"] = call.category
    return _event(
        call,
        name,
        properties=properties,
        identifier=identifier,
        update_existing_only=_objects_update_only(identifier, settings),
        settings=settings,
        warnings=warnings,
        attributes=event_attributes(call, settings, warnings),
    )


def _group(call: Group, settings: Settings, warnings: Warnings) -> Translation:
    identifier = identifier_of(call, settings, warnings)
    if isinstance(identifier, str):
        return _dropped(call, identifier, warnings)
    if settings.group_subscriptions and call.traits:
        subscription = group_subscription(call.group_id, call.traits, warnings)
        if subscription is not None:
            return _build(call, identifier, settings, warnings, attributes=subscription)
    # Braze's Segment mapping: ab_segment_group_<groupId> = true; traits not sent.
    # RudderStack's (transform.ts, processGroup): ab_rudder_group_<groupId>.
    key = f"{_GROUP_PREFIXES[settings.naming]}{call.group_id}"
    if len(key) > MAX_KEY:
        return _dropped(call, f"group attribute name over Braze's {MAX_KEY} characters", warnings)
    return _build(call, identifier, settings, warnings, attributes={key: True})


def _alias(call: Alias, settings: Settings, warnings: Warnings) -> Translation:
    if settings.alias_calls == "drop":
        return _dropped(call, "alias calls are not sent (alias_calls='drop')", warnings)
    for name, value in (("userId", call.new_id), ("previousId", call.previous_id)):
        if too_long(value):
            return _dropped(call, f"{name} {TOO_LONG}", warnings)
    if settings.alias_calls == "merge":
        operation = UserOperation(
            path="/users/merge",
            key="merge_updates",
            entry={
                "identifier_to_merge": {"external_id": call.previous_id},
                "identifier_to_keep": {"external_id": call.new_id},
            },
        )
    else:
        operation = identify_alias(call.new_id, call.previous_id, settings.anonymous_alias_label)
    return Translation(
        message_id=call.message_id, operations=(operation,), warnings=tuple(warnings)
    )


def _delete(call: Delete, settings: Settings, warnings: Warnings) -> Translation:
    del settings
    if call.user_id is None:
        return _dropped(call, "a delete needs a userId: Braze deletes by external id", warnings)
    if too_long(call.user_id):
        return _dropped(call, f"userId {TOO_LONG}", warnings)
    operation = UserOperation(path="/users/delete", key="external_ids", entry=call.user_id)
    return Translation(
        message_id=call.message_id, operations=(operation,), warnings=tuple(warnings)
    )


# Each handler takes its own Call subclass; the table is keyed by that class.
_HANDLERS: Final[dict[type[Call], Callable[[Any, Settings, Warnings], Translation]]] = {
    Identify: _identify,
    Track: _track,
    Page: _page,
    Screen: _page,
    Group: _group,
    Alias: _alias,
    Delete: _delete,
}
