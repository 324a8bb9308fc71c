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

Each worker is a ``spawn``-ed process (no fork of a process that runs threads)
with two pipes: the reading thread writes the chunks into one itself, and reads
the answers from the other itself, in order, when it needs them; the worker
writes its answers from a thread of its own, so it never waits for the reading
thread to take one and always takes the next chunk (so neither side can wait
for the other for ever). No helper thread of the main process stands between
them: in ``concurrent.futures``' pool two did, each taking the GIL from the
reading thread and its 32 sender threads for every chunk, and it queued at most
two chunks per worker. On Linux the pipes are widened to 1 MB, so a chunk or
its answer passes in one write. Workers ignore Ctrl-C (the main process decides
when to stop), and end when the main process ends, even when it is killed. A
worker that ends unexpectedly, or does not answer within :data:`_STALL`
seconds, stops the run with one line.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
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
# Seconds without an answer before a worker is given up on: a chunk takes well
# under a second, a busy attribute cache file is waited for up to 30 s.
_STALL: Final = 120.0
_POLL: Final = 0.5  # seconds between looks at the time while waiting for an answer
_STOP_WAIT: Final = 5.0  # seconds a stopping worker is given before it is killed
_PIPE: Final = 1 << 20  # bytes a pipe holds, where the OS lets us choose
_CHUNK_TASK: Final = "chunk"
# What pickling raises for a value it cannot carry (a message nested too deeply).
_UNPICKLABLE: Final = (pickle.PicklingError, RecursionError, ValueError, TypeError, AttributeError)
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


def _stalled() -> UsageError:
    return UsageError(
        f"a translating worker process did not answer within {_STALL:g} s;"
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
    # The main process's end of the task pipe closes when it is killed (kill -9),
    # but a worker busy with its chunk would only notice at the next one.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _serve(
    tasks: Connection,
    answers: Connection,
    cache: CacheRecipe | None,
    settings: Settings,
    options: dict[str, Any],
) -> None:
    """A worker process's life: tasks in, one answer each, in order, until the pipe ends.

    A task is ``(CHUNK, messages)`` (answered with the chunk's results) or
    ``(SETTLE, (accepted, refused, close))`` (see ``cacheprocess.settle``). An
    answer is ``(kind, True, value)``, or ``(kind, False, exception)`` when the
    task raised, for the main process to raise.
    """
    _start_worker(cache)
    # Answers are written by a thread of their own: this one never waits for the
    # main process to read one, so it always reads the next task (the main
    # process, writing a task, never waits for a worker that waits for it).
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_write_answers, args=(answers, outbox), daemon=True)
    writer.start()
    try:
        _answer_tasks(tasks, outbox, settings, options)
    finally:
        outbox.put(None)
        writer.join()


def _write_answers(answers: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
    while (data := outbox.get()) is not None:
        try:
            answers.send_bytes(data)
        except OSError:
            return  # the main process ended


def _answer_tasks(
    tasks: Connection,
    outbox: queue.SimpleQueue[bytes | None],
    settings: Settings,
    options: dict[str, Any],
) -> None:
    while True:
        try:
            kind, body = pickle.loads(tasks.recv_bytes())  # noqa: S301 (our own main process)
        except (EOFError, OSError):
            return  # the main process closed the pipe, or ended
        try:
            if kind == _CHUNK_TASK:
                answer: tuple[Any, ...] = (kind, True, translate_chunk(settings, body, **options))
            else:
                accepted, refused, close = body
                settle(accepted, refused, close=close)
                answer = (kind, True, None)
        except Exception as err:  # noqa: BLE001 (handed to the main process, which raises it)
            answer = (kind, False, err)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except _UNPICKLABLE as err:
            data = pickle.dumps((kind, False, RuntimeError(f"{type(err).__name__}: {err}")))
        outbox.put(data)


def _widen(connection: Connection) -> None:
    """Let a pipe hold a chunk's messages or answers whole, where the OS lets us (Linux).

    With the default 64 KB a chunk's answer takes several reads, each waiting for
    the main process's GIL; the wider pipe is an optimisation only.
    """
    if sys.platform != "linux":  # pragma: no cover - F_SETPIPE_SZ is Linux's
        return
    import fcntl  # noqa: PLC0415 (POSIX only)

    with contextlib.suppress(OSError):  # over the system's limit: the pipe stays as it is
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, _PIPE)


