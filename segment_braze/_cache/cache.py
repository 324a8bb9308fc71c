"""AttributeCache: send Braze only the attributes that changed.

Braze bills every attribute key it receives, changed or not. The cache remembers,
per user, a digest of each attribute value Braze acknowledged, and removes from
later attributes objects the keys whose value is unchanged. It is updated only
after Braze acknowledges an object, so a failed send never suppresses a retry.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from json.encoder import encode_basestring
from typing import Any, Final

import attrs

from segment_braze._cache.store import AttributeStore, Remembered
from segment_braze._cache.stores import MemoryStore, RedisStore, SQLiteStore
from segment_braze._translate.datapoints import FREE_ATTRIBUTE_KEYS, value_data_points
from segment_braze._translate.translation import Translation

__all__ = ["AttributeCache", "AttributeStore", "FilterResult", "Remembered", "user_key"]

DEFAULT_TTL: Final = 30 * 24 * 3600.0
_IDENTIFIER_KEYS: Final = ("external_id", "braze_id", "user_alias")
# Flags say how Braze applies an object, not what it stores.
_FLAGS: Final = frozenset({"_update_existing_only", "_merge_objects"})
# Never deduplicated: operations change the stored value relative to itself,
# push tokens and subscription groups are free and stateful in Braze.
_NEVER_DEDUPED: Final = frozenset({"push_tokens", "subscription_groups", "_update_existing_only"})
_OPERATION_KEYS: Final = frozenset({"inc", "add", "remove", "$add", "$remove", "$update"})

_FORGOTTEN: Final[Remembered] = ("", 0.0)
_SCALARS: Final = frozenset({str, int, float, bool})
# Saves of answers remembered, with their users, for filters that read the store
# meanwhile (see filter_objects); a filter that began before the oldest kept
# forgets every value it hands out.
_RECENT_SAVES: Final = 1024


def _canonical(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, compact, not ASCII-escaped).

    Strings, integers, booleans and finite floats, most attribute values, are
    written as ``json.dumps`` writes them at the top level (its own string
    encoder, ``repr`` of the number), without building an encoder: the digests
    stored by earlier versions stay valid.
    """
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(value: Any) -> str:
    # Canonical JSON, so {"a":1,"b":2} and {"b":2,"a":1} are one value; 12 bytes
    # of BLAKE2 keep stored values compact.
    return hashlib.blake2b(_canonical(value).encode(), digest_size=12).hexdigest()


def _dedupable(key: str, value: Any) -> bool:
    if key in _NEVER_DEDUPED or key.startswith("_") or value is None:
        return False
    if type(value) in _SCALARS:
        return True
    return not (isinstance(value, Mapping) and (value.keys() & _OPERATION_KEYS))


def user_key(obj: Mapping[str, Any]) -> str | None:
    """The cache key of the user an attributes object is about."""
    for kind in _IDENTIFIER_KEYS:
        if kind in obj:
            ident = obj[kind]
            if kind == "user_alias" and isinstance(ident, Mapping):
                return f"user_alias:{ident.get('alias_label')}:{ident.get('alias_name')}"
            return f"{kind}:{ident}"
    return None


@attrs.frozen(kw_only=True)
class FilterResult:
    """Attributes objects to send, and what the cache saved.

    Attributes:
        objects: the objects to send (unchanged keys removed; empty ones gone).
        sent: attribute keys sent.
        saved: attribute keys left out.
        data_points_saved: estimated Braze data points left out.
    """

    objects: list[dict[str, Any]]
    sent: int
    saved: int
    data_points_saved: int


