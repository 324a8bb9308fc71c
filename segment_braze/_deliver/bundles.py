"""Packing a chunk's prepared messages into bundles, in a translation child.

With ``BrazeClient(processes=N)`` the parent process must move every message from
the children to its worker threads; done message by message that costs it more
CPU than a child spends translating. So a child hands its chunk back as *units*,
in an order that keeps each worker's share in input order:

* a **run**: messages of one worker's shard (the child computes the shard as the
  parent does, from the user key and the number of workers), in input order,
  whose objects fit one ``/users/track`` request together, already joined per
  array; the parent makes it one ``Pending`` bundle;
* **one** message that cannot join a run: dropped or invalid (for the ledger),
  with user-management entries (their order against track objects matters), or
  too large for any request (the parent fails it with the reason);
* **here**: an item the parent prepares itself (a ``Translation``); every open
  run is closed before it, since its shard is not known here.

A run is closed, and put in the output, before any later unit of the same shard:
so each shard's units come out in input order, and one user's messages (one
user, one shard) keep their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from segment_braze._deliver.batching import (
    MAX_BODY_BYTES,
    MAX_TRACK_OBJECTS,
    shard_of,
)

__all__ = ["HERE", "ONE", "RUN", "bundle_chunk"]

RUN: Final = 0
ONE: Final = 1
HERE: Final = 2
# As batching.TrackBatch: room for the body's braces, keys and commas.
_ENVELOPE_BYTES: Final = 64


class _Run:
    """An open run of one shard."""

    def __init__(self, shard: int) -> None:
        self.shard = shard
        self.indexes: list[int] = []
        self.labels: list[str | None] = []
        self.keys: list[str] = []
        self.counts: list[tuple[int, int, int]] = []
        self.arrays: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
        self.totals = [0, 0, 0]
        self.size = _ENVELOPE_BYTES
        self.attribute_keys = 0

    def fits(self, counts: tuple[int, int, int], size: int, *, legacy: bool) -> bool:
        return _fits(self.totals, self.size, counts, size, legacy=legacy)

    def add(self, index: int, prepared: Any, counts: tuple[int, int, int], size: int) -> None:
        self.indexes.append(index)
        self.labels.append(prepared.message_id)
        self.keys.append(prepared.user_key)
        self.counts.append(counts)
        objects = prepared.objects
        attributes, events, purchases = self.arrays
        # Unrolled: this runs for every message a child prepares.
        attributes.extend(objects["attributes"])
        events.extend(objects["events"])
        purchases.extend(objects["purchases"])
        totals = self.totals
        totals[0] += counts[0]
        totals[1] += counts[1]
        totals[2] += counts[2]
        self.size += size
        self.attribute_keys += prepared.attribute_keys

    def unit(self) -> tuple[Any, ...]:
        return (
            RUN,
            self.shard,
            self.indexes,
            self.labels,
            self.keys,
            self.counts,
            *self.arrays,
            self.attribute_keys,
            # As Pending.size measures: without the body's envelope.
            self.size - _ENVELOPE_BYTES,
        )


def _fits(
    totals: Sequence[int], used: int, counts: tuple[int, int, int], size: int, *, legacy: bool
) -> bool:
    """Whether objects of ``counts`` and ``size`` join ``totals`` and ``used`` in one request."""
    if used + size > MAX_BODY_BYTES:
        return False
    if legacy:
        return all(t + c <= MAX_TRACK_OBJECTS for t, c in zip(totals, counts, strict=True))
    return sum(totals) + sum(counts) <= MAX_TRACK_OBJECTS


_EMPTY: Final = (0, 0, 0)


def _measure(prepared: Any) -> tuple[tuple[int, int, int], int]:
    """A message's object counts and serialised size, as ``Pending`` measures them."""
    objects = prepared.objects
    attributes, events, purchases = objects["attributes"], objects["events"], objects["purchases"]
    counts = (len(attributes), len(events), len(purchases))
    size = sum(counts) + sum(map(len, attributes)) + sum(map(len, events))
    return counts, size + sum(map(len, purchases))


def bundle_chunk(
    prepared: list[Any], *, workers: int, legacy_limits: bool
) -> list[tuple[Any, ...]]:
    """A chunk's prepared messages (``None`` for the parent's own) as units.

    Args:
        prepared: ``pool.Prepared`` per message, in input order, or ``None`` for
            an item the parent prepares.
        workers: the sender's worker threads (the shards).
        legacy_limits: Braze's legacy limits (75 objects of each kind).

    Returns:
        ``(RUN, shard, indexes, labels, keys, counts, attributes, events,
        purchases, attribute_keys, size)``, ``(ONE, index, prepared)`` and
        ``(HERE, index)`` tuples; indexes are positions in ``prepared``.
    """
    units: list[tuple[Any, ...]] = []
    runs: dict[int, _Run] = {}

    def close(shard: int) -> None:
        run = runs.pop(shard, None)
        if run is not None:
            units.append(run.unit())

    for index, message in enumerate(prepared):
        if message is None:
            for shard in list(runs):
                close(shard)
            units.append((HERE, index))
            continue
        if message.dropped is not None or message.objects is None:
            units.append((ONE, index, message))
            continue
        shard = shard_of(message.user_key, workers)
        counts, size = _measure(message)
        if (
            message.operations
            or message.attributes
            or not _fits(_EMPTY, _ENVELOPE_BYTES, counts, size, legacy=legacy_limits)
        ):
            close(shard)
            units.append((ONE, index, message))
            continue
        run = runs.get(shard)
        if run is not None and not run.fits(counts, size, legacy=legacy_limits):
            close(shard)
            run = None
        if run is None:
            run = runs[shard] = _Run(shard)
        run.add(index, message, counts, size)
    for shard in list(runs):
        close(shard)
    return units
