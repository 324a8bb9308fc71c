"""Packing translated messages into Braze requests.

A message's objects are never split across requests: Braze processes one request's
attributes before its events and purchases, which is what lets an alias profile
exist before its first event, and it does not order separate requests.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from segment_braze._translate.braze import UserOperation
from segment_braze._translate.translation import Translation

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TRACK_OBJECTS",
    "MAX_USER_ENTRIES",
    "Bundle",
    "Packer",
    "Pending",
    "TrackBatch",
    "operation_batches",
    "shard_of",
    "track_body",
    "track_owners",
    "user_key",
]

# Braze: /users/track takes 75 objects in total per request (legacy accounts: 75
# attributes + 75 events + 75 purchases); every endpoint takes at most 4 MB.
MAX_TRACK_OBJECTS: Final = 75
# Braze: /users/identify, /users/merge, /users/delete, /users/alias/new take at
# most 50 entries per request.
MAX_USER_ENTRIES: Final = 50
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
# Room for the body's own braces, keys and commas around the objects.
_ENVELOPE_BYTES: Final = 64
_ARRAYS: Final = ("attributes", "events", "purchases")


@attrs.frozen(kw_only=True)
class Bundle:
    """The messages of a bundle, as parallel lists in input order.

    Attributes:
        items: what the caller passed, each.
        labels: their labels for reports.
        keys: their users (shard keys).
        counts: how many attributes, events and purchases each sends.
    """

    items: list[Any]
    labels: list[str]
    keys: list[str]
    counts: list[tuple[int, int, int]]


@attrs.define(kw_only=True, eq=False)
class Pending:
    """One message on its way to Braze, or a bundle of them (mutable: the sender records fates).

    Its counts and size are computed once, when it is made: the sender asks for
    them several times per message (does it fit alone, does it fit this batch).

    A *bundle* (``bundle`` set) is several messages of one worker's shard
    that a translation process packed together (see ``bundles``): their objects
    in order, within one request's limits, with no user-management entries. The
    sender moves it as one message; where Braze names one of its objects, or a
    request must be split, it is taken apart again (``explode``).

    Attributes:
        item: what the caller passed (a Segment dict or a Translation).
        label: the message id for reports (``messageId`` or ``#<position>``).
        user_key: the Braze profile the message is about, for ordering.
        objects: serialised ``/users/track`` objects per array name.
        attribute_objects: the attributes objects as sent, for the attribute cache
            (empty without one), or the tokens of a cache held by the worker
            process that translated the message.
        operations: user-management entries, sent after the track objects.
        before: user-management entries sent before the track objects (their
            batch's request); if they fail, the objects are not sent.
        done: whether the message's fate is already recorded.
        bundle: a bundle's messages (``None`` for one message; ``item``,
            ``label`` and ``user_key`` are then unused).
        shard: the worker chosen by the translation process, or ``None``.
        measured: the object counts and size, when the translation process
            measured them already.
        object_counts: how many attributes, events and purchases it sends.
        object_total: the sum of ``object_counts``.
        size: serialised bytes of its track objects, with separators.
    """

    item: Any
    label: str
    user_key: str
    objects: dict[str, list[bytes]]
    attribute_objects: Sequence[Any] = ()
    operations: tuple[UserOperation, ...] = ()
    before: tuple[UserOperation, ...] = ()
    done: bool = False
    bundle: Bundle | None = None
    shard: int | None = None
    measured: tuple[tuple[int, int, int], int] | None = None
    object_counts: tuple[int, int, int] = attrs.field(init=False)
    object_total: int = attrs.field(init=False)
    size: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.measured is not None:
            self.object_counts, self.size = self.measured
            self.object_total = sum(self.object_counts)
            return
        attributes = self.objects["attributes"]
        events, purchases = self.objects["events"], self.objects["purchases"]
        self.object_counts = (len(attributes), len(events), len(purchases))
        self.object_total = len(attributes) + len(events) + len(purchases)
        # Each object plus the comma (or bracket) that follows it.
        self.size = self.object_total + sum(map(len, attributes))
        self.size += sum(map(len, events)) + sum(map(len, purchases))

    @property
    def has_track(self) -> bool:
        """Whether the message has any ``/users/track`` object."""
        return self.object_total > 0

    @property
    def count(self) -> int:
        """How many of the caller's messages this is."""
        return 1 if self.bundle is None else len(self.bundle.items)

    def outcomes(self) -> Iterable[tuple[Any, str]]:
        """``(item, label)`` of each of the caller's messages, for the ledger."""
        if self.bundle is None:
            return ((self.item, self.label),)
        return zip(self.bundle.items, self.bundle.labels, strict=True)

    def user_keys(self) -> Iterable[str]:
        """The users whose objects this carries."""
        return (self.user_key,) if self.bundle is None else self.bundle.keys

    def shares_user(self, users: set[str] | frozenset[str]) -> bool:
        """Whether any of its users is in ``users``."""
        if self.bundle is None:
            return self.user_key in users
        return not users.isdisjoint(self.bundle.keys)

    def explode(self) -> list[Pending]:
        """A bundle's messages, each on its own (the same objects, in the same order)."""
        if self.bundle is None:
            return [self]
        singles = []
        start = [0, 0, 0]
        bundle = self.bundle
        for item, label, key, counts in zip(
            bundle.items, bundle.labels, bundle.keys, bundle.counts, strict=True
        ):
            objects = {}
            for kind, array in enumerate(_ARRAYS):
                stop = start[kind] + counts[kind]
                objects[array] = self.objects[array][start[kind] : stop]
                start[kind] = stop
            singles.append(
                Pending(item=item, label=label, user_key=key, objects=objects, shard=self.shard)
            )
        return singles


@attrs.define(kw_only=True)
class TrackBatch:
    """Messages whose objects go to Braze in one ``/users/track`` request."""

    legacy_limits: bool = False
    messages: list[Pending] = attrs.field(factory=list)
    counts: list[int] = attrs.field(factory=lambda: [0, 0, 0])
    total: int = 0
    size: int = _ENVELOPE_BYTES

    def fits(self, message: Pending) -> bool:
        """Whether ``message`` can join without breaking Braze's limits."""
        if self.size + message.size > MAX_BODY_BYTES:
            return False
        if self.legacy_limits:
            added = message.object_counts
            return all(c + a <= MAX_TRACK_OBJECTS for c, a in zip(self.counts, added, strict=True))
        return self.total + message.object_total <= MAX_TRACK_OBJECTS

    def add(self, message: Pending) -> None:
        """Add a message (call :meth:`fits` first)."""
        self.messages.append(message)
        if self.legacy_limits:
            added = message.object_counts
            self.counts = [c + a for c, a in zip(self.counts, added, strict=True)]
        self.total += message.object_total
        self.size += message.size

    @property
    def full(self) -> bool:
        """Whether no further object could join."""
        if self.legacy_limits:
            return all(count >= MAX_TRACK_OBJECTS for count in self.counts)
        return self.total >= MAX_TRACK_OBJECTS

    def __len__(self) -> int:
        return len(self.messages)


@attrs.define(kw_only=True)
class Packer:
    """A worker's two open ``/users/track`` batches, so requests leave full.

    A message that does not fit the first batch goes to the second instead of
    sending the first with room left: later, smaller messages still fill the
    first, as long as their user has nothing in the second (one user's messages
    go out in order, the first batch always before the second). A message is
    never split.
    """

    legacy_limits: bool = False
    batch: TrackBatch = attrs.field(init=False)
    spill: TrackBatch = attrs.field(init=False)
    spill_users: set[str] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self.batch = TrackBatch(legacy_limits=self.legacy_limits)
        self.spill = TrackBatch(legacy_limits=self.legacy_limits)

    def add(self, message: Pending) -> list[list[Pending]]:
        """Place a message (call ``fits_alone`` first); return the batches to send now."""
        ready = []
        if self.batch.fits(message) and not message.shares_user(self.spill_users):
            self.batch.add(message)
        elif self.spill.fits(message):
            self.spill.add(message)
            self.spill_users.update(message.user_keys())
        else:
            ready.append(self._promote())
            if not self.batch.fits(message):
                ready.append(self._promote())
            self.batch.add(message)
        if self.batch.full:
            ready.append(self._promote())
        return [batch for batch in ready if batch]

    def take_all(self) -> list[list[Pending]]:
        """Both batches (the first first), emptied."""
        ready = [self._promote(), self._promote()]
        return [batch for batch in ready if batch]

    def messages(self) -> list[Pending]:
        """Every message held."""
        return [*self.batch.messages, *self.spill.messages]

    def _promote(self) -> list[Pending]:
        sent = self.batch.messages
        self.batch = self.spill
        self.spill = TrackBatch(legacy_limits=self.legacy_limits)
        self.spill_users = set()
        return sent


def fits_alone(message: Pending, *, legacy_limits: bool) -> str | None:
    """Say why a message can never be sent in one request, or return ``None``."""
    if message.size + _ENVELOPE_BYTES > MAX_BODY_BYTES:
        return f"its Braze objects take {message.size} bytes, over Braze's 4 MB request limit"
    if legacy_limits:
        if max(message.object_counts) <= MAX_TRACK_OBJECTS:
            return None
        counts = ", ".join(
            f"{count} {name}" for name, count in zip(_ARRAYS, message.object_counts, strict=True)
        )
        limit = f"{MAX_TRACK_OBJECTS} of each kind"
    else:
        if message.object_total <= MAX_TRACK_OBJECTS:
            return None
        counts, limit = f"{message.object_total} Braze objects", str(MAX_TRACK_OBJECTS)
    return f"it makes {counts}, over the {limit} one request may carry (a message is never split)"


def track_body(messages: Sequence[Pending]) -> bytes:
    """Assemble a ``/users/track`` body from already-serialised objects."""
    parts = []
    for array in _ARRAYS:
        items = [item for message in messages for item in message.objects[array]]
        if items:
            parts.append(b'"' + array.encode() + b'":[' + b",".join(items) + b"]")
    return b"{" + b",".join(parts) + b"}"


def track_owners(messages: Sequence[Pending]) -> dict[str, list[Pending]]:
    """For each array of ``track_body(messages)``, the message that owns each index.

    Only needed when Braze names objects in an ``errors`` entry, so it is built
    then, not for every request.
    """
    owners: dict[str, list[Pending]] = {}
    for array in _ARRAYS:
        owned = [message for message in messages for _ in message.objects[array]]
        if owned:
            owners[array] = owned
    return owners


def operation_batches(
    messages: Sequence[Pending], *, before: bool = False
) -> Iterator[tuple[str, str, list[Any], list[Pending]]]:
    """Group the messages' user-management entries by endpoint, 50 at a time.

    Args:
        messages: the messages whose entries to send.
        before: group the entries that go before the track objects, not after.

    Yields:
        ``(path, key, entries, owners)`` where ``owners[i]`` sent ``entries[i]``.
    """
    grouped: dict[tuple[str, str], tuple[list[Any], list[Pending]]] = {}
    for message in messages:
        for operation in message.before if before else message.operations:
            entries, owners = grouped.setdefault((operation.path, operation.key), ([], []))
            entries.append(operation.entry)
            owners.append(message)
    for (path, key), (entries, owners) in grouped.items():
        for start in range(0, len(entries), MAX_USER_ENTRIES):
            stop = start + MAX_USER_ENTRIES
            yield path, key, entries[start:stop], owners[start:stop]


def shard_of(key: str, workers: int) -> int:
    """The worker that sends a user's messages (the same in every process)."""
    return zlib.crc32(key.encode()) % workers


def user_key(translation: Translation) -> str:
    """The key that decides which worker sends a message: one key, one order.

    An anonymous visitor's alias and the identify that merges it into a known
    user share the alias's key, so the merge never overtakes the visitor's own
    events (which would orphan them on a fresh alias profile).
    """
    for operation in translation.operations:
        entry = operation.entry
        if operation.key == "aliases_to_identify" and isinstance(entry, Mapping):
            return f"user_alias:{entry['user_alias']['alias_name']}"
    for objects in (translation.attributes, translation.events, translation.purchases):
        if objects:
            identifier = objects[0].identifier
            return f"{identifier.kind}:{identifier.value}"
    for operation in translation.operations:
        entry = operation.entry
        if isinstance(entry, str):
            return f"external_id:{entry}"
        if isinstance(entry, Mapping):
            keep = entry.get("identifier_to_keep", entry)
            if isinstance(keep, Mapping) and "external_id" in keep:
                return f"external_id:{keep['external_id']}"
    return ""


def split_operations(
    operations: tuple[UserOperation, ...],
) -> tuple[tuple[UserOperation, ...], tuple[UserOperation, ...]]:
    """A message's entries as ``(after, before)`` its track objects (``before_track``)."""
    if not operations or not any(operation.before_track for operation in operations):
        return operations, ()
    return (
        tuple(operation for operation in operations if not operation.before_track),
        tuple(operation for operation in operations if operation.before_track),
    )


def attribute_keys(objects: Sequence[Mapping[str, Any]]) -> int:
    """The attribute keys of attributes objects, for the report (what Braze bills)."""
    # Every attributes object has two keys that are not attributes, its one
    # identifier and _update_existing_only, and some the flag _merge_objects.
    flags = sum(1 for obj in objects if "_merge_objects" in obj)
    return sum(map(len, objects)) - 2 * len(objects) - flags
