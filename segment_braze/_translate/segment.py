"""The Segment side: read an inbound Segment message into a typed call.

Only structure is checked here: a message that cannot be read raises
:class:`InvalidMessage` naming the JSON path of the fault. What Braze would
accept is decided later, by the translation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeGuard

import attrs

from segment_braze._translate.dates import braze_time, format_time, parse_time
from segment_braze._translate.named import braze_id, merge_updates, named_alias, named_app_id
from segment_braze._translate.native import json_form
from segment_braze._translate.text import child_path, is_text, kind_of, shown
from segment_braze.exceptions import InvalidMessage

__all__ = [
    "Alias",
    "Call",
    "Delete",
    "Group",
    "Identify",
    "Page",
    "Screen",
    "Track",
    "Warnings",
    "child_path",
    "is_mapping",
    "is_text",
    "parse_call",
    "shown",
]

Warnings = list[tuple[str, str]]

# Segment: `timestamp` is when it happened (skew-corrected); the others are the
# fall-backs, in order of how close they are to that moment.
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
# Settings.event_time picks the field tried first; the rest follow in the order above.
_TIME_ORDERS: Final = {
    first: (first, *(field for field in _TIME_FIELDS if field != first))
    for first in ("timestamp", "receivedAt", "originalTimestamp")
}
_EMPTY: Mapping[str, Any] = {}


def _optional_id(value: object, key: str) -> str | None:
    """An id as Braze's string, or None; ``key`` is its JSON path after ``$.``."""
    # Hot path: ids are nearly always ASCII strings, which are valid UTF-8.
    if type(value) is str and value.isascii():
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not is_text(value):
            raise InvalidMessage(f"$.{key}", "is not valid Unicode (lone surrogate)")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # Segment allows numeric ids; Braze ids are strings: the exact decimal.
        try:
            return str(value)
        except ValueError:  # Python refuses to write integers of over 4,300 digits
            raise InvalidMessage(f"$.{key}", "is a number too long to be an id") from None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessage(f"$.{key}", f"must be a finite number, not {value}")
        # 12.0 -> "12", the id the sender meant.
        return str(int(value)) if value.is_integer() else repr(value)
    converted = json_form(value)  # a UUID, an Enum member: what analytics-python sends
    if converted is not value:
        return _optional_id(converted, key)
    raise InvalidMessage(f"$.{key}", f"must be a string or a number, not {kind_of(value)}")


def is_mapping(value: object) -> TypeGuard[Mapping[Any, Any]]:
    """``isinstance(value, Mapping)``, with a fast path for the usual ``dict``."""
    return type(value) is dict or isinstance(value, Mapping)


