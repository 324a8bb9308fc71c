"""Braze's rules for custom attribute values and event/purchase properties.

Every function here either returns a value Braze accepts or drops it, adding a
``(json_path, text)`` warning: nothing is dropped silently, and one bad field never
costs the whole message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from segment_braze import _json
from segment_braze._translate.dates import parse_time
from segment_braze._translate.native import json_form
from segment_braze._translate.segment import Warnings, child_path, is_text, shown

__all__ = [
    "DROP",
    "MAX_KEY",
    "MAX_STRING",
    "clean_custom_attribute",
    "clean_properties",
    "is_operation",
    "is_plain",
    "within_size",
]

# Braze: attribute and property keys, and string values, at most 255 characters.
MAX_KEY: Final = 255
MAX_STRING: Final = 255
# Braze: nested custom attributes and nested event properties at most 100 KB;
# purchase properties at most 50 KB.
MAX_NESTED_BYTES: Final = 100 * 1024
# Nesting deeper than this is refused (a hostile or self-referencing value would
# otherwise recurse without end); no Braze value needs more.
MAX_DEPTH: Final = 64
# Values read inside one nested value: bounds the work a shared or
# self-referencing structure can cause (100 KB of JSON holds far fewer).
_MAX_NODES: Final = 200_000
# Integers within 64 bits need no further look; bigger ones must still be
# writable (Python writes at most 4,300 digits).
_INT64: Final = 1 << 63
_WRITABLE_BITS: Final = 14_000
# The most JSON one flat property can take: a 255-character key and string of
# at most 6 bytes a character, quotes, colon and comma. Fewer flat properties
# than limit // this cannot reach the limit, so they need no measuring.
_ITEM_BYTES: Final = (MAX_KEY + MAX_STRING) * 6 + 6


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()

# Braze's custom attribute operators: an object made only of these keys is an
# operation on the stored value, not a nested object.
_SCALAR_ARRAY_OPS = frozenset({"add", "remove"})
_OBJECT_ARRAY_OPS = frozenset({"$add", "$remove", "$update"})


# isinstance() with a tuple, not a `str | int` union: the union is built anew on
# every call, which costs more than the check itself.
_SCALARS: Final = (str, bool, int, float)
_ARRAYS: Final = (list, tuple)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, _SCALARS)


def is_plain(key: object, value: object) -> bool:
    """Whether ``key: value`` needs no cleaning: the common case, checked fast.

    A short ASCII key not starting with '$', and a JSON scalar that needs no
    further look. Anything else takes the slow path, which says exactly what is
    wrong. One function, inline checks: this runs for every property and trait.
    """
    if type(key) is not str or not 0 < len(key) <= MAX_KEY or not key.isascii() or key[0] == "$":
        return False
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_STRING and value.isascii()  # type: ignore[arg-type, attr-defined]
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is int:
        return -_INT64 <= value < _INT64  # type: ignore[operator]
    return kind is bool or value is None


def _has_nested(properties: Mapping[str, Any]) -> bool:
    for value in properties.values():
        kind = type(value)
        if kind is dict or kind is list:
            return True
        if kind not in _SCALAR_TYPES and isinstance(value, (Mapping, *_ARRAYS)):
            return True
    return False


_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})


def _bad_scalar(value: object) -> str | None:
    """Say why a scalar cannot go to Braze, or return None when it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{shown(value)} is not a JSON number"
    if isinstance(value, int) and value.bit_length() > _WRITABLE_BITS:
        return "integer too long to write (over 4,300 digits)"
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            return f"string of {len(value)} characters exceeds Braze's {MAX_STRING}"
        if not value.isascii() and not is_text(value):
            return "string is not valid Unicode (lone surrogate)"
    return None


def _json_size(value: object) -> int:
    return len(_json.dumps(value))


