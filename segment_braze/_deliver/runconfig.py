"""What a delivery run needs from the client that starts it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from segment_braze._cache.cache import AttributeCache
from segment_braze._deliver.batching import Pending
from segment_braze._deliver.report import Ledger
from segment_braze._deliver.transport import Answer

__all__ = ["RunConfig"]


@attrs.frozen(kw_only=True)
class RunConfig:
    """What a delivery run needs from the client that starts it.

    Attributes:
        workers: worker threads.
        window: messages queued per worker before the reader waits.
        linger: seconds a part-filled batch waits for more messages.
        legacy_limits: Braze's legacy per-kind limits of 75 objects each.
        on_failure: the caller's hook for each failed message.
        on_outcome: the caller's hook for each message's fate.
        attribute_cache: acknowledges delivered attributes, when set.
        prepare: turns one input item into a pending message (or accounts for it).
        post: sends one body to a path, with retries, and returns Braze's answer;
            raises ``HookRaised`` when the caller's ``before_request`` hook raised.
        source: when set, turns the input into ``(position, item, pending)`` in
            input order in its own way (translation in child processes), given
            the ``delivery.Run`` to account with (typed ``Any`` here: this
            module may not import the one that imports it); by default each
            item goes to ``prepare``.
    """

    workers: int
    window: int
    linger: float
    legacy_limits: bool
    on_failure: Callable[[Any, str], None] | None
    on_outcome: Callable[[Any, str, str | None], None] | None
    attribute_cache: AttributeCache | None
    prepare: Callable[[Any, int, Ledger], Pending | None]
    post: Callable[[str, bytes, Ledger, threading.Event], Answer]
    source: Callable[[Iterable[Any], Any], Iterator[tuple[int, Any, Pending | None]]] | None = None