def _object(message: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = message.get(key)
    if type(value) is dict:  # hot path: what a JSON parser gives
        return value
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise InvalidMessage(child_path(path, key), f"must be an object, not {kind_of(value)}")
    return value


def _skew_corrected(message: Mapping[str, Any]) -> str | None:
    """Segment's own ``timestamp``: ``receivedAt - (sentAt - originalTimestamp)``."""
    original = parse_time(message.get("originalTimestamp"))
    sent = parse_time(message.get("sentAt"))
    received = parse_time(message.get("receivedAt"))
    if original is None or sent is None or received is None:
        return None
    try:
        return format_time(received - (sent - original))
    except OverflowError:
        return None


def _event_time(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> str:
    for field in order:
        raw = message.get(field)
        if raw is not None:
            moment = braze_time(raw)
            if moment is not None:
                return moment
            warnings.append((f"$.{field}", f"unusable time {shown(raw)} ignored"))
        if field == "timestamp":
            # Without Segment's corrected time, correct the device clock the way
            # Segment does, rather than trust it.
            corrected = _skew_corrected(message)
            if corrected is not None:
                return corrected
    raise InvalidMessage("$.timestamp", "no usable time in " + ", ".join(order))


@attrs.frozen(kw_only=True)
class Call:
    """What every Segment call carries.

    Attributes:
        type: the Segment call type.
        message_id: Segment's ``messageId``, when present.
        user_id: ``userId`` as a string (numbers converted), or ``None``.
        anonymous_id: ``anonymousId`` as a string, or ``None``.
        braze_id: a Braze id the sender named, or ``None``.
        named_alias: a user alias the sender named (RudderStack's
            ``integrations.braze.alias``), as ``(alias_name, alias_label)``.
        app_id: the Braze app id the sender named for this message
            (RudderStack's ``integrations.braze.appId``), or ``None``.
        merge_updates: RudderStack's ``properties.mergeObjectsUpdateOperation``
            is true: Braze deep-merges the objects its ``$update`` operations name.
        context: the ``context`` object (empty when absent).
    """

    type: str
    message_id: str | None
    user_id: str | None
    anonymous_id: str | None
    braze_id: str | None
    context: Mapping[str, Any] = attrs.field(hash=False, repr=False)
    named_alias: tuple[str, str] | None = None
    app_id: str | None = None
    merge_updates: bool = False


@attrs.frozen(kw_only=True)
class Identify(Call):
    """An ``identify`` call: who the user is."""

    traits: Mapping[str, Any] = attrs.field(hash=False)


@attrs.frozen(kw_only=True)
class Track(Call):
    """A ``track`` call: something the user did (``time`` already in Braze's form)."""

    event: str
    properties: Mapping[str, Any] = attrs.field(hash=False)
    time: str


@attrs.frozen(kw_only=True)
class Page(Call):
    """A ``page`` call (web; ``time`` already in Braze's form)."""

    name: str | None
    category: str | None
    properties: Mapping[str, Any] = attrs.field(hash=False)
    time: str


@attrs.frozen(kw_only=True)
class Screen(Page):
    """A ``screen`` call (mobile); read like a page."""


@attrs.frozen(kw_only=True)
class Group(Call):
    """A ``group`` call: the user belongs to ``group_id`` (``traits`` describe the group)."""

    group_id: str
    traits: Mapping[str, Any] = attrs.field(hash=False, default=_EMPTY)


@attrs.frozen(kw_only=True)
class Alias(Call):
    """An ``alias`` call: ``previous_id`` and ``new_id`` (its userId) are one person."""

    previous_id: str
    new_id: str


@attrs.frozen(kw_only=True)
class Delete(Call):
    """Segment's user-deletion message."""


def _common(
    message: Mapping[str, Any],
) -> tuple[Mapping[str, Any], str | None, str | None, str | None, str | None]:
    """Read what every call carries: context, messageId, userId, anonymousId, braze id."""
    # Hot path: a tuple, not a kwargs dict, is the cheapest way to hand these on.
    context = _object(message, "context", "$")
    external = context.get("externalId")
    return (
        context,
        _optional_id(message.get("messageId"), "messageId"),
        _optional_id(message.get("userId"), "userId")
        if external is None
        else _user_id(message, external),
        _optional_id(message.get("anonymousId"), "anonymousId"),
        braze_id(message, context),
    )


def _user_id(message: Mapping[str, Any], external: object) -> str | None:
    """RudderStack's ``context.externalId`` entry of type ``brazeExternalId``, else ``userId``.

    RudderStack's SDKs name a user's Braze external id this way
    (``putExternalId("brazeExternalId", ...)``) and its Braze destination sends it
    instead of ``userId``; the last such entry wins, as there, and one without an
    id leaves ``userId``. Entries of other types name other tools' ids.
    """
    if isinstance(external, list):
        for index in reversed(range(len(external))):
            entry = external[index]
            if is_mapping(entry) and entry.get("type") == "brazeExternalId":
                named = _optional_id(entry.get("id"), f"context.externalId[{index}].id")
                if named is not None:
                    return named
                break  # an empty id: RudderStack falls back to userId too
    return _optional_id(message.get("userId"), "userId")


def _name(value: object, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        converted = json_form(value)  # an Enum member: its value, as analytics-python sends it
        if converted is value or not isinstance(converted, str):
            raise InvalidMessage(f"$.{key}", f"must be a string, not {kind_of(value)}")
        return _name(converted, key)
    if not is_text(value):
        raise InvalidMessage(f"$.{key}", "is not valid Unicode (lone surrogate)")
    return value


def _identify(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    del warnings, order
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    return Identify(
        type="identify",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
        traits=_object(message, "traits", "$"),
    )


def _track(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    event = message.get("event")
    if type(event) is not str:
        event = json_form(event)  # an Enum member: its value, as analytics-python sends it
    if not isinstance(event, str) or not event.strip():
        raise InvalidMessage("$.event", "a track call needs a non-empty event name")
    if not event.isascii() and not is_text(event):
        raise InvalidMessage("$.event", "is not valid Unicode (lone surrogate)")
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    return Track(
        type="track",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
        event=event,
        properties=_object(message, "properties", "$"),
        time=_event_time(message, warnings, order),
    )


def _page_like(
    message: Mapping[str, Any],
    kind: type[Page],
    call_type: str,
    warnings: Warnings,
    order: tuple[str, ...],
) -> Call:
    properties = _object(message, "properties", "$")
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    name = _name(message.get("name"), "name")
    if name is None:
        # analytics.js puts the page name in properties.name as well; some
        # sources only there.
        candidate = properties.get("name")
        name = candidate if isinstance(candidate, str) and candidate else None
    return kind(
        type=call_type,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
        name=name,
        category=_name(message.get("category"), "category"),
        properties=properties,
        time=_event_time(message, warnings, order),
    )


def _page(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    return _page_like(message, Page, "page", warnings, order)


def _screen(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    return _page_like(message, Screen, "screen", warnings, order)


def _group(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    del order
    group_id = _optional_id(message.get("groupId"), "groupId")
    if group_id is None:
        raise InvalidMessage("$.groupId", "a group call needs a groupId")
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    traits = message.get("traits")
    if not is_mapping(traits):
        # Group traits describe the group and are rarely read: a malformed
        # object costs a warning, not the message.
        if traits is not None:
            warnings.append(("$.traits", f"must be an object, not {kind_of(traits)}; ignored"))
        traits = _EMPTY
    return Group(
        type="group",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
        group_id=group_id,
        traits=traits,
    )


def _alias(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    del warnings, order
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    previous_id = _optional_id(message.get("previousId"), "previousId")
    if previous_id is None:
        raise InvalidMessage("$.previousId", "an alias call needs previousId")
    if user_id is None:
        raise InvalidMessage("$.userId", "an alias call needs userId")
    return Alias(
        type="alias",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
        previous_id=previous_id,
        new_id=user_id,
    )


def _delete(message: Mapping[str, Any], warnings: Warnings, order: tuple[str, ...]) -> Call:
    del warnings, order
    context, message_id, user_id, anonymous_id, braze_id = _common(message)
    return Delete(
        type="delete",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        braze_id=braze_id,
        context=context,
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any], Warnings, tuple[str, ...]], Call]] = {
    "identify": _identify,
    "track": _track,
    "page": _page,
    "screen": _screen,
    "group": _group,
    "alias": _alias,
    "delete": _delete,
}


def parse_call(message: object, warnings: Warnings, *, event_time: str = "timestamp") -> Call:
    """Read a Segment message (a dict as Segment sends it) into a typed call.

    Args:
        message: the Segment message.
        warnings: receives ``(json_path, text)`` for fields ignored on the way.
        event_time: the time field tried first (``Settings.event_time``).

    Returns:
        The typed call.

    Raises:
        InvalidMessage: the message is not an object, has a missing or unknown
            ``type``, or a field the call needs is missing or malformed.
    """
    if not is_mapping(message):
        raise InvalidMessage("$", f"a Segment message must be an object, not {kind_of(message)}")
    call_type = message.get("type")
    if not isinstance(call_type, str) or not call_type:
        raise InvalidMessage("$.type", "missing message type")
    # Hot path: Segment's libraries send the type in lower case already.
    parser = _PARSERS.get(call_type) or _PARSERS.get(call_type.lower())
    if parser is None:
        known = ", ".join(sorted(_PARSERS))
        raise InvalidMessage("$.type", f"unknown message type {shown(call_type)} (known: {known})")
    call = parser(message, warnings, _TIME_ORDERS[event_time])
    # Hot path: Segment's libraries send no integrations options, or none at all.
    if message.get("integrations") or call.context.get("integrations"):
        alias = named_alias(message, call.context, warnings)
        app_id = named_app_id(message, call.context, warnings)
        if alias is not None or app_id is not None:
            call = attrs.evolve(call, named_alias=alias, app_id=app_id)
    properties = message.get("properties")
    if is_mapping(properties) and merge_updates(properties, warnings):
        call = attrs.evolve(call, merge_updates=True)
    return call
