"""Packing messages into Braze requests: object limits, size, order, ownership."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segment_braze._deliver.batching import (
    MAX_BODY_BYTES,
    MAX_TRACK_OBJECTS,
    MAX_USER_ENTRIES,
    Packer,
    Pending,
    TrackBatch,
    fits_alone,
    operation_batches,
    track_body,
    track_owners,
)
from segment_braze._translate.braze import UserOperation


def obj(label: str, index: int, *, pad: int = 0) -> bytes:
    """One serialised object tagged with its message and position."""
    return json.dumps({"external_id": "u1", "mid": label, "i": index, "pad": "x" * pad}).encode()


def pending(
    label: str,
    *,
    attributes: int = 0,
    events: int = 0,
    purchases: int = 0,
    pad: int = 0,
    operations: tuple[UserOperation, ...] = (),
) -> Pending:
    """A message with that many objects of each kind."""
    return Pending(
        item={"messageId": label},
        label=label,
        user_key="external_id:u1",
        objects={
            "attributes": [obj(label, i, pad=pad) for i in range(attributes)],
            "events": [obj(label, i, pad=pad) for i in range(events)],
            "purchases": [obj(label, i, pad=pad) for i in range(purchases)],
        },
        operations=operations,
    )


def delete(user: str) -> UserOperation:
    """A /users/delete entry."""
    return UserOperation(path="/users/delete", key="external_ids", entry=user)


def identify(user: str) -> UserOperation:
    """A /users/identify entry."""
    alias = {"alias_name": f"anon-{user}", "alias_label": "segment_anonymous_id"}
    return UserOperation(
        path="/users/identify",
        key="aliases_to_identify",
        entry={"external_id": user, "user_alias": alias},
    )


def fill(batch: TrackBatch, messages: list[Pending]) -> list[Pending]:
    """Add messages while they fit; return those that did not."""
    left = []
    for message in messages:
        if batch.fits(message) and not left:
            batch.add(message)
        else:
            left.append(message)
    return left


class TestLimits:
    """Braze's constants."""

    def test_constants(self):
        """75 objects per /users/track request, 50 entries elsewhere, 4 MB bodies."""
        assert (MAX_TRACK_OBJECTS, MAX_USER_ENTRIES, MAX_BODY_BYTES) == (75, 50, 4 * 1024 * 1024)


class TestPending:
    """What a message contributes to a request."""

    def test_counts_and_size(self):
        """object_counts per array; size counts each object plus a separator."""
        message = pending("m", attributes=1, events=2, purchases=3)
        assert message.object_counts == (1, 2, 3)
        assert message.size == sum(len(o) + 1 for a in message.objects.values() for o in a)
        assert message.has_track

    def test_operations_only(self):
        """A message with only user-management entries has nothing to track."""
        message = pending("m", operations=(delete("u1"),))
        assert not message.has_track
        assert message.object_counts == (0, 0, 0)


class TestDefaultLimit:
    """Current accounts: 75 objects in total per /users/track request."""

    @pytest.mark.parametrize(
        ("first", "second", "fits"),
        [
            ({"events": 75}, {"events": 1}, False),
            ({"events": 74}, {"events": 1}, True),
            ({"attributes": 25, "events": 25}, {"purchases": 25}, True),
            ({"attributes": 25, "events": 25}, {"purchases": 26}, False),
            ({"attributes": 40}, {"events": 20, "purchases": 16}, False),
            ({}, {"attributes": 25, "events": 25, "purchases": 25}, True),
        ],
    )
    def test_total(self, first, second, fits):
        """A message joins only if the total stays at most 75."""
        batch = TrackBatch()
        if first:
            batch.add(pending("a", **first))
        assert batch.fits(pending("b", **second)) is fits

    def test_full(self):
        """A batch of 75 objects in total is full."""
        batch = TrackBatch()
        batch.add(pending("a", attributes=30, events=30))
        assert not batch.full
        batch.add(pending("b", purchases=15))
        assert batch.full
        assert len(batch) == 2

    def test_packing(self):
        """Messages of one object each fill a request to exactly 75."""
        batch = TrackBatch()
        left = fill(batch, [pending(f"m{n}", events=1) for n in range(100)])
        assert len(batch) == 75
        assert len(left) == 25


