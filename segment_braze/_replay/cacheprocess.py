"""The attribute cache in the translating process, for a replay with one worker process.

With the cache in the main process, every attributes object crossed the pipe
as a dict and was filtered, digested and serialised there, under the one GIL
the reading thread and the sender threads share: about a quarter of the
replay's time. With ``--processes 2`` (the default on two cores) the one
worker process translates every message, in input order, so it can hold the
cache itself. It filters each message's attributes objects right after
translating them, serialises what is left, and hands back the bytes with one
token per object. The main process sends them, and gives back the tokens of
the objects Braze accepted (and of those it did not) before its next chunk; the
worker then settles them, as ``AttributeCache.acknowledge`` and ``release``
would have in the main process, and writes the cache file.

Every guarantee of the cache holds: a value is remembered only once Braze
accepted it and nothing newer is on its way, and the "forget" of a changed
value is written before its message leaves the worker. Tokens not yet settled
when the main process is killed are lost with the worker: their values are
sent again by the next run. With more worker processes, or a store this module
cannot open again in the worker (Redis, a caller's own), the cache stays in
the main process.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from typing import Any

import attrs

from segment_braze import _json
from segment_braze._cache.cache import AttributeCache
from segment_braze._cache.stores import MemoryStore, SQLiteStore
from segment_braze._deliver.pool import Prepared
from segment_braze._replay.cachefile import GuardedStore
from segment_braze._replay.usage import FileError

__all__ = ["CacheLink", "CacheRecipe", "filter_prepared", "open_here", "settle"]


@attrs.frozen(kw_only=True)
class CacheRecipe:
    """How the worker process opens the main process's cache (a store does not pickle).

    Attributes:
        path: the SQLite file, or None for a cache in memory.
        max_users: users an in-memory cache keeps.
        ttl: seconds a remembered value is trusted.
        namespace: the cache's namespace.
        name: the cache as error messages name it.
    """

    path: str | None
    max_users: int
    ttl: float
    namespace: str
    name: str


class CacheLink(AttributeCache):
    """The main process's side: collects the tokens Braze's answers settle.

    Passed to ``BrazeClient`` as its ``attribute_cache``. Tokens (from the worker
    process) are kept for :meth:`take`; attributes objects (a chunk translated
    in this process after all, or no worker process) go to this cache itself,
    which shares the store.
    """

    def __init__(self, cache: AttributeCache, name: str) -> None:
        super().__init__(cache.store, namespace=cache.namespace, ttl=cache.ttl)
        store = cache.store
        self.recipe: CacheRecipe | None = None
        if isinstance(store, SQLiteStore | MemoryStore):
            self.recipe = CacheRecipe(
                path=store.path if isinstance(store, SQLiteStore) else None,
                max_users=store.max_users if isinstance(store, MemoryStore) else 0,
                ttl=cache.ttl,
                namespace=cache.namespace,
                name=name,
            )
        self._tokens_lock = threading.Lock()
        self._accepted: list[int] = []
        self._refused: list[int] = []

    def acknowledge(self, objects: list[Any]) -> None:
        """Keep the tokens among ``objects`` for the worker; remember the rest here."""
        here = self._keep(objects, self._accepted)
        if here:
            super().acknowledge(here)

    def release(self, objects: list[Any]) -> None:
        """Keep the tokens among ``objects`` for the worker; settle the rest here."""
        here = self._keep(objects, self._refused)
        if here:
            super().release(here)

    def _keep(self, objects: list[Any], into: list[int]) -> list[dict[str, Any]]:
        tokens = [obj for obj in objects if type(obj) is int]
        if tokens:
            with self._tokens_lock:
                into.extend(tokens)
        if len(tokens) == len(objects):
            return []
        return [obj for obj in objects if type(obj) is not int]

    def take(self) -> tuple[list[int], list[int]]:
        """The tokens answered since the last call: ``(accepted, refused)``."""
        with self._tokens_lock:
            taken = self._accepted, self._refused
            self._accepted, self._refused = [], []
        return taken


class _Held:
    """The worker process's cache, and the objects it handed out, by token."""

    def __init__(self, recipe: CacheRecipe) -> None:
        try:
            store = (
                MemoryStore(max_users=recipe.max_users)
                if recipe.path is None
                else SQLiteStore(recipe.path)
            )
        except (sqlite3.Error, ValueError, OSError) as err:
            raise FileError(f"cannot open the attribute cache {recipe.name}: {err}") from None
        self.guard = GuardedStore(store, recipe.name)
        self.cache = AttributeCache(self.guard, namespace=recipe.namespace, ttl=recipe.ttl)
        self.handed: dict[int, dict[str, Any]] = {}
        self.tokens = itertools.count()


_recipe: CacheRecipe | None = None
_held: _Held | None = None


def open_here(recipe: CacheRecipe | None) -> None:
    """Say which cache this worker process holds (its initializer; opened on first use)."""
    global _recipe  # noqa: PLW0603 (one cache per worker process, for its lifetime)
    _recipe = recipe


def _cache() -> _Held | None:
    global _held  # noqa: PLW0603 (see open_here)
    if _held is None and _recipe is not None:
        _held = _Held(_recipe)
    return _held


def filter_prepared(prepared: Prepared) -> Prepared:
    """Filter a message's attributes objects with this process's cache, if it holds one.

    Returns ``prepared`` with the objects left serialised and a token each, or
    as it is (the dicts, for the main process's cache) when this process holds
    no cache.

    Raises:
        FileError: the cache cannot be read, or an earlier write failed.
    """
    held = _cache()
    if held is None or not prepared.attributes:
        return prepared
    result = held.cache.filter_objects(list(prepared.attributes))
    held.guard.check()
    tokens = []
    for obj in result.objects:
        token = next(held.tokens)
        held.handed[token] = obj
        tokens.append(token)
    dumps = _json.dumps
    objects = dict(prepared.objects or {})
    objects["attributes"] = [dumps(obj) for obj in result.objects]
    return prepared._replace(
        objects=objects,
        attributes=(),
        attribute_keys=result.sent,
        cache_tokens=tuple(tokens),
        cache_saved=(result.saved, result.data_points_saved),
    )


def settle(accepted: list[int], refused: list[int], *, close: bool = False) -> None:
    """Settle the tokens Braze's answers decided (in the worker process).

    Args:
        accepted: tokens of objects Braze accepted.
        refused: tokens of objects it refused, or that were never delivered.
        close: the run is over: close the store afterwards.

    Raises:
        FileError: a write of the cache failed (now or earlier).
    """
    held = _held
    if held is None:
        return
    handed = held.handed
    try:
        if refused:
            held.cache.release([handed.pop(token) for token in refused if token in handed])
        if accepted:
            held.cache.acknowledge([handed.pop(token) for token in accepted if token in handed])
        held.guard.check()
    finally:
        if close:
            held.cache.close()
