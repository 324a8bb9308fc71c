"""Reading Braze's answer back onto the messages of a request.

Braze names the objects and entries it refused (``errors`` in a 2xx or 400 answer
to ``/users/track``, ``external_ids[3]: ...`` in a user-management 400); these
functions trace each name back to the message that produced it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from segment_braze._deliver.batching import Pending, track_owners
from segment_braze._deliver.transport import Answer

if TYPE_CHECKING:
    from segment_braze._cache.cache import AttributeCache

__all__ = [
    "has_errors",
    "named_entry",
    "named_failures",
    "release_attributes",
    "settle_attributes",
]

# A user-management 400 that names its entry: "external_ids[3]: ...".
_NAMED_ENTRY: Final = re.compile(r"(?P<key>\w+)\[(?P<index>\d+)\]")


def _errors(answer: Answer) -> list[Any]:
    errors = answer.body.get("errors") if isinstance(answer.body, Mapping) else None
    return errors if isinstance(errors, list) else []


def has_errors(answer: Answer) -> bool:
    """Whether Braze's answer names objects or entries in ``errors``."""
    return bool(_errors(answer))


def named_failures(group: Sequence[Pending], answer: Answer) -> dict[Pending, str]:
    """The messages owning the objects Braze's ``errors`` names, each with its reason.

    Args:
        group: the messages of the ``/users/track`` body, in body order.
        answer: Braze's answer to that body.
    """
    errors = _errors(answer)
    if not errors:
        return {}
    owners = track_owners(group)
    named: dict[Pending, str] = {}
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        array, index = error.get("input_array"), error.get("index")
        if not isinstance(array, str) or array not in owners or not isinstance(index, int):
            continue
        if 0 <= index < len(owners[array]):
            owner = owners[array][index]
            reason = f"Braze rejected {array}[{index}]: {error.get('type', 'invalid')}"
            named.setdefault(owner, reason)
    return named


def release_attributes(cache: AttributeCache | None, message: Pending) -> None:
    """Tell the cache a failed message's attributes objects never reached Braze's profile."""
    if cache is not None and message.attribute_objects:
        cache.release(list(message.attribute_objects))
        message.attribute_objects = ()


def settle_attributes(cache: AttributeCache, group: Sequence[Pending], answer: Answer) -> None:
    """Tell the cache which attributes objects of an accepted request Braze kept.

    The ones Braze refused are released (nothing remembered). Each message's
    objects are then cleared, so that a message failed afterwards (Braze named
    one of its events) does not settle them twice.
    """
    rejected = set()
    for error in _errors(answer):
        if isinstance(error, Mapping) and error.get("input_array") == "attributes":
            rejected.add(error.get("index"))
    acknowledged: list[Any] = []
    refused: list[Any] = []
    index = 0
    for message in group:
        for obj in message.attribute_objects:
            (refused if index in rejected else acknowledged).append(obj)
            index += 1
        message.attribute_objects = ()
    if refused:
        cache.release(refused)
    if acknowledged:
        cache.acknowledge(acknowledged)


def named_entry(answer: Answer, key: str) -> int | None:
    """The index of the entry a user-management 400 names under ``key``, if any."""
    if answer.status != 400:
        return None
    named = _NAMED_ENTRY.match(answer.reason.removeprefix(f"HTTP {answer.status}: "))
    if named is None or named["key"] != key:
        return None
    return int(named["index"])
