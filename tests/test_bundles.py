"""A translation child's bundles: every message once, each shard in input order, within limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segment_braze import Settings
from segment_braze._deliver.batching import MAX_BODY_BYTES, MAX_TRACK_OBJECTS, shard_of
from segment_braze._deliver.bundles import HERE, ONE, RUN, bundle_chunk
from segment_braze._deliver.pool import prepare_message

SETTINGS = Settings(app_id="app")
TIME = "2024-05-01T12:00:00Z"
WORKERS = 4


def track(n: int, *, user: int, products: int = 0) -> dict[str, Any]:
    """Track call ``m<n>`` of user ``u<user>``; with products, an order of that many."""
    properties: dict[str, Any] = {"seq": n}
    event = "Viewed"
    if products:
        event = "Order Completed"
        properties["products"] = [
            {"product_id": f"p{k}", "price": 1.5, "quantity": 1} for k in range(products)
        ]
        properties["currency"] = "USD"
    return {
        "type": "track",
        "userId": f"u{user}",
        "event": event,
        "timestamp": TIME,
        "messageId": f"m{n}",
        "properties": properties,
    }


def alias(n: int, *, user: int) -> dict[str, Any]:
    """An alias call (a user-management entry) for user ``u<user>``."""
    return {
        "type": "alias",
        "userId": f"u{user}",
        "previousId": f"old{user}",
        "timestamp": TIME,
        "messageId": f"m{n}",
    }


def units_of(messages: list[Any], **options: Any) -> list[tuple[Any, ...]]:
    """``bundle_chunk`` of the messages as a child prepares them (None stays None)."""
    prepared = [None if m is None else prepare_message(m, SETTINGS) for m in messages]
    return bundle_chunk(prepared, workers=WORKERS, legacy_limits=options.get("legacy", False))


def indexes(unit: tuple[Any, ...]) -> list[int]:
    """The chunk positions a unit stands for."""
    return list(unit[2]) if unit[0] == RUN else [unit[1]]


def shard(messages: list[Any], index: int) -> int | None:
    """The shard of the message at ``index`` (None for the parent's own or a drop)."""
    prepared = None if messages[index] is None else prepare_message(messages[index], SETTINGS)
    if prepared is None or prepared.dropped is not None:
        return None
    return shard_of(prepared.user_key, WORKERS)


def mixed() -> list[Any]:
    """Tracks, orders, aliases, an invalid message and a parent's item, over 9 users."""
    messages: list[Any] = []
    for n in range(300):
        if n % 37 == 5:
            messages.append(alias(n, user=n % 9))
        elif n % 23 == 3:
            messages.append(track(n, user=n % 9, products=30))
        elif n == 150:
            messages.append(None)
        elif n == 151:
            messages.append({"type": "track", "messageId": "bad"})
        else:
            messages.append(track(n, user=n % 9))
    return messages


class TestCoverage:
    """Each message is in exactly one unit, and each shard's units keep input order."""

    def test_every_message_once(self):
        """The units stand for every position of the chunk exactly once."""
        messages = mixed()
        covered = sorted(i for unit in units_of(messages) for i in indexes(unit))
        assert covered == list(range(len(messages)))

    def test_each_shard_in_input_order(self):
        """Within each worker's shard, positions only grow from unit to unit."""
        messages = mixed()
        last: dict[int, int] = {}
        for unit in units_of(messages):
            for index in indexes(unit):
                key = shard(messages, index)
                if key is None:
                    continue
                assert index > last.get(key, -1)
                last[key] = index

    def test_a_run_holds_one_shard(self):
        """Every message of a run belongs to the run's shard."""
        messages = mixed()
        runs = [unit for unit in units_of(messages) if unit[0] == RUN]
        assert runs
        for unit in runs:
            assert {shard(messages, index) for index in unit[2]} == {unit[1]}

    def test_parent_item_closes_every_run(self):
        """Nothing before the parent's own item is in a unit after it, and the reverse."""
        messages = mixed()
        units = units_of(messages)
        here = next(n for n, unit in enumerate(units) if unit[0] == HERE)
        assert max(i for unit in units[:here] for i in indexes(unit)) < 150
        assert min(i for unit in units[here + 1 :] for i in indexes(unit)) > 150


class TestSingles:
    """What cannot join a run comes alone, in its shard's place."""

    def test_entries_and_drops_alone(self):
        """An alias (user-management entry) and an invalid message are ONE units."""
        messages = mixed()
        alone = {unit[1]: unit[2] for unit in units_of(messages) if unit[0] == ONE}
        assert alone[5].operations
        assert alone[151].dropped is not None

    def test_entry_after_its_users_earlier_objects(self):
        """An alias comes after the run holding its user's earlier tracks."""
        messages = [track(0, user=1), track(1, user=1), alias(2, user=1), track(3, user=1)]
        units = units_of(messages)
        assert [indexes(unit) for unit in units] == [[0, 1], [2], [3]]


class TestLimits:
    """A run always fits one request."""

    def test_at_most_75_objects(self):
        """Orders of 30 purchases each: runs of two (60 objects), never three (90)."""
        messages = [track(n, user=1, products=30) for n in range(5)]
        runs = [unit for unit in units_of(messages) if unit[0] == RUN]
        assert [list(unit[2]) for unit in runs] == [[0, 1], [2, 3], [4]]
        for unit in runs:
            assert sum(map(sum, unit[5])) <= MAX_TRACK_OBJECTS

    @pytest.mark.parametrize("legacy", [False, True])
    def test_sizes_are_the_bodys(self, legacy):
        """A run's size is what its objects take in a body, under Braze's 4 MB."""
        messages = [track(n, user=n % 3) for n in range(60)]
        for unit in units_of(messages, legacy=legacy):
            if unit[0] != RUN:
                continue
            objects = [*unit[6], *unit[7], *unit[8]]
            assert unit[10] == sum(map(len, objects)) + len(objects)
            assert unit[10] < MAX_BODY_BYTES
            assert all(json.loads(obj) for obj in objects)

    def test_legacy_limits_per_kind(self):
        """With legacy limits, 75 of each kind: two orders of 40 purchases never share a run."""
        messages = [track(n, user=1, products=40) for n in range(3)]
        runs = [unit for unit in units_of(messages, legacy=True) if unit[0] == RUN]
        assert [list(unit[2]) for unit in runs] == [[0], [1], [2]]