class AttributeCache:
    """Remembers what Braze acknowledged, to send only what changed.

    Build one with :meth:`memory`, :meth:`sqlite` or :meth:`redis`, or from any
    :class:`AttributeStore`. Pass it to ``BrazeClient(settings,
    attribute_cache=...)``, or use :meth:`apply` and :meth:`acknowledge` on
    translations yourself.

    Args:
        store: where remembered values live.
        namespace: keeps apps apart in a shared store (use your Braze app group).
        ttl: seconds after which a remembered value is forgotten (default 30
            days), so a profile changed in Braze by other means is corrected at
            least that often.
        clock: the time source (seconds since the epoch).
    """

    def __init__(
        self,
        store: AttributeStore,
        *,
        namespace: str = "default",
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.store = store
        self.namespace = namespace
        self.ttl = ttl
        self._clock = clock
        # (user, attribute) -> [the newest value sent, sends not yet answered]:
        # while any value is on its way, no answer is remembered, and a later
        # message is left out only if it carries the newest value.
        self._sending: dict[tuple[str, str], list[Any]] = {}
        self._sending_lock = threading.Lock()
        # Answers being saved, and the users of the last saves, numbered: a filter
        # that read the store while one was saved cannot trust what it read.
        # Guarded by _sending_lock; _save_lock orders this cache's saves (an
        # answer's, from its settling to its write, and a filter's forgetting).
        self._saves = 0
        self._being_saved: frozenset[str] = frozenset()
        self._recent: collections.deque[tuple[int, frozenset[str]]] = collections.deque(
            maxlen=_RECENT_SAVES
        )
        self._save_lock = threading.Lock()

    @classmethod
    def memory(
        cls, max_users: int = 100_000, *, ttl: float = DEFAULT_TTL, namespace: str = "default"
    ) -> AttributeCache:
        """An in-process cache of at most ``max_users`` users (least recently used go)."""
        return cls(MemoryStore(max_users=max_users), ttl=ttl, namespace=namespace)

    @classmethod
    def sqlite(
        cls, path: str, *, ttl: float = DEFAULT_TTL, namespace: str = "default"
    ) -> AttributeCache:
        """A cache in an SQLite file: survives restarts, shared by processes on one machine."""
        return cls(SQLiteStore(path), ttl=ttl, namespace=namespace)

    @classmethod
    def redis(
        cls, url: str, *, ttl: float = DEFAULT_TTL, namespace: str = "default"
    ) -> AttributeCache:
        """A cache in Redis, shared by pipelines on several machines (needs ``redis``)."""
        return cls(RedisStore(url), ttl=ttl, namespace=namespace)

    def __enter__(self) -> AttributeCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def _key(self, obj: Mapping[str, Any]) -> str | None:
        user = user_key(obj)
        return None if user is None else f"{self.namespace}:{user}"

    def filter_objects(self, objects: list[dict[str, Any]]) -> FilterResult:
        """Remove attributes whose value Braze already acknowledged.

        An object left with only its identifier is not sent, unless it creates
        an alias profile (``user_alias`` with ``_update_existing_only`` false).
        An object identified by email or phone passes whole: Braze may file
        several profiles under one email, so nothing is remembered for it.

        The attributes returned count as on their way until :meth:`acknowledge`
        or :meth:`release` is called with them.
        """
        keys = [self._key(obj) for obj in objects]
        with self._sending_lock:
            began, busy = self._saves, self._being_saved
        remembered = self.store.load(sorted({key for key in keys if key is not None}))
        now = self._clock()
        out: list[dict[str, Any]] = []
        sent = saved = points_saved = 0
        stale: dict[str, dict[str, Remembered]] = {}
        with self._sending_lock:
            sending = self._sending
            # An answer saved while the store was read may be missing from what
            # was read: the values handed out for its users are forgotten too,
            # after that save (else the store could keep the answer, older than
            # what is now on its way, and a next run after a kill would trust it).
            unsure = self._saved_since(began, busy)
            for obj, key in zip(objects, keys, strict=True):
                if key is None:
                    out.append(obj)
                    # All but the lookup key (email, else phone) and the flags.
                    sent += len(obj.keys() - _FLAGS) - 1
                    continue
                known = remembered.get(key, {})
                kept: dict[str, Any] = {}
                meaningful = False
                for name, value in obj.items():
                    if name in _IDENTIFIER_KEYS or name in _FLAGS:
                        kept[name] = value
                        continue
                    previous = known.get(name)
                    on_its_way = sending.get((key, name))
                    if (
                        previous is not None
                        and now - previous[1] < self.ttl
                        and _dedupable(name, value)
                        and previous[0] == (digest := _digest(value))
                        # Nothing else on its way: what Braze will hold is this value.
                        and (on_its_way is None or _digest(on_its_way[0]) == digest)
                    ):
                        saved += 1
                        if name not in FREE_ATTRIBUTE_KEYS:
                            points_saved += value_data_points(value)
                        continue
                    kept[name] = value
                    meaningful = True
                    sent += 1
                    if on_its_way is None:
                        sending[(key, name)] = [value, 1]
                    else:
                        on_its_way[0] = value
                        on_its_way[1] += 1
                    # A new value is on its way: forget the old one now, so that
                    # another process sharing the store does not take the old
                    # value as unchanged either.
                    if (previous is not None and previous[0]) or unsure is None or key in unsure:
                        stale.setdefault(key, {})[name] = _FORGOTTEN
                creates_alias = "user_alias" in obj and obj.get("_update_existing_only") is False
                if meaningful or creates_alias:
                    out.append(kept)
        if stale:
            # After an answer's save still under way, when one touched these users.
            after = self._save_lock if unsure != frozenset() else contextlib.nullcontext()
            with after:
                self.store.save(stale, self.ttl)
        return FilterResult(objects=out, sent=sent, saved=saved, data_points_saved=points_saved)

    def _settle(self, key: str, name: str, value: Any) -> bool:
        """Count one send of ``value`` as answered; whether Braze now surely holds it.

        That is so only when nothing else is on its way for this attribute and
        ``value`` is the newest sent. While other sends are unanswered nothing
        may be remembered, not even the newest value: the store outlives this
        process, and after a kill the next run would trust a value those sends
        may have replaced. Called with the lock held. An attribute this cache
        never handed out (``acknowledge`` called on its own) counts as held.
        """
        on_its_way = self._sending.get((key, name))
        if on_its_way is None:
            return True
        newest, count = on_its_way
        if count > 1:
            on_its_way[1] = count - 1
            return False
        del self._sending[(key, name)]
        return newest is value or _digest(newest) == _digest(value)

    def acknowledge(self, objects: list[dict[str, Any]]) -> None:
        """Remember attributes objects Braze accepted."""
        now = self._clock()
        held: list[tuple[str, str, Any]] = []  # what Braze now surely holds
        # From settling to saving, so that a filter's forgetting (see
        # filter_objects) lands after this save.
        with self._save_lock:
            with self._sending_lock:
                for obj, key, name, value in self._values(objects):
                    # Braze drops an update-only object for a user it does not
                    # know, yet answers success: such an object proves nothing
                    # about the profile (its sends are settled all the same). Nor
                    # does an answer while other values are on its way (or after
                    # a later one was answered): then Braze's value is not known.
                    settled = self._settle(key, name, value)
                    if settled and obj.get("_update_existing_only") is not True:
                        held.append((key, name, value))
                users = frozenset(key for key, _, _ in held)
                if users:
                    self._saves += 1
                    self._recent.append((self._saves, users))
                    self._being_saved = users
            try:
                # Digested outside the lock the sending thread's filter takes.
                updates: dict[str, dict[str, Remembered]] = {}
                for key, name, value in held:
                    # An operation or null changes the stored value in ways we
                    # do not model: forget it, so the next value is sent.
                    remembered = (_digest(value), now) if _dedupable(name, value) else _FORGOTTEN
                    updates.setdefault(key, {})[name] = remembered
                if updates:
                    self.store.save(updates, self.ttl)
            finally:
                if users:
                    with self._sending_lock:
                        self._being_saved = frozenset()

    def _saved_since(self, began: int, busy: frozenset[str]) -> frozenset[str] | None:
        """The users of the answers saved since save ``began``, and ``busy``; None: anyone.

        Called with the lock held.
        """
        if self._saves == began:
            return busy
        if self._saves - began > len(self._recent):  # some are no longer listed
            return None
        unsure = set(busy)
        for number, users in reversed(self._recent):  # the newest first
            if number <= began:
                break
            unsure |= users
        return frozenset(unsure)

    def release(self, objects: list[dict[str, Any]]) -> None:
        """Settle attributes objects that were not delivered (failed, or refused by Braze).

        Nothing is remembered for them. Call it for what :meth:`filter_objects`
        returned and Braze did not acknowledge; ``BrazeClient`` does.
        """
        with self._sending_lock:
            for _, key, name, value in self._values(objects):
                self._settle(key, name, value)

    def _values(
        self, objects: list[dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], str, str, Any]]:
        """``(object, user, attribute, value)`` of every attribute the cache keeps track of."""
        for obj in objects:
            key = self._key(obj)
            if key is None:
                continue
            for name, value in obj.items():
                if name not in _IDENTIFIER_KEYS and name not in _FLAGS:
                    yield obj, key, name, value

    def apply(self, translation: Translation) -> Translation:
        """Return ``translation`` without the attributes Braze already has.

        Call :meth:`acknowledge_translation` once Braze accepted what you sent, or
        :meth:`release_translation` if it failed: until then its values count as
        on their way, and a later message carrying them is not left out.
        """
        objects = [obj.to_json() for obj in translation.attributes]
        kept = self.filter_objects(objects).objects
        by_key = {user_key(obj): obj for obj in kept}
        attributes = []
        for original in translation.attributes:
            obj = by_key.get(user_key(original.to_json()))
            if obj is None:
                continue
            values = {
                name: value
                for name, value in obj.items()
                if name not in _IDENTIFIER_KEYS and name not in _FLAGS
            }
            attributes.append(attrs.evolve(original, attributes=values))
        return attrs.evolve(translation, attributes=tuple(attributes))

    def acknowledge_translation(self, translation: Translation) -> None:
        """Remember a translation's attributes after Braze accepted them."""
        self.acknowledge([obj.to_json() for obj in translation.attributes])

    def release_translation(self, translation: Translation) -> None:
        """Settle a translation from :meth:`apply` that Braze did not accept."""
        self.release([obj.to_json() for obj in translation.attributes])
