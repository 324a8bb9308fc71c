"""The replay state's filter of the keys its recent table may hold."""

from __future__ import annotations

import uuid

from segment_braze._replay.keyfilter import KeyFilter


def keys(count, seed):
    """``count`` messageId-like keys, different for each seed."""
    return [f"m:{uuid.UUID(int=seed << 64 | n)}" for n in range(count)]


class TestKeyFilter:
    """It never says no to a key it holds, and rarely yes to one it does not."""

    def test_every_added_key_is_held(self):
        """No false negative: a claim never misses a row of the recent table."""
        kept = KeyFilter(20_000)
        added = keys(20_000, 1)
        for key in added:
            kept.add(3, key)
        assert all(kept.may_hold(3, key) for key in added)

    def test_few_false_positives_at_capacity(self):
        """At its capacity it says yes to under 5% of the keys it never saw."""
        kept = KeyFilter(20_000)
        for key in keys(20_000, 1):
            kept.add(1, key)
        others = keys(20_000, 2)
        assert sum(kept.may_hold(1, key) for key in others) < 1_000

    def test_the_source_is_part_of_the_key(self):
        """A key added for one source is not, as a rule, held for another."""
        kept = KeyFilter(1_000)
        added = keys(1_000, 1)
        for key in added:
            kept.add(1, key)
        assert sum(kept.may_hold(2, key) for key in added) < 50

    def test_clear_forgets_everything(self):
        """After a fold the filter holds nothing, so claims read the main table only."""
        kept = KeyFilter(100)
        kept.add(1, "m:1")
        kept.clear()
        assert not kept.may_hold(1, "m:1")
