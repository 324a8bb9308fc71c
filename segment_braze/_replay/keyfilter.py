"""Which messages the state's recent table may hold, kept in memory in a few hundred KB.

A claim looks a message up in the state's two keyed tables. Almost every message
of a replay is in neither, and a lookup in the recent table (hundreds of
thousands of rows, more pages than SQLite keeps in its cache) costs as much as
one in the main table. :class:`KeyFilter` is a Bloom filter of the keys merged
into the recent table since its last fold: when it says no, the key is not
there, and the lookup reads the main table only. It says yes to about 2% of
the keys it never saw, which then cost the lookup they cost before.
"""

from __future__ import annotations

from typing import Final

__all__ = ["KeyFilter"]

_BITS_PER_KEY: Final = 10  # with 3 probes: about 1.7% false positives at capacity


class KeyFilter:
    """A Bloom filter of ``(source number, id)`` keys, for up to ``capacity`` of them.

    Python's own ``hash`` of the key gives the probes, so the filter is only
    meaningful within one process, which is all it is used for. Beyond
    ``capacity`` keys it answers yes more often, never wrongly no.

    Thread-safe enough for its one use: a key is fully added before anything
    relies on it, and :meth:`clear` swaps in a new bit array at once.
    """

    def __init__(self, capacity: int) -> None:
        self._size = max(64, capacity * _BITS_PER_KEY)
        self._bits = bytearray(self._size // 8 + 1)

    def add(self, number: int, key: str) -> None:
        """Remember a key."""
        bits = self._bits
        for index in self._probes(number, key):
            bits[index >> 3] |= 1 << (index & 7)

    def may_hold(self, number: int, key: str) -> bool:
        """Whether the key may have been added since the last :meth:`clear` (no: it was not)."""
        bits = self._bits
        return all(bits[index >> 3] & (1 << (index & 7)) for index in self._probes(number, key))

    def clear(self) -> None:
        """Forget every key."""
        self._bits = bytearray(len(self._bits))

    def _probes(self, number: int, key: str) -> tuple[int, int, int]:
        # Two halves of one 64-bit hash make the three probes (Kirsch and Mitzenmacher).
        digest = hash((number, key)) & 0xFFFF_FFFF_FFFF_FFFF
        low, high, size = digest & 0xFFFF_FFFF, digest >> 32 | 1, self._size
        return (low % size, (low + high) % size, (low + 2 * high) % size)