def _bad_key(key: object) -> str | None:
    if not isinstance(key, str):
        return f"key {shown(key)} is not a string"
    if not key:
        return "empty key"
    if not key.isascii() and not is_text(key):
        return "key is not valid Unicode (lone surrogate)"
    if len(key) > MAX_KEY:
        return f"key of {len(key)} characters exceeds Braze's {MAX_KEY}"
    if key[0] == "$":
        return f"key {shown(key)} starts with '$' (reserved for Braze operators)"
    return None


class _Unbounded(Exception):  # noqa: N818 (a signal inside this module, not an error)
    """A nested value deeper or larger than allowed: the whole top-level value goes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Budget:
    """The values one top-level value may still visit (see _MAX_NODES)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _MAX_NODES


def _clean_nested(
    value: Any, path: str, warnings: Warnings, depth: int = 1, budget: _Budget | None = None
) -> Any:
    """Clean a value inside a nested object or array of objects.

    Raises:
        _Unbounded: deeper than MAX_DEPTH or more than _MAX_NODES values; the
            caller drops the whole top-level value (never a truncated copy).
    """
    kind = type(value)
    # Hot path: JSON gives exact dicts and lists, told apart without ABC checks.
    is_object = kind is dict or (kind is not list and isinstance(value, Mapping))
    if is_object or kind is list or isinstance(value, _ARRAYS):
        if depth > MAX_DEPTH:
            raise _Unbounded(f"nested deeper than {MAX_DEPTH} levels")
        if budget is None:
            budget = _Budget()
        budget.left -= len(value)
        if budget.left < 0:
            raise _Unbounded(f"more than {_MAX_NODES:,} nested values")
        if is_object:
            return _clean_nested_object(value, path, warnings, depth, budget)
        items = []
        for index, item in enumerate(value):
            # child_path of an int index, without the call.
            cleaned = _clean_nested(item, f"{path}[{index}]", warnings, depth + 1, budget)
            if cleaned is not DROP:
                items.append(cleaned)
        return items
    if not _is_scalar(value):
        converted = json_form(value)
        if converted is not value:
            return _clean_nested(converted, path, warnings, depth, budget)
        warnings.append((path, f"{type(value).__name__} is not JSON; dropped"))
        return DROP
    problem = _bad_scalar(value)
    if problem is not None:
        warnings.append((path, f"{problem}; dropped"))
        return DROP
    return value


def _bounded(value: Any, path: str, warnings: Warnings) -> Any:
    """``_clean_nested`` of a top-level value, or DROP (with a warning) when unbounded."""
    try:
        return _clean_nested(value, path, warnings)
    except _Unbounded as err:
        warnings.append((path, f"{err.reason}; dropped"))
        return DROP


