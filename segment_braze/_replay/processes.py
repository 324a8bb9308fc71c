"""Translation in worker processes, for ``segment-braze replay --processes N``.

``translate()`` is pure, so it can run in another process. Everything that
needs order or shared state stays in the main process: reading and parsing the
input, the replay state (duplicates, resume), the one ``BrazeClient`` (rate
limit, per-user order) and the commits. The main process hands the messages to
``N - 1`` worker processes in chunks, and takes the results back *in input
order*: each message is then checked against the state and accounted exactly as
it would be in one process, only with its translation already done.

A worker returns, per message, what the sender needs (a ``Prepared``: the
objects already serialised, the user's shard key; never a pickled
``Translation``) and the counts the summary needs, so that the main process
neither serialises nor counts again. With an attribute cache the attributes
objects come back as dicts: the cache, in the main process, must see their
values. Workers are started with ``spawn`` (no fork of a process that runs
threads), ignore Ctrl-C (the main process decides when to stop), and end when
the main process ends, even when it is killed.
"""

from __future__ import annotations

import collections
import gc
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, NamedTuple, TypeVar

import attrs

from segment_braze._deliver.pool import Prepared, prepare_translation
from segment_braze._replay.cacheprocess import (
    CacheLink,
    CacheRecipe,
    filter_prepared,
    open_here,
    settle,
)
from segment_braze._replay.collector import THRESHOLDS
from segment_braze._replay.identity import Identity, identify
from segment_braze._replay.records import parse
from segment_braze._replay.transform import DROPPED, apply, load
from segment_braze._replay.usage import UsageError
from segment_braze._settings import Settings
from segment_braze._translate.calls import translate
from segment_braze._translate.datapoints import attribute_data_points, event_data_points
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import InvalidMessage

__all__ = ["Counts", "ProcessTranslator", "Translated", "count_objects", "translate_chunk"]

T = TypeVar("T")

# Messages per task: large enough that pickling and the task round trip cost
# little per message, small enough to keep every worker busy.
_CHUNK: Final = 256
# Chunks queued per worker beyond the one it works on: the memory bound.
_AHEAD: Final = 2
# Seconds the end of a run waits for the worker process to settle and save the
# attribute cache's last answers (a busy SQLite file is waited for up to 30 s).
_SETTLE_WAIT: Final = 60.0


class Counts(NamedTuple):
    """What one translation adds to the summary."""

    attribute_objects: int
    attribute_points: int
    events: int
    event_points: int
    purchases: int
    operations: int
    warnings: int

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled by tuple.__new__ (C) rather than the generated __new__: the
        # main process unpickles one of these per message.
        return tuple.__new__, (type(self), tuple(self))


def count_objects(translation: Translation) -> Counts:
    """Count a translation's Braze objects and the data points of its attributes."""
    return Counts(
        attribute_objects=len(translation.attributes),
        # The attributes alone: the identifier and flag to_json() adds are free.
        attribute_points=sum(
            attribute_data_points(obj.attributes) for obj in translation.attributes
        ),
        events=len(translation.events),
        # Braze's recommended events (ecommerce.*) are free.
        event_points=sum(event_data_points(event.name) for event in translation.events),
        purchases=len(translation.purchases),
        operations=len(translation.operations),
        warnings=len(translation.warnings),
    )


class Translated(NamedTuple):
    """A worker's result for one message.

    Attributes:
        error: why the message cannot be translated (``InvalidMessage``), or None.
        dropped: why it maps to nothing, or None.
        counts: its objects, None when ``error`` is set.
        prepared: what the sender needs to send it; None unless it was asked
            for and the message is neither invalid nor dropped.
        identity: with ``--transform``, the identity of the message it returned
            (the main process de-duplicates on it).
        transformed: with ``--transform``, whether the transform decided the
            message's fate (dropped it, or raised): then nothing else ran.
    """

    error: str | None
    dropped: str | None = None
    counts: Counts | None = None
    prepared: Prepared | None = None
    identity: Identity | None = None
    transformed: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        return tuple.__new__, (type(self), tuple(self))


def translate_chunk(
    settings: Settings,
    messages: list[Any],
    *,
    keep: bool,
    transform: str | None = None,
    attribute_values: bool = False,
) -> list[Translated]:
    """Translate messages (in a worker process).

    Args:
        settings: the translation settings.
        messages: Segment messages, or the bytes of a JSON line holding one
            (:attr:`Record.data`, parsed here as the reader parsed it); with
            ``transform``, ``(message, folder)`` pairs, the folder being the
            source id of its ``segment-logs`` folder.
        keep: return what the sender needs (else only what the summary needs).
        transform: ``MODULE:FUNCTION`` to run on each message first, or None.
        attribute_values: hand back the attributes objects as dicts (for the
            attribute cache), not serialised; in a worker process that holds
            the cache (see ``cacheprocess``), filtered and serialised here.
    """
    function = load(transform) if transform is not None else None
    results = []
    for item in messages:
        identity = None
        message = parse(item) if type(item) is bytes else item
        if function is not None:
            message, folder = item
            applied = apply(function, message, copy=False)
            if applied.message is None:
                dropped = DROPPED if applied.error is None else None
                results.append(Translated(error=applied.error, dropped=dropped, transformed=True))
                continue
            message = applied.message
            identity = identify(message, folder)
        try:
            translation = translate(message, settings)
        except InvalidMessage as err:
            results.append(Translated(error=str(err), identity=identity))
            continue
        prepared = None
        if keep and translation.dropped is None:
            prepared = prepare_translation(translation, attribute_values=attribute_values)
            if attribute_values:  # filtered here when this process holds the cache
                prepared = filter_prepared(prepared)
        results.append(
            Translated(
                error=None,
                dropped=translation.dropped,
                counts=count_objects(translation),
                prepared=prepared,
                identity=identity,
            )
        )
    return results


