"""How Braze processes a request it accepted: who exists, what is kept, what is dropped.

The second half of :mod:`segment_braze.testing`'s judgement: after
:mod:`segment_braze.testing.rules` has judged each object, Braze applies the
valid ones in order, silently dropping update-only objects for users that do not
exist. :class:`~segment_braze.testing.directory.UserDirectory` remembers the
users; :func:`process_track` and :func:`process_entries` turn a parsed body into
Braze's answer.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from segment_braze.testing.directory import UserDirectory
from segment_braze.testing.ecommerce import recommended_problem
from segment_braze.testing.rules import (
    ARRAYS,
    ENTRY_ARRAYS,
    MAX_ENTRIES,
    MAX_TRACK_OBJECTS,
    alias_key,
    attributes_problem,
    delete_kind,
    entry_problem,
    event_problem,
    purchase_problem,
    user_key,
)

__all__ = ["NO_VALID_DATA", "Outcome", "UserDirectory", "process_entries", "process_track"]


@attrs.frozen(kw_only=True)
class Outcome:
    """What Braze answers to one request, and what it keeps.

    Attributes:
        status: the HTTP status.
        payload: the JSON body of the answer.
        accepted: ``(ledger, object)`` pairs Braze processed, in order; the
            ledger is an array name or an endpoint path.
        ignored: ``(array, index, object, reason)`` for objects Braze answered
            as processed but silently dropped (update-only, unknown user).
    """

    status: int
    payload: dict[str, Any]
    accepted: tuple[tuple[str, Any], ...] = ()
    ignored: tuple[tuple[str, int, Any, str], ...] = ()


# Braze's own words when a /users/track request has nothing it can process.
NO_VALID_DATA: Final = (
    "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
)
_MAX_INPUT: Final = "Max Input Length Exceeded"
_JUDGES: Final = {
    "attributes": attributes_problem,
    "events": event_problem,
    "purchases": purchase_problem,
}
_Valid = tuple[str, int, dict[str, Any]]


def _arrays(body: dict[str, Any], *, legacy_limits: bool) -> dict[str, list[Any]] | Outcome:
    """Pick the arrays out of a /users/track body, or refuse the whole request."""
    arrays: dict[str, list[Any]] = {}
    for name in ARRAYS:
        if name in body:
            if not isinstance(body[name], list):
                return Outcome(status=400, payload={"message": f"{name} must be an array"})
            arrays[name] = body[name]
    sizes = [len(objects) for objects in arrays.values()]
    # Braze: 75 objects per request in total (current accounts) or 75 in each
    # array (legacy accounts); beyond that the whole request is refused.
    if (max(sizes, default=0) if legacy_limits else sum(sizes)) > MAX_TRACK_OBJECTS:
        return Outcome(status=400, payload={"message": _MAX_INPUT})
    if not sum(sizes):
        return Outcome(status=400, payload={"message": NO_VALID_DATA})
    return arrays


def _judge(
    arrays: dict[str, list[Any]], failing: frozenset[tuple[str, int]]
) -> tuple[list[_Valid], list[dict[str, Any]], set[tuple[str, int]]]:
    """Split the objects into valid ones and Braze's ``errors`` entries.

    Also returns the positions of recommended events that fail Braze's
    eCommerce schema: valid for the request (it succeeds), but never stored.
    """
    valid: list[_Valid] = []
    errors: list[dict[str, Any]] = []
    unschematic: set[tuple[str, int]] = set()
    for name, objects in arrays.items():
        for index, obj in enumerate(objects):
            problem = _JUDGES[name](obj)
            if problem is None and (name, index) in failing:
                problem = "Injected fault: Braze could not process this object"
            if problem is None:
                valid.append((name, index, obj))
                schema = recommended_problem(obj) if name == "events" else None
                if schema is None:
                    continue
                unschematic.add((name, index))
                problem = schema
            errors.append({"type": problem, "input_array": name, "index": index})
    return valid, errors, unschematic


def _drop_reason(array: str, obj: dict[str, Any], directory: UserDirectory) -> str | None:
    """Say why Braze would silently drop a valid object, if it would."""
    key = user_key(obj)
    if directory.exists(key):
        return None
    if key[0] == "user_alias":
        if array != "attributes":
            return "Braze: events and purchases by user_alias are update-only"
        if obj.get("_update_existing_only", True):
            return (
                "Braze: attributes by user_alias default to _update_existing_only "
                "true; send false to create the alias-only user"
            )
        return None
    if obj.get("_update_existing_only", False):
        return "Braze: _update_existing_only is true and the user does not exist"
    return None


def process_track(
    body: dict[str, Any],
    *,
    directory: UserDirectory,
    legacy_limits: bool,
    failing: frozenset[tuple[str, int]] = frozenset(),
) -> Outcome:
    """Answer a /users/track body as Braze would, updating the directory.

    Args:
        body: the parsed request body.
        directory: the known users; created users are added to it.
        legacy_limits: judge the 75-object limit per array instead of in total.
        failing: ``(array, index)`` positions to fail as if Braze had rejected
            them (an injected partial error).

    Returns:
        The answer with the processed and the silently dropped objects.
    """
    arrays = _arrays(body, legacy_limits=legacy_limits)
    if isinstance(arrays, Outcome):
        return arrays
    valid, errors, unschematic = _judge(arrays, failing)
    # Braze: when no object survives, the request fails with 400 and the errors.
    if not valid:
        return Outcome(status=400, payload={"message": NO_VALID_DATA, "errors": errors})
    accepted: list[tuple[str, Any]] = []
    ignored: list[tuple[str, int, Any, str]] = []
    # `valid` lists attributes before events and purchases: Braze processes
    # them in that order, so an alias created above can take events below.
    for name, index, obj in valid:
        if (name, index) in unschematic:
            # Braze: an invalid recommended event is dropped entirely (named in
            # errors, not stored, not kept as a plain custom event instead).
            continue
        reason = _drop_reason(name, obj, directory)
        if reason is not None:
            ignored.append((name, index, obj, reason))
            continue
        directory.update(user_key(obj), obj if name == "attributes" else None)
        accepted.append((name, obj))
    # Braze counts dropped update-only objects as processed: it drops them later.
    payload: dict[str, Any] = {"message": "success"}
    for name in arrays:
        payload[f"{name}_processed"] = sum(1 for v in valid if v[0] == name)
    if errors:
        payload["errors"] = errors
    return Outcome(status=201, payload=payload, accepted=tuple(accepted), ignored=tuple(ignored))


_DELETE_KINDS: Final = {
    "external_ids": "external_id",
    "braze_ids": "braze_id",
    "email_addresses": "email",
    "phone_numbers": "phone",
}
_SUCCESS_STATUS: Final = {
    "/users/identify": 201,
    "/users/alias/new": 201,
    "/users/merge": 202,  # Braze: merges are asynchronous
    "/users/delete": 200,
}


def process_entries(path: str, body: dict[str, Any], *, directory: UserDirectory) -> Outcome:
    """Answer a /users/identify, merge, delete or alias/new body as Braze would.

    Args:
        path: the endpoint.
        body: the parsed request body.
        directory: the known users, updated by the entries.

    Returns:
        The answer with the accepted entries; any bad entry refuses them all.
    """
    pairs = _read_entries(path, body)
    if isinstance(pairs, Outcome):
        return pairs
    for array, entry in pairs:
        _apply(path, array, entry, directory)
    payload: dict[str, Any] = {"message": "success"}
    if path == "/users/delete":
        payload = {"deleted": len(pairs), "message": "success"}
    return Outcome(
        status=_SUCCESS_STATUS[path],
        payload=payload,
        accepted=tuple((path, entry) for _, entry in pairs),
    )


def _read_entries(path: str, body: dict[str, Any]) -> list[tuple[str, Any]] | Outcome:
    """The body's ``(array, entry)`` pairs, or Braze's 400 when any is wrong."""
    arrays = _entry_arrays(path, body)
    if not arrays:
        kinds = ", ".join(ENTRY_ARRAYS[path])
        one = "one or both" if path == "/users/identify" else "exactly one"
        return Outcome(status=400, payload={"message": f"Send {one} of {kinds}"})
    pairs: list[tuple[str, Any]] = []
    for array in arrays:
        entries = body.get(array)
        if not isinstance(entries, list) or not entries:
            return Outcome(status=400, payload={"message": f"{array} must be a non-empty array"})
        pairs.extend((array, entry) for entry in entries)
    if len(pairs) > MAX_ENTRIES:
        message = f"{_MAX_INPUT}: at most {MAX_ENTRIES} entries in {' and '.join(arrays)}"
        return Outcome(status=400, payload={"message": message})
    for array in arrays:
        for index, entry in enumerate(body[array]):
            problem = entry_problem(path, array, entry)
            if problem is not None:
                return Outcome(status=400, payload={"message": f"{array}[{index}]: {problem}"})
    return pairs


def _apply(path: str, array: str, entry: Any, directory: UserDirectory) -> None:
    if array == "emails_to_identify":
        directory.identify_email(entry["external_id"], entry["email"], entry["prioritization"])
    elif path == "/users/identify":
        directory.identify(entry["external_id"], alias_key(entry["user_alias"]))
    elif path == "/users/merge":
        directory.merge(
            user_key(entry["identifier_to_merge"]),
            user_key(entry["identifier_to_keep"]),
        )
    elif path == "/users/alias/new":
        directory.add_alias(alias_key(entry), entry.get("external_id"))
    elif array == "user_aliases":
        directory.delete(alias_key(entry))
    else:
        directory.delete((_DELETE_KINDS[array], entry))


def _entry_arrays(path: str, body: dict[str, Any]) -> list[str]:
    """The body's entry arrays: one for most endpoints, one or both for identify."""
    if path == "/users/delete":
        kind = delete_kind(body)
        return [] if kind is None else [kind]
    if path == "/users/identify":
        return [array for array in ENTRY_ARRAYS[path] if array in body]
    return [ENTRY_ARRAYS[path][0]]