class TestLegacyLimit:
    """Legacy accounts: 75 attributes, 75 events and 75 purchases per request."""

    @pytest.mark.parametrize(
        ("first", "second", "fits"),
        [
            ({"events": 75}, {"attributes": 75}, True),
            ({"events": 75}, {"events": 1}, False),
            ({"attributes": 75, "events": 75}, {"purchases": 75}, True),
            ({"attributes": 50, "events": 50, "purchases": 50}, {"purchases": 26}, False),
            ({}, {"attributes": 75, "events": 75, "purchases": 75}, True),
        ],
    )
    def test_per_array(self, first, second, fits):
        """A message joins only if each array stays at most 75."""
        batch = TrackBatch(legacy_limits=True)
        if first:
            batch.add(pending("a", **first))
        assert batch.fits(pending("b", **second)) is fits

    def test_full_only_when_every_array_is(self):
        """A legacy batch is full only when no array has room."""
        batch = TrackBatch(legacy_limits=True)
        batch.add(pending("a", events=75))
        assert not batch.full
        batch.add(pending("b", attributes=75, purchases=75))
        assert batch.full


class TestSize:
    """Bodies stay under Braze's 4 MB."""

    def test_size_limit(self):
        """A message that would push the body past 4 MB does not join."""
        batch = TrackBatch()
        big = pending("a", attributes=1, pad=MAX_BODY_BYTES // 2)
        batch.add(big)
        assert not batch.fits(pending("b", attributes=1, pad=MAX_BODY_BYTES // 2))
        assert batch.fits(pending("c", attributes=1, pad=1000))

    @pytest.mark.parametrize(
        "shapes",
        [
            [{"events": 1}],
            [{"attributes": 3, "events": 2, "purchases": 1}, {"events": 5}],
            [{"purchases": 10, "pad": 300}, {"attributes": 20}, {"events": 30, "pad": 5}],
            [{"attributes": 75}],
        ],
    )
    def test_size_estimate_covers_the_body(self, shapes):
        """The batch's size estimate is never below the real body's length."""
        batch = TrackBatch()
        for n, shape in enumerate(shapes):
            batch.add(pending(f"m{n}", **shape))
        body = track_body(batch.messages)
        assert len(body) <= batch.size


class TestFitsAlone:
    """Why a message can never be sent, if it cannot."""

    @pytest.mark.parametrize(
        ("shape", "legacy"),
        [
            ({"events": 75}, False),
            ({"attributes": 25, "events": 25, "purchases": 25}, False),
            ({"attributes": 75, "events": 75, "purchases": 75}, True),
            ({"attributes": 1, "pad": 1000}, False),
        ],
    )
    def test_fits(self, shape, legacy):
        """Messages within the limits fit."""
        assert fits_alone(pending("m", **shape), legacy_limits=legacy) is None

    @pytest.mark.parametrize(
        ("shape", "legacy", "count"),
        [
            ({"events": 76}, False, "76"),
            ({"attributes": 25, "events": 26, "purchases": 25}, False, "76"),
            ({"events": 76}, True, "76"),
        ],
    )
    def test_too_many_objects(self, shape, legacy, count):
        """Too many objects: the reason gives the count and the limit."""
        reason = fits_alone(pending("m", **shape), legacy_limits=legacy)
        assert reason is not None
        assert count in reason
        assert "75" in reason

    def test_too_large(self):
        """Over 4 MB alone: the reason says so."""
        reason = fits_alone(pending("m", attributes=1, pad=MAX_BODY_BYTES), legacy_limits=False)
        assert reason is not None
        assert "4 MB" in reason


class TestTrackBody:
    """The body keeps each message's objects together and in order."""

    def test_body_and_owners(self):
        """Arrays in Braze's order, objects in message order, each traced to its owner."""
        a = pending("a", attributes=1, events=2)
        b = pending("b", events=1, purchases=1)
        c = pending("c", attributes=2)
        body, owners = track_body([a, b, c]), track_owners([a, b, c])
        parsed = json.loads(body)
        assert list(parsed) == ["attributes", "events", "purchases"]

        def tags(array: str) -> list[tuple[Any, Any]]:
            return [(o["mid"], o["i"]) for o in parsed[array]]

        assert tags("attributes") == [("a", 0), ("c", 0), ("c", 1)]
        assert tags("events") == [("a", 0), ("a", 1), ("b", 0)]
        assert tags("purchases") == [("b", 0)]
        assert owners == {"attributes": [a, c, c], "events": [a, a, b], "purchases": [b]}

    def test_empty_arrays_left_out(self):
        """Arrays no message uses are not in the body."""
        body, owners = track_body([pending("a", events=2)]), track_owners([pending("a", events=2)])
        assert list(json.loads(body)) == ["events"]
        assert list(owners) == ["events"]


class TestOperationBatches:
    """User-management entries go 50 to a request, grouped by endpoint."""

    def test_fifty_per_request(self):
        """120 deletes make requests of 50, 50 and 20, in order, with their owners."""
        messages = [pending(f"m{n}", operations=(delete(f"u{n}"),)) for n in range(120)]
        batches = list(operation_batches(messages))
        assert [(path, key, len(entries)) for path, key, entries, _ in batches] == [
            ("/users/delete", "external_ids", 50),
            ("/users/delete", "external_ids", 50),
            ("/users/delete", "external_ids", 20),
        ]
        assert [e for _, _, entries, _ in batches for e in entries] == [f"u{n}" for n in range(120)]
        assert [o for _, _, _, owners in batches for o in owners] == messages

    def test_grouped_by_endpoint(self):
        """Entries for different endpoints never share a request."""
        messages = [
            pending("d0", operations=(delete("u0"),)),
            pending("i0", operations=(identify("u1"),)),
            pending("d1", operations=(delete("u2"),)),
        ]
        batches = list(operation_batches(messages))
        assert [(path, entries) for path, _, entries, _ in batches] == [
            ("/users/delete", ["u0", "u2"]),
            ("/users/identify", [identify("u1").entry]),
        ]
        assert [[o.label for o in owners] for *_, owners in batches] == [["d0", "d1"], ["i0"]]

    def test_nothing(self):
        """No entries, no requests."""
        assert list(operation_batches([pending("a", events=1)])) == []


def of_user(label: str, user: str, events: int) -> Pending:
    """A message of ``events`` events for ``user``."""
    message = pending(label, events=events)
    message.user_key = f"external_id:{user}"
    return message


class TestPacker:
    """Two open batches: requests leave fuller, one user's order is kept."""

    def test_part_full_batch_takes_a_later_message(self):
        """A message that does not fit waits in the second batch; a later one fills the first."""
        packer = Packer()
        assert packer.add(of_user("a", "u1", 70)) == []
        assert packer.add(of_user("b", "u2", 10)) == []  # to the second batch
        sent = packer.add(of_user("c", "u3", 5))  # fills the first: 75
        assert [[m.label for m in batch] for batch in sent] == [["a", "c"]]
        assert [[m.label for m in batch] for batch in packer.take_all()] == [["b"]]

    def test_a_user_in_the_second_batch_stays_there(self):
        """A user with a message in the second batch never has a later one in the first."""
        packer = Packer()
        packer.add(of_user("a", "u1", 70))
        packer.add(of_user("b", "u2", 10))
        packer.add(of_user("c", "u2", 1))  # u2 waits in the second batch: c goes there too
        assert [[m.label for m in b] for b in packer.take_all()] == [["a"], ["b", "c"]]

    @given(
        st.lists(
            st.tuples(st.integers(0, 4), st.integers(1, MAX_TRACK_OBJECTS)),
            max_size=60,
        )
    )
    def test_order_and_limits(self, specs):
        """Every message once, no request over 75 objects, each user's messages in order."""
        packer = Packer()
        messages = [of_user(f"m{n}", f"u{user}", size) for n, (user, size) in enumerate(specs)]
        batches = []
        for message in messages:
            batches.extend(packer.add(message))
        batches.extend(packer.take_all())
        sent = [message for batch in batches for message in batch]
        assert sorted(m.label for m in sent) == sorted(m.label for m in messages)
        assert all(sum(m.object_total for m in batch) <= MAX_TRACK_OBJECTS for batch in batches)
        for user in range(5):
            key = f"external_id:u{user}"
            mine = [m.label for m in sent if m.user_key == key]
            assert mine == [m.label for m in messages if m.user_key == key]