def _died() -> UsageError:
    return UsageError(
        "a translating worker process ended unexpectedly (killed, or out of memory);"
        " run the same command again to resume"
    )


def _start_worker(cache: CacheRecipe | None = None) -> None:
    # Ctrl-C reaches the whole process group: the main process handles it and
    # shuts the workers down after their current chunk.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    open_here(cache)
    gc.set_threshold(*THRESHOLDS)  # this process is ours (see collector.py)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    # A worker holds its own end of the task queue, so it would wait for tasks
    # for ever after the main process is killed (kill -9): end with it.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


class ProcessTranslator:
    """Translates in worker processes; results come back in input order.

    Args:
        settings: the translation settings (the REST API key stays here).
        workers: worker processes.
        keep: return what the sender needs; a dry run needs only counts.
        transform: ``MODULE:FUNCTION`` each worker imports and runs first, or None;
            the messages are then ``(message, folder)`` pairs (see translate_chunk).
        attribute_values: attributes objects come back as dicts (see
            ``translate_chunk``).
        cache: the sender's attribute cache, when it is a ``CacheLink``: with
            one worker process that can open its store, the worker holds the
            cache (see ``cacheprocess``) and :meth:`close` saves its last answers.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int,
        keep: bool,
        transform: str | None = None,
        attribute_values: bool = False,
        cache: CacheLink | None = None,
    ) -> None:
        self._settings = attrs.evolve(settings, rest_api_key=None)
        self._keep = keep
        self._transform = transform
        self._attribute_values = attribute_values
        self._ahead = workers * (1 + _AHEAD)
        held = cache is not None and cache.recipe is not None and workers == 1
        self._cache = cache if held else None
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(cache.recipe if held and cache is not None else None,),
        )
        self._closed = False

    def map(self, items: Iterable[tuple[T, Any]]) -> Iterator[tuple[T, Translated | None]]:
        """Translate the messages of ``(tag, message)`` pairs, keeping their order.

        A pair whose message is None is passed through untranslated (its result
        is None), in its place among the others.

        Raises:
            UsageError: a worker process died (killed, out of memory).
        """
        window: collections.deque[tuple[list[tuple[T, Any]], Future[list[Translated]] | None]]
        window = collections.deque()
        pairs = iter(items)
        try:
            while chunk := list(itertools.islice(pairs, _CHUNK)):
                messages = [message for _, message in chunk if message is not None]
                future = None
                if messages:
                    try:
                        self._settle_answers()
                        future = self._pool.submit(
                            translate_chunk,
                            self._settings,
                            messages,
                            keep=self._keep,
                            transform=self._transform,
                            attribute_values=self._attribute_values,
                        )
                    except BrokenProcessPool as err:  # it died while the reader read
                        raise _died() from err
                window.append((chunk, future))
                if len(window) > self._ahead:
                    yield from self._settle(*window.popleft())
            while window:
                yield from self._settle(*window.popleft())
        finally:
            for _, future in window:
                if future is not None:
                    future.cancel()

    def _settle_answers(self, *, close: bool = False) -> Future[None] | None:
        """Hand the tokens Braze's answers settled to the worker holding the cache."""
        if self._cache is None:
            return None
        accepted, refused = self._cache.take()
        if not (accepted or refused or close):
            return None
        return self._pool.submit(settle, accepted, refused, close=close)

    def close(self) -> None:
        """Stop the workers: queued chunks are dropped, running ones finish.

        A worker holding the attribute cache first settles the answers that came
        in since its last chunk and saves them (waiting at most a minute).

        Raises:
            FileError: the worker could not write the cache.
        """
        if self._closed:
            return
        self._closed = True
        wait = True
        try:
            last = self._settle_answers(close=True)
            if last is not None:
                last.result(timeout=_SETTLE_WAIT)
        except TimeoutError:
            wait = False  # what was not saved is only sent again by a later run
        except RuntimeError:  # BrokenProcessPool: the worker is gone, and its answers
            pass
        except BaseException:  # a second Ctrl-C: stop waiting
            wait = False
            raise
        finally:
            self._pool.shutdown(wait=wait, cancel_futures=True)

    def _settle(
        self, chunk: list[tuple[T, Any]], future: Future[list[Translated]] | None
    ) -> Iterator[tuple[T, Translated | None]]:
        try:
            results = iter(future.result() if future is not None else ())
        except BrokenProcessPool as err:
            raise _died() from err
        except (pickle.PicklingError, RecursionError, ValueError, TypeError, AttributeError):
            # A message the pipe cannot carry (nested too deeply to pickle): this
            # chunk is translated here instead, so it costs only time.
            messages = [message for _, message in chunk if message is not None]
            results = iter(
                translate_chunk(
                    self._settings,
                    messages,
                    keep=self._keep,
                    transform=self._transform,
                    attribute_values=self._attribute_values,
                )
            )
        for tag, message in chunk:
            yield tag, (next(results) if message is not None else None)