def _clean_nested_object(
    value: Mapping[Any, Any], path: str, warnings: Warnings, depth: int, budget: _Budget
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if is_plain(key, item) and " " not in key and "." not in key:
            out[key] = item
            continue
        item_path = child_path(path, key)
        # Braze: nested keys carry no spaces, dots or '$', except "$time", which
        # marks a date inside a nested object.
        if key == "$time":
            if isinstance(item, str) and is_text(item) and parse_time(item) is not None:
                out[key] = item
            else:
                warnings.append((item_path, "'$time' needs an ISO 8601 time; dropped"))
            continue
        problem = _bad_key(key)
        if problem is None and (" " in key or "." in key):
            problem = f"nested key {shown(key)} contains a space or '.'"
        if problem is not None:
            warnings.append((item_path, f"{problem}; dropped"))
            continue
        cleaned = _clean_nested(item, item_path, warnings, depth + 1, budget)
        if cleaned is not DROP:
            out[key] = cleaned
    return out


def is_operation(value: Mapping[str, Any]) -> bool:
    """Whether an object value is a Braze operation (``inc``, ``add``, ``$add``, ...)."""
    keys = value.keys()
    if len(value) == 1 and "inc" in value:
        return True
    return bool(keys) and (keys <= _SCALAR_ARRAY_OPS or keys <= _OBJECT_ARRAY_OPS)


def _clean_operation(value: Mapping[str, Any], path: str, warnings: Warnings) -> Any:
    if "inc" in value:
        amount = value["inc"]
        # Braze: "inc" takes integers only.
        if (
            isinstance(amount, int)
            and not isinstance(amount, bool)
            and amount.bit_length() <= _WRITABLE_BITS
        ):
            return dict(value)
        warnings.append((child_path(path, "inc"), "increment must be an integer; dropped"))
        return DROP
    out: dict[str, Any] = {}
    for key, items in value.items():
        item_path = child_path(path, key)
        if not isinstance(items, _ARRAYS):
            warnings.append((item_path, f"'{key}' needs an array; dropped"))
            continue
        if key in _SCALAR_ARRAY_OPS:
            # Braze: add/remove take scalars.
            problem = next((p for p in map(_scalar_problem, items) if p), None)
            if problem is not None:
                warnings.append((item_path, f"{problem}; '{key}' dropped"))
                continue
            out[key] = list(items)
            continue
        cleaned = [
            entry
            for index, item in enumerate(items)
            if (entry := _object_operation(key, item, child_path(item_path, index), warnings))
            is not DROP
        ]
        if cleaned:
            out[key] = cleaned
    return out or DROP


def _scalar_problem(item: object) -> str | None:
    if not _is_scalar(item):
        return "an array of scalars is needed"
    return _bad_scalar(item)


# Braze's nested-array operators: $add takes objects; $remove and $update name the
# object by $identifier_key/$identifier_value, and $update carries $new_object.
_OPERATOR_FIELDS: Final = {
    "$remove": frozenset({"$identifier_key", "$identifier_value"}),
    "$update": frozenset({"$identifier_key", "$identifier_value", "$new_object"}),
}


def _object_operation(operator: str, item: Any, path: str, warnings: Warnings) -> Any:
    if not isinstance(item, Mapping):
        warnings.append((path, f"'{operator}' entries must be objects; dropped"))
        return DROP
    if operator == "$add":
        return _bounded(item, path, warnings)
    if item.keys() != _OPERATOR_FIELDS[operator]:
        fields = ", ".join(sorted(_OPERATOR_FIELDS[operator]))
        warnings.append((path, f"'{operator}' entries need exactly {fields}; dropped"))
        return DROP
    out = {}
    for field in ("$identifier_key", "$identifier_value"):
        cleaned = _bounded(item[field], child_path(path, field), warnings)
        if cleaned is DROP or isinstance(cleaned, (Mapping, list)):
            warnings.append((path, f"'{field}' must be a valid scalar; entry dropped"))
            return DROP
        out[field] = cleaned
    if operator == "$update":
        new_object = item["$new_object"]
        if not isinstance(new_object, Mapping):
            warnings.append((path, "'$new_object' must be an object; entry dropped"))
            return DROP
        cleaned = _bounded(new_object, child_path(path, "$new_object"), warnings)
        if cleaned is DROP:
            return DROP
        out["$new_object"] = cleaned
    return out


def clean_custom_attribute(
    key: object, value: Any, path: str, max_array_length: int, warnings: Warnings
) -> Any:
    """Return ``value`` as Braze accepts it for custom attribute ``key``, or DROP.

    Args:
        key: the attribute name.
        value: the trait value (JSON).
        path: the JSON path of the trait, for warnings.
        max_array_length: the account's array limit (Braze: 500, older accounts 25).
        warnings: receives a warning for anything dropped.
    """
    problem = _bad_key(key)
    if problem is not None:
        warnings.append((path, f"{problem}; custom attribute dropped"))
        return DROP
    if _is_scalar(value):
        problem = _bad_scalar(value)
        if problem is None:
            return value
        warnings.append((path, f"{problem}; custom attribute dropped"))
        return DROP
    kind = type(value)
    if kind is list or (kind is not dict and isinstance(value, _ARRAYS)):
        return _custom_array(key, value, path, max_array_length, warnings)
    if kind is dict or isinstance(value, Mapping):
        if is_operation(value):
            return _clean_operation(value, path, warnings)
        return _sized(_bounded(value, path, warnings), path, warnings)
    converted = json_form(value)  # a Decimal, a date: the JSON it stands for
    if converted is not value:
        return clean_custom_attribute(key, converted, path, max_array_length, warnings)
    warnings.append((path, f"{type(value).__name__} is not JSON; custom attribute dropped"))
    return DROP


def _custom_array(
    key: object, value: Any, path: str, max_array_length: int, warnings: Warnings
) -> Any:
    """``clean_custom_attribute`` of an array: of scalars, or of objects."""
    if len(value) > max_array_length:
        reason = f"array of {len(value)} items exceeds the limit of {max_array_length}"
        warnings.append((path, f"{reason}; custom attribute dropped"))
        return DROP
    if all(item is None or isinstance(item, _SCALARS) for item in value):
        for index, item in enumerate(value):
            problem = _bad_scalar(item)
            if problem is not None:
                warnings.append((child_path(path, index), f"{problem}; custom attribute dropped"))
                return DROP
        return list(value)
    if all(type(item) is dict or isinstance(item, Mapping) for item in value):
        return _sized(_bounded(value, path, warnings), path, warnings)
    converted = [json_form(item) for item in value]  # dates, Decimals, ...
    if any(new is not old for new, old in zip(converted, value, strict=True)):
        return clean_custom_attribute(key, converted, path, max_array_length, warnings)
    reason = "array mixes objects, arrays or non-JSON values"
    warnings.append((path, f"{reason}; custom attribute dropped"))
    return DROP


def _sized(value: Any, path: str, warnings: Warnings, limit: int = MAX_NESTED_BYTES) -> Any:
    if value is DROP:
        return DROP
    size = len(_json.dumps(value))
    if size > limit:
        warnings.append((path, f"nested value of {size} bytes exceeds Braze's {limit}; dropped"))
        return DROP
    return value


def clean_properties(
    properties: Mapping[str, Any],
    path: str,
    reserved: frozenset[str],
    warnings: Warnings,
    *,
    max_bytes: int = MAX_NESTED_BYTES,
) -> dict[str, Any]:
    """Return event or purchase properties as Braze accepts them.

    Removes Braze's reserved keys, keys that are empty, over 255 characters or
    start with ``$``, string values over 255 characters and non-JSON values, each
    with a warning; nested objects and arrays are kept.
    """
    out: dict[str, Any] = {}
    nested = False
    for key, value in properties.items():
        if is_plain(key, value) and key not in reserved:
            out[key] = value
            continue
        item_path = child_path(path, key)
        if key in reserved:
            warnings.append((item_path, f"'{key}' is reserved by Braze; dropped"))
            continue
        problem = _bad_key(key)
        if problem is not None:
            warnings.append((item_path, f"{problem}; dropped"))
            continue
        if _is_scalar(value):
            problem = _bad_scalar(value)
            if problem is None:
                out[key] = value
            else:
                warnings.append((item_path, f"{problem}; dropped"))
            continue
        # Nested values, and Python values that stand for JSON (a Decimal, a date).
        cleaned = _bounded(value, item_path, warnings)
        if cleaned is not DROP:
            out[key] = cleaned
            nested = True
    if nested or len(out) > max_bytes // _ITEM_BYTES:
        return within_size(out, path, warnings, max_bytes=max_bytes)
    return out


def within_size(
    properties: dict[str, Any], path: str, warnings: Warnings, *, max_bytes: int
) -> dict[str, Any]:
    """Return ``properties``, or nothing (with a warning) when over Braze's size limit."""
    # A few flat properties cannot reach the limit (_ITEM_BYTES); the rest are
    # measured.
    if properties and (len(properties) > max_bytes // _ITEM_BYTES or _has_nested(properties)):
        size = _json_size(properties)
        if size > max_bytes:
            warnings.append(
                (path, f"properties of {size} bytes exceed Braze's {max_bytes}; dropped")
            )
            return {}
    return properties
