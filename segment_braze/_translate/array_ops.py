"""RudderStack's nested array operations, written in Braze's form.

With its Braze destination's ``enableNestedArrayOperations``, RudderStack reads a
trait such as::

    {"pets": {"update": [{"identifier": "id", "id": 2, "name": "Rex"}],
              "remove": [{"identifier": "id", "id": 3}],
              "add": [{"id": 4, "name": "Tom"}]}}

as Braze's operations on the array of objects ``pets``: ``$update`` (the object
whose ``id`` is 2 gets ``{"name": "Rex"}``), ``$remove`` and ``$add``.
``Settings(nested_array_operations=True)`` does the same; the result is then
checked as any Braze operation is (``values.clean_custom_attribute``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._translate.text import child_path

__all__ = ["braze_array_operations", "has_object_update", "is_rudderstack_operation"]

_OPERATIONS: Final = frozenset({"add", "update", "remove"})


def is_rudderstack_operation(value: Mapping[Any, Any]) -> bool:
    """Whether an object is RudderStack's add/update/remove on an array of objects.

    Braze's own ``{"add": [...], "remove": [...]}`` of scalars (on an array of
    scalars) is not: only ``update``, or ``add``/``remove`` holding objects, is.
    """
    if not value or not value.keys() <= _OPERATIONS:
        return False
    return "update" in value or any(
        isinstance(items, list) and any(isinstance(item, Mapping) for item in items)
        for items in value.values()
    )


def has_object_update(attributes: Mapping[str, Any]) -> bool:
    """Whether ``attributes`` updates objects of an array of objects (Braze's ``$update``)."""
    return any(isinstance(value, Mapping) and "$update" in value for value in attributes.values())


def braze_array_operations(
    value: Mapping[Any, Any], path: str, warnings: list[tuple[str, str]]
) -> dict[str, Any]:
    """RudderStack's operation object in Braze's ``$add``/``$update``/``$remove`` form.

    An ``update`` or ``remove`` entry that does not name one of its own keys in
    ``identifier`` is dropped with a warning at its path.
    """
    out: dict[str, Any] = {}
    for operation, items in value.items():
        if operation == "add" or not isinstance(items, list):
            out[f"${operation}"] = items  # checked as Braze's operation
            continue
        entries = []
        for index, item in enumerate(items):
            where = f"{child_path(path, operation)}[{index}]"
            if not isinstance(item, Mapping):
                warnings.append((where, f"'{operation}' entries must be objects; dropped"))
                continue
            entry = _identified(item, operation, where, warnings)
            if entry is not None:
                entries.append(entry)
        out[f"${operation}"] = entries
    return out


def _identified(
    item: Mapping[Any, Any], operation: str, path: str, warnings: list[tuple[str, str]]
) -> dict[str, Any] | None:
    """One ``update``/``remove`` entry as Braze's ``$identifier_key``/``$identifier_value``."""
    key = item.get("identifier")
    if not isinstance(key, str) or key == "identifier" or key not in item:
        warnings.append(
            (path, "needs 'identifier' naming one of the entry's own keys; entry dropped")
        )
        return None
    entry: dict[str, Any] = {"$identifier_key": key, "$identifier_value": item[key]}
    if operation == "update":
        entry["$new_object"] = {
            name: field for name, field in item.items() if name not in (key, "identifier")
        }
    return entry
