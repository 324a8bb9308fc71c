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
neither serialises nor counts again. With an attribute cache held in the main
process the attributes objects come back as dicts, for it to see their values
(with one worker process, the worker holds it: see ``cacheprocess``).

Each worker is a :class:`~segment_braze._replay.workerprocess.WorkerProcess`:
the reading thread hands the chunks to a thread that writes them into its pipe,
and reads the answers back itself, in order. A worker that ends
unexpectedly, or does not answer within two minutes, stops the run with one
line.
"""

from __future__ import annotations

import collections
import gc
import itertools
from collections.abc import Iterable, Iterator
from typing import Any, Final, NamedTuple, TypeVar

import attrs

from segment_braze._deliver.child import UNPICKLABLE
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
from segment_braze._replay.workerprocess import WorkerGoneError, WorkerProcess, stalled
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
_CHUNK_TASK: Final = "chunk"
_SETTLE_TASK: Final = "settle"


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
        message, folder = item if function is not None else (item, None)
        if type(message) is bytes:
            message = parse(message)
        if function is not None:
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


# What each worker gets once: the cache it holds, the settings, translate_chunk's options.
_Setup = tuple[CacheRecipe | None, Settings, dict[str, Any]]


def _start(setup: _Setup) -> None:
    """A worker process's start: the cache it holds, if any, and the collector's pace."""
    open_here(setup[0])
    gc.set_threshold(*THRESHOLDS)  # this process is ours (see collector.py)


def _handle(setup: _Setup, kind: str, body: Any) -> Any:
    """A worker process's answer to one task: a chunk's results, or the cache's answers settled."""
    _, settings, options = setup
    if kind == _CHUNK_TASK:
        return translate_chunk(settings, body, **options)
    accepted, refused, close = body
    settle(accepted, refused, close=close)
    return None


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

    Raises:
        OSError: worker processes cannot be started here.
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
        self._options: dict[str, Any] = {
            "keep": keep,
            "transform": transform,
            "attribute_values": attribute_values,
        }
        self._ahead = workers * (1 + _AHEAD)
        held = cache is not None and cache.recipe is not None and workers == 1
        self._cache = cache if held else None
        recipe = cache.recipe if held and cache is not None else None
        self._workers: list[WorkerProcess] = []
        try:
            for _ in range(workers):
                setup = (recipe, self._settings, self._options)
                self._workers.append(WorkerProcess(start=_start, handle=_handle, setup=setup))
        except BaseException:
            for worker in self._workers:
                worker.stop(wait=False)
            raise
        self._turn = 0
        self._closed = False
        self._stalled = False  # a worker did not answer: close does not wait for it again

    def map(self, items: Iterable[tuple[T, Any]]) -> Iterator[tuple[T, Translated | None]]:
        """Translate the messages of ``(tag, message)`` pairs, keeping their order.

        A pair whose message is None is passed through untranslated (its result
        is None), in its place among the others.

        Raises:
            UsageError: a worker process died (killed, out of memory) or stalled.
        """
        window: collections.deque[tuple[list[tuple[T, Any]], WorkerProcess | None]]
        window = collections.deque()
        pairs = iter(items)
        while chunk := list(itertools.islice(pairs, _CHUNK)):
            messages = [message for _, message in chunk if message is not None]
            worker = None
            if messages:
                self._settle_answers()
                worker = self._workers[self._turn % len(self._workers)]
                try:
                    worker.send(_CHUNK_TASK, messages)
                    self._turn += 1
                except UNPICKLABLE:
                    # A message the pipe cannot carry (nested too deeply to
                    # pickle): this chunk is translated here, so it costs only time.
                    worker = None
            window.append((chunk, worker))
            if len(window) > self._ahead:
                yield from self._settle(*window.popleft())
        while window:
            yield from self._settle(*window.popleft())

    def _settle_answers(self, *, close: bool = False) -> bool:
        """Hand the tokens Braze's answers settled to the worker holding the cache."""
        if self._cache is None:
            return False
        accepted, refused = self._cache.take()
        if not (accepted or refused or close):
            return False
        self._workers[0].send(_SETTLE_TASK, (accepted, refused, close))
        return True

    def close(self) -> None:
        """Stop the workers: queued chunks are dropped, running ones finish.

        A worker holding the attribute cache first settles the answers that came
        in since its last chunk and saves them (waiting at most a minute, and
        not at all after a worker stalled).

        Raises:
            FileError: the worker could not write the cache.
        """
        if self._closed:
            return
        self._closed = True
        wait = not self._stalled
        try:
            if wait and self._settle_answers(close=True):
                self._workers[0].answer(_SETTLE_TASK, wait=_SETTLE_WAIT)
        except TimeoutError:
            wait = False  # what was not saved is only sent again by a later run
        except WorkerGoneError:  # and its answers with it (a FileError, it could not save: raised)
            pass
        except BaseException:  # a second Ctrl-C: stop waiting
            wait = False
            raise
        finally:
            for worker in self._workers:
                worker.stop(wait=wait)

    def _settle(
        self, chunk: list[tuple[T, Any]], worker: WorkerProcess | None
    ) -> Iterator[tuple[T, Translated | None]]:
        messages = [message for _, message in chunk if message is not None]
        if worker is None:
            found = translate_chunk(self._settings, messages, **self._options) if messages else []
        else:
            try:
                found = worker.answer(_CHUNK_TASK)
            except TimeoutError:
                self._stalled = True
                raise stalled() from None
        results = iter(found)
        for tag, message in chunk:
            yield tag, (next(results) if message is not None else None)