class _Worker:
    """One worker process: tasks over one pipe, answers back over another, in order.

    The reading thread writes tasks itself; a thread of its own reads the
    answers as they come, so the worker never waits for the reading thread to
    take one (and the reading thread, writing, never waits for a worker that
    waits for it).
    """

    def __init__(self, context: Any, setup: tuple[Any, ...]) -> None:
        theirs, self._tasks = context.Pipe(duplex=False)
        self._answers, ours = context.Pipe(duplex=False)
        try:
            self.process = context.Process(
                target=_serve, args=(theirs, ours, *setup), name="segment-braze-worker", daemon=True
            )
            self.process.start()
        except BaseException:
            self._tasks.close()
            self._answers.close()
            raise
        finally:
            # Only the worker holds these now: its end closes with it (EOF).
            theirs.close()
            ours.close()
        _widen(self._tasks)
        _widen(self._answers)
        self._waiting = 0  # tasks sent and not answered yet

    def send(self, kind: str, body: Any) -> None:
        """Hand the worker a task.

        Raises:
            UsageError: the worker has ended.
            pickle.PicklingError, RecursionError, ...: ``body`` cannot be pickled
                (nothing was sent).
        """
        data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._tasks.send_bytes(data)
        except (OSError, ValueError) as err:  # BrokenPipeError: it died
            raise _died() from err
        self._waiting += 1

    def answer(self, kind: str, *, wait: float | None = None) -> Any:
        """The answer to the oldest task of ``kind``, skipping older tasks' answers.

        Raises:
            UsageError: the worker ended.
            TimeoutError: no answer came within ``wait`` seconds (default :data:`_STALL`).
            Exception: what the task raised in the worker.
        """
        deadline = time.monotonic() + (_STALL if wait is None else wait)
        while True:
            if self._waiting <= 0:  # pragma: no cover - a bug of the caller
                raise RuntimeError(f"no {kind} task is waiting for an answer")
            try:
                ready = self._answers.poll(max(0.0, min(_POLL, deadline - time.monotonic())))
                data = self._answers.recv_bytes() if ready else None
            except (EOFError, OSError) as err:
                raise _died() from err
            if data is None:
                if time.monotonic() >= deadline:
                    raise TimeoutError
                continue
            self._waiting -= 1
            got, ok, value = pickle.loads(data)  # noqa: S301 (our own worker's answer)
            if not ok:
                raise value
            if got == kind:
                return value

    def stop(self, *, wait: bool) -> None:
        """End the worker: end of tasks, then a bounded wait (none if not ``wait``), then a kill."""
        with contextlib.suppress(OSError):
            self._tasks.close()
        self.process.join(timeout=_STOP_WAIT if wait else 0.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=_STOP_WAIT)
        with contextlib.suppress(OSError):
            self._answers.close()


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
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                setup = (recipe, self._settings, self._options)
                self._workers.append(_Worker(context, setup))
        except BaseException:
            for worker in self._workers:
                worker.stop(wait=False)
            raise
        self._turn = 0
        self._closed = False

    def map(self, items: Iterable[tuple[T, Any]]) -> Iterator[tuple[T, Translated | None]]:
        """Translate the messages of ``(tag, message)`` pairs, keeping their order.

        A pair whose message is None is passed through untranslated (its result
        is None), in its place among the others.

        Raises:
            UsageError: a worker process died (killed, out of memory) or stalled.
        """
        window: collections.deque[tuple[list[tuple[T, Any]], _Worker | None]]
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
                except _UNPICKLABLE:
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
        in since its last chunk and saves them (waiting at most a minute).

        Raises:
            FileError: the worker could not write the cache.
        """
        if self._closed:
            return
        self._closed = True
        wait = True
        try:
            if self._settle_answers(close=True):
                self._workers[0].answer(_SETTLE_TASK, wait=_SETTLE_WAIT)
        except TimeoutError:
            wait = False  # what was not saved is only sent again by a later run
        except UsageError:  # the worker is gone, and its answers with it
            pass
        except BaseException:  # a second Ctrl-C: stop waiting
            wait = False
            raise
        finally:
            for worker in self._workers:
                worker.stop(wait=wait)

    def _settle(
        self, chunk: list[tuple[T, Any]], worker: _Worker | None
    ) -> Iterator[tuple[T, Translated | None]]:
        messages = [message for _, message in chunk if message is not None]
        if worker is None:
            found = translate_chunk(self._settings, messages, **self._options) if messages else []
        else:
            try:
                found = worker.answer(_CHUNK_TASK)
            except TimeoutError:
                raise _stalled() from None
        results = iter(found)
        for tag, message in chunk:
            yield tag, (next(results) if message is not None else None)
