"""Segment identify traits -> Braze user attributes (standard and custom)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from segment_braze._translate.array_ops import braze_array_operations, is_rudderstack_operation
from segment_braze._translate.dates import read_birthday
from segment_braze._translate.iso import country_code, language_code
from segment_braze._translate.native import json_form
from segment_braze._translate.segment import Warnings, child_path, is_mapping, is_text, shown
from segment_braze._translate.synonyms import OUTRANKED, outranked
from segment_braze._translate.values import (
    DROP,
    MAX_STRING,
    clean_custom_attribute,
    is_operation,
    is_plain,
)

__all__ = ["group_subscription", "has_nested_object", "traits_to_attributes"]

# Braze: M, F, O (other), N (not applicable), P (prefer not to say).
_GENDERS: Final = {
    **dict.fromkeys(("male", "m", "man"), "M"),
    # "w" (German "weiblich"): Segment's Actions destination and RudderStack read it as F.
    **dict.fromkeys(("female", "f", "woman", "w"), "F"),
    **dict.fromkeys(("other", "o", "non-binary", "nonbinary", "non binary"), "O"),
    **dict.fromkeys(("not applicable", "n", "na", "n/a"), "N"),
    **dict.fromkeys(("prefer not to say", "p"), "P"),
}
_SUBSCRIPTION_STATES: Final = frozenset({"opted_in", "subscribed", "unsubscribed"})
_GROUP_STATES: Final = frozenset({"subscribed", "unsubscribed"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
# An IANA zone name: "UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires",
# "Etc/GMT+5". Checked by form only: reading the zone database is I/O.
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9][A-Za-z0-9_+\-]*)*\Z")
# Keys that name parts of the Braze object itself, never a custom attribute.
_OBJECT_KEYS: Final = frozenset(
    {
        "external_id",
        "user_alias",
        "braze_id",
        "_update_existing_only",
        "push_token_import",
    }
)

# Trait names with a meaning of their own, never a plain custom attribute.
_SPECIAL_KEYS: Final = _OBJECT_KEYS | {"address", "name"}

Out = dict[str, Any]
Handler = Callable[[Any, str, Out, Warnings], None]


def _string(target: str) -> Handler:
    """Make a handler for a standard string attribute (at most 255 characters)."""

    def handle(value: Any, path: str, out: Out, warnings: Warnings) -> None:
        if value is None:
            out[target] = None  # explicit null unsets the attribute in Braze
        elif not isinstance(value, str):
            warnings.append((path, f"{target} must be a string; dropped"))
        elif not value.isascii() and not is_text(value):
            warnings.append((path, f"{target} is not valid Unicode (lone surrogate); dropped"))
        elif len(value) > MAX_STRING:
            warnings.append(
                (
                    path,
                    f"{target} of {len(value)} characters exceeds Braze's {MAX_STRING}; dropped",
                )
            )
        else:
            out[target] = value

    return handle


_first_name: Final = _string("first_name")
_last_name: Final = _string("last_name")
_image_url: Final = _string("image_url")
_home_city: Final = _string("home_city")
_phone_string: Final = _string("phone")


def _phone(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        warnings.append((path, "numeric phone written as a string"))
        value = str(value)
    _phone_string(value, path, out, warnings)


def _dob(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if value is None:
        out["dob"] = None
        return
    day, how = read_birthday(value)
    if day is None:
        warnings.append((path, f"birthday {shown(value)} {how}; dropped"))
        return
    if how is not None:
        warnings.append((path, f"birthday {shown(value)} {how}"))
    out["dob"] = day


def _gender(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if value is None:
        out["gender"] = None  # Braze: null clears the stored gender, as asked
        return
    code = _GENDERS.get(value.strip().lower()) if isinstance(value, str) else None
    if code is None:
        # Never sent as is: Braze would store an unknown gender as null, erasing it.
        warnings.append((path, f"unrecognised gender {shown(value)} dropped"))
    else:
        out["gender"] = code


def _country(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if value is None:
        out["country"] = None
        return
    code = country_code(value) if isinstance(value, str) else None
    if code is None:
        # Braze sets a non-ISO country to NULL, erasing the stored one.
        warnings.append((path, f"country {shown(value)} is not an ISO-3166 country; dropped"))
        return
    if code != value:
        warnings.append((path, f"country {shown(value)} written as {code!r}"))
    out["country"] = code


def _language(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if value is None:
        out["language"] = None
        return
    code = None
    if isinstance(value, str):
        # "en-US" / "en_US": Braze wants the ISO-639-1 part only.
        code = language_code(re.split(r"[-_]", value, maxsplit=1)[0])
    if code is None:
        warnings.append((path, f"language {shown(value)} is not ISO-639-1; dropped"))
        return
    if code != value:
        warnings.append((path, f"language {shown(value)} written as {code!r}"))
    out["language"] = code


def _time_zone(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if value is None:
        out["time_zone"] = None
    elif isinstance(value, str) and _TIME_ZONE.match(value):
        out["time_zone"] = value
    else:
        warnings.append((path, f"time_zone {shown(value)} is not an IANA zone name; dropped"))


def _subscribe(target: str) -> Handler:
    def handle(value: Any, path: str, out: Out, warnings: Warnings) -> None:
        state = value.strip().lower() if isinstance(value, str) else None
        if state in _SUBSCRIPTION_STATES:
            out[target] = state
        else:
            allowed = ", ".join(sorted(_SUBSCRIPTION_STATES))
            warnings.append((path, f"{target} {shown(value)} is not one of {allowed}; dropped"))

    return handle


def _group_entries(state_key: str) -> Handler:
    """Make a handler for a list of subscription group states, in Braze's form.

    Braze's own trait names the state ``subscription_state``; Segment's web mode
    (trait ``braze_subscription_groups``) ``subscription_group_state``. Both
    traits add to the one ``subscription_groups`` attribute.
    """

    def handle(value: Any, path: str, out: Out, warnings: Warnings) -> None:
        if not isinstance(value, (list, tuple)):
            warnings.append((path, "subscription groups must be an array; dropped"))
            return
        groups = []
        for index, group in enumerate(value):
            if (
                isinstance(group, Mapping)
                and isinstance(group.get("subscription_group_id"), str)
                and _UUID.match(group["subscription_group_id"])
                and group.get(state_key) in _GROUP_STATES
            ):
                groups.append(
                    {
                        "subscription_group_id": group["subscription_group_id"],
                        "subscription_state": group[state_key],
                    }
                )
            else:
                warnings.append(
                    (
                        child_path(path, index),
                        f"needs a UUID subscription_group_id and a {state_key} of "
                        "subscribed or unsubscribed; dropped",
                    )
                )
        if groups:
            out.setdefault("subscription_groups", []).extend(groups)

    return handle


def _current_location(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if isinstance(value, Mapping):
        lat, lon = value.get("latitude"), value.get("longitude")
        if (
            isinstance(lat, (int, float))
            and isinstance(lon, (int, float))
            and not isinstance(lat, bool)
            and not isinstance(lon, bool)
            and -90 <= lat <= 90
            and -180 <= lon <= 180
        ):
            out["current_location"] = {"longitude": lon, "latitude": lat}
            return
    warnings.append(
        (
            path,
            "current_location needs numeric latitude (-90..90) and longitude (-180..180); dropped",
        )
    )


def _push_tokens(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if not isinstance(value, (list, tuple)):
        warnings.append((path, "push_tokens must be an array; dropped"))
        return
    tokens = []
    for index, token in enumerate(value):
        # Braze: each needs app_id and token; device_id is optional.
        if (
            isinstance(token, Mapping)
            and token.keys() <= {"app_id", "token", "device_id"}
            and all(isinstance(part, str) and is_text(part) for part in token.values())
        ):
            tokens.append(dict(token))
        else:
            warnings.append(
                (child_path(path, index), "a push token needs app_id and token strings; dropped")
            )
    if tokens:
        out["push_tokens"] = tokens


def _skip(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    """``id`` is the external_id and ``braze_id`` an identifier: not attributes."""


_HANDLERS: Final[dict[str, Handler]] = {
    "firstName": _first_name,
    "first_name": _first_name,
    "lastName": _last_name,
    "last_name": _last_name,
    "email": _string("email"),
    "phone": _phone,
    "avatar": _image_url,
    "photoUrl": _image_url,
    "avatarUrl": _image_url,
    "image_url": _image_url,
    "home_city": _home_city,
    "birthday": _dob,
    "dob": _dob,
    "gender": _gender,
    "country": _country,
    "language": _language,
    "time_zone": _time_zone,
    "email_subscribe": _subscribe("email_subscribe"),
    "push_subscribe": _subscribe("push_subscribe"),
    "subscription_groups": _group_entries("subscription_state"),
    # Segment's web mode trait (Braze Web Mode (Actions), updateUserProfile).
    "braze_subscription_groups": _group_entries("subscription_group_state"),
    "current_location": _current_location,
    "push_tokens": _push_tokens,
    "id": _skip,
    "braze_id": _skip,
}


def _address(value: Any, path: str, out: Out, max_array_length: int, warnings: Warnings) -> None:
    if not is_mapping(value):
        custom = clean_custom_attribute("address", value, path, max_array_length, warnings)
        if custom is not DROP:
            out["address"] = custom
        return
    rest = dict(value)
    if "city" in rest:
        _home_city(rest.pop("city"), f"{path}.city", out, warnings)
    if "country" in rest:
        _country(rest.pop("country"), f"{path}.country", out, warnings)
    if rest:
        custom = clean_custom_attribute("address", rest, path, max_array_length, warnings)
        if custom is not DROP:
            out["address"] = custom


def _split_name(value: Any, path: str, out: Out, warnings: Warnings) -> None:
    if not isinstance(value, str) or not value.strip():
        warnings.append((path, "name must be a non-empty string; dropped"))
        return
    first, _, last = value.strip().partition(" ")
    _first_name(first, path, out, warnings)
    if last.strip():
        _last_name(last.strip(), path, out, warnings)


def traits_to_attributes(
    traits: Mapping[str, Any],
    *,
    path: str,
    max_array_length: int,
    warnings: Warnings,
    origins: Mapping[Any, str] | None = None,
    array_operations: bool = False,
) -> dict[str, Any]:
    """Map Segment traits to Braze user attributes.

    Args:
        traits: the identify call's traits.
        path: JSON path of the traits object (``$.traits``).
        max_array_length: the account's array limit for custom attributes.
        warnings: receives a warning for every trait dropped or normalised.
        origins: the JSON path of the object a key came from, where that is not
            ``path`` (traits gathered from ``context``).
        array_operations: read RudderStack's ``add``/``update``/``remove`` objects
            as Braze's nested array operations (``nested_array_operations``).

    Returns:
        Attribute name -> value, standard attributes under Braze's names and
        every other trait as a custom attribute.
    """
    out: Out = {}
    base = path
    for key, value in traits.items():
        if origins is not None:
            base = origins.get(key, path)
        handler = _HANDLERS.get(key)
        if handler is not None:
            # Every standard trait name is a plain identifier, so for a str key
            # this is its child_path, without the call.
            item_path = f"{base}.{key}" if type(key) is str else child_path(base, key)
            # A date, an Enum member: read as analytics-python sends it.
            given = value if type(value) is str else json_form(value)
            if key not in OUTRANKED or not outranked(key, given, traits, item_path, warnings):
                handler(given, item_path, out, warnings)
            continue
        if is_plain(key, value) and key not in _SPECIAL_KEYS:
            # The common custom trait: kept as it is.
            out[key] = value
        elif key == "address":
            _address(value, f"{base}.address", out, max_array_length, warnings)
        elif key == "name":
            continue  # only a fall-back for first/last name, below
        elif key in _OBJECT_KEYS:
            warnings.append(
                (
                    child_path(base, key),
                    f"'{key}' is part of Braze's object; not an attribute",
                )
            )
        else:
            item_path = child_path(base, key)
            custom = _custom(
                key, value, item_path, max_array_length, warnings, array_operations=array_operations
            )
            if custom is not DROP:
                out[key] = custom
    if "name" in traits:
        name_path = child_path(path if origins is None else origins.get("name", path), "name")
        _name(traits, name_path, out, warnings)
    return out


# An update sent as a plain object would replace the stored array: say so.
_ARRAY_OPERATIONS_OFF: Final = (
    "RudderStack's nested array operations are not applied unless nested_array_operations is set"
)


def _custom(
    key: str,
    value: Any,
    path: str,
    max_array_length: int,
    warnings: Warnings,
    *,
    array_operations: bool,
) -> Any:
    """A custom trait as Braze takes it, RudderStack's array operations read when asked."""
    if is_mapping(value) and is_rudderstack_operation(value):
        if array_operations:
            value = braze_array_operations(value, path, warnings)
        else:
            warnings.append((path, _ARRAY_OPERATIONS_OFF))
    return clean_custom_attribute(key, value, path, max_array_length, warnings)


