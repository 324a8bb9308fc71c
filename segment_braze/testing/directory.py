"""Who exists in the stand-in's Braze, and what each profile holds.

Braze drops (silently) update-only objects for users it does not know, merges
profiles on /users/identify and /users/merge, and applies each attribute the way
its operators say. :class:`UserDirectory` models that, for
:mod:`segment_braze.testing.processing`.
"""

from __future__ import annotations

import itertools
from typing import Any

from segment_braze.testing.rules import NOT_ATTRIBUTES, UserKey

__all__ = ["UserDirectory"]


def _fill_missing(target: dict[str, Any], source: dict[str, Any]) -> None:
    # Braze: merging copies a field only when the kept profile lacks it.
    for key, value in source.items():
        target.setdefault(key, value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _deep_merged(current: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    # Braze: with _merge_objects, nested objects merge at every level; a key the
    # update leaves out keeps its stored value.
    merged = dict(current)
    for key, item in value.items():
        stored = merged.get(key)
        if isinstance(stored, dict) and isinstance(item, dict):
            merged[key] = _deep_merged(stored, item)
        else:
            merged[key] = item
    return merged


def _applied(current: Any, value: Any, *, merge_objects: bool = False) -> Any:
    """The attribute after Braze applies ``value`` to ``current``."""
    if isinstance(value, dict) and set(value) == {"inc"} and _is_number(value["inc"]):
        # Braze: {"inc": n} adds to a number (an unset attribute counts as 0).
        return (current if _is_number(current) else 0) + value["inc"]
    operations = ("add", "remove")
    if (
        isinstance(value, dict)
        and value
        and set(value) <= set(operations)
        and all(isinstance(value.get(op, []), list) for op in operations)
    ):
        # Braze: add/remove edit an array of scalars, keeping values unique.
        removed = value.get("remove", [])
        items = [v for v in current if v not in removed] if isinstance(current, list) else []
        return items + [v for v in value.get("add", []) if v not in items]
    if merge_objects and isinstance(current, dict) and isinstance(value, dict):
        return _deep_merged(current, value)
    return value


def _subscriptions(current: Any, update: list[Any]) -> list[Any]:
    # Braze: each entry sets one group's state; the user's other groups keep theirs.
    states = {entry["subscription_group_id"]: entry for entry in current or ()}
    states.update((entry["subscription_group_id"], entry) for entry in update)
    return list(states.values())


class UserDirectory:
    """The users the stand-in knows, with their merged attributes.

    Braze drops (silently) updates for users that do not exist when the update
    is update-only, so the stand-in must remember who was created. Aliases that
    were identified or added to a user point at that user.

    Not thread-safe: the stand-in calls it under its lock.
    """

    def __init__(self) -> None:
        self.profiles: dict[UserKey, dict[str, Any]] = {}
        self._links: dict[UserKey, UserKey] = {}
        # When each profile was last updated, as a running count (no clock).
        self._updated: dict[UserKey, int] = {}
        self._updates = itertools.count()

    def resolve(self, key: UserKey) -> UserKey:
        """Follow alias links and email/phone lookups to the profile's key.

        Args:
            key: any user key.

        Returns:
            The key the profile is stored under (``key`` itself if unknown).
        """
        key = self._links.get(key, key)
        if key[0] in ("email", "phone") and key not in self.profiles:
            for stored, profile in self.profiles.items():
                if profile.get(key[0]) == key[1]:
                    return stored
        return key

    def exists(self, key: UserKey) -> bool:
        """Tell whether the user exists.

        Args:
            key: any user key.

        Returns:
            True when a profile answers to it.
        """
        # Braze assigns braze_ids itself: a braze_id we never saw may well be
        # real, so the stand-in cannot judge it and takes it as existing.
        return key[0] == "braze_id" or self.resolve(key) in self.profiles

    def update(self, key: UserKey, attributes: dict[str, Any] | None = None) -> None:
        """Create the user if needed and apply an attributes object to it.

        Args:
            key: the user.
            attributes: an accepted attributes object, or None to only create.
        """
        resolved = self.resolve(key)
        if resolved not in self.profiles and key[0] in ("email", "phone"):
            # A profile Braze creates for an unknown email or phone holds it.
            self.profiles[resolved] = {key[0]: key[1]}
        profile = self.profiles.setdefault(resolved, {})
        self._updated[resolved] = next(self._updates)
        merge_objects = (attributes or {}).get("_merge_objects") is True
        for name, value in (attributes or {}).items():
            if name in NOT_ATTRIBUTES:
                continue
            if value is None:  # Braze: null unsets the attribute
                profile.pop(name, None)
            elif name == "subscription_groups":
                profile[name] = _subscriptions(profile.get(name), value)
            else:
                profile[name] = _applied(profile.get(name), value, merge_objects=merge_objects)

    def identify(self, external_id: str, alias: UserKey) -> None:
        """Identify an alias: /users/identify.

        Args:
            external_id: the user to attach the alias to.
            alias: the alias key.
        """
        user: UserKey = ("external_id", external_id)
        target = self.profiles.setdefault(self.resolve(user), {})
        # Braze (since 2023-08-07): the alias-only profile's data is merged into
        # the identified user and the alias profile removed.
        _fill_missing(target, self.profiles.pop(alias, {}))
        self._links[alias] = self.resolve(user)

    def identify_email(self, external_id: str, email: str, prioritization: list[str]) -> None:
        """Merge a profile holding ``email`` into ``external_id``: /users/identify.

        Args:
            external_id: the user to merge into.
            email: the email address the merged profile holds.
            prioritization: Braze's order for choosing among several profiles.
        """
        user = self.resolve(("external_id", external_id))
        holders = [
            key
            for key, profile in self.profiles.items()
            if key == ("email", email) or profile.get("email") == email
        ]
        if user in holders:
            # Braze: when the email matches the identified user as well (or
            # only it), nothing is merged, and the answer is still success.
            return
        for rule in prioritization:
            if rule in ("identified", "unidentified"):
                wanted = rule == "identified"
                holders = [key for key in holders if (key[0] == "external_id") is wanted]
            elif rule.endswith("recently_updated"):
                holders.sort(
                    key=lambda key: self._updated.get(key, -1),
                    reverse=rule == "most_recently_updated",
                )
        if not holders:
            return
        chosen = holders[0]
        _fill_missing(self.profiles.setdefault(user, {}), self.profiles.pop(chosen))
        self._updated[user] = next(self._updates)
        self._links[("email", email)] = user
        if chosen[0] != "email":
            self._links[chosen] = user

    def add_alias(self, alias: UserKey, external_id: str | None) -> None:
        """Create an alias: /users/alias/new.

        Args:
            alias: the alias key.
            external_id: the user to add it to, or None for an alias-only user.
        """
        if external_id is None:
            self.profiles.setdefault(alias, {})
            return
        user = self.resolve(("external_id", external_id))
        self.profiles.setdefault(user, {})
        self._links[alias] = user

    def merge(self, merged: UserKey, kept: UserKey) -> None:
        """Merge one user into another: /users/merge.

        Args:
            merged: the user that disappears.
            kept: the user that stays.
        """
        source_key, target_key = self.resolve(merged), self.resolve(kept)
        if source_key == target_key or source_key not in self.profiles:
            return
        _fill_missing(self.profiles.setdefault(target_key, {}), self.profiles[source_key])
        self.delete(merged)

    def delete(self, key: UserKey) -> None:
        """Delete a user and every link to it: /users/delete.

        Args:
            key: the user.
        """
        gone = self.resolve(key)
        self.profiles.pop(gone, None)
        self._links = {
            link: user for link, user in self._links.items() if user != gone and link != key
        }