_NAME_PARTS: Final = ("firstName", "first_name", "lastName", "last_name")


def _name(traits: Mapping[str, Any], path: str, out: Out, warnings: Warnings) -> None:
    """``name`` split into first and last name, unless a trait gives them (then noted)."""
    named = [key for key in _NAME_PARTS if key in traits]
    if not named:
        _split_name(traits["name"], path, out, warnings)
    elif not isinstance(traits["name"], str) or traits["name"] != " ".join(
        str(out[part]) for part in ("first_name", "last_name") if out.get(part)
    ):
        warnings.append((path, f"not split: '{named[0]}' is given; dropped"))


def has_nested_object(attributes: Mapping[str, Any]) -> bool:
    """Whether ``attributes`` sets a nested object custom attribute.

    Operations (``inc``, ``add``, ``$add``, ...) and Braze's own object
    attribute (``current_location``) are not nested objects.
    """
    return any(
        isinstance(value, Mapping) and key != "current_location" and not is_operation(value)
        for key, value in attributes.items()
    )


def group_subscription(
    group_id: str, traits: Mapping[str, Any], warnings: Warnings
) -> dict[str, Any] | None:
    """A group call's subscription state, in Braze's ``subscription_groups`` form.

    RudderStack's "subscription group in group call": a ``groupId`` that is a
    subscription group UUID and ``traits.subscription_state`` (RudderStack:
    ``subscriptionState``) of ``subscribed`` or ``unsubscribed``. Returns None
    (with a warning for a state that cannot be used) otherwise.
    """
    key = "subscription_state" if "subscription_state" in traits else "subscriptionState"
    raw = traits.get(key)
    if raw is None:
        return None
    path = f"$.traits.{key}"
    if not _UUID.match(group_id):
        warnings.append((path, "groupId is not a subscription group UUID; state ignored"))
        return None
    state = raw.strip().lower() if isinstance(raw, str) else None
    if state not in _GROUP_STATES:
        warnings.append((path, f"{raw!r} is not subscribed or unsubscribed; state dropped"))
        return None
    entry = {"subscription_group_id": group_id, "subscription_state": state}
    return {"subscription_groups": [entry]}
