"""A worker process and its two pipes: tasks in, one answer each, in order.

A ``spawn``-ed process (no fork of a process that runs threads) with a pipe for
tasks and one for answers. The caller's thread reads the answers itself, when it
needs them, and hands its tasks to a thread that writes them (so it never blocks
on a full pipe); the worker writes its answers from a thread of its own, so it
never waits for the caller to take one and always takes the next task (so
neither side can wait for the other for ever). In ``concurrent.futures``' pool
a second helper thread of the caller's process read the answers and fed the
tasks, each time taking the GIL from the caller's busy threads, and it queued
at most two tasks per worker. On Linux the pipes are widened to 1 MB, so
a task or its answer passes in one write.

A worker ignores Ctrl-C (the caller decides when to stop) and ends when the
caller's process ends, even when it is killed. A worker that ends unexpectedly,
or does not answer within :data:`STALL` seconds, is reported with one line
(``UsageError``); no semaphore or shared memory is needed, so workers start where
``/dev/shm`` is missing (AWS Lambda).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

from segment_braze._deliver.child import UNPICKLABLE
from segment_braze._replay.usage import UsageError

__all__ = ["STALL", "WorkerGoneError", "WorkerProcess", "stalled"]

STALL: Final = 120.0
"""Seconds without an answer before a worker is given up on: a chunk takes well
under a second, a busy attribute cache file is waited for up to 30 s."""
_POLL: Final = 0.5  # seconds between looks at the time while waiting for an answer
_STOP_WAIT: Final = 5.0  # seconds a stopping worker is given before it is killed
_PIPE: Final = 1 << 20  # bytes a pipe holds, where the OS lets us choose

#: Runs once in the worker with the setup; then the handler answers each task.
Start = Callable[[Any], None]
Handle = Callable[[Any, str, Any], Any]


class WorkerGoneError(UsageError):
    """A worker process ended unexpectedly (killed, out of memory): one line, exit status 2."""


def _died() -> WorkerGoneError:
    return WorkerGoneError(
        "a translating worker process ended unexpectedly (killed, or out of memory);"
        " run the same command again to resume"
    )


def stalled() -> UsageError:
    """The one line for a worker that did not answer within :data:`STALL` seconds."""
    return UsageError(
        f"a translating worker process did not answer within {STALL:g} s;"
        " run the same command again to resume"
    )


def _exit_with(sentinel: int) -> None:
    # The caller's end of the task pipe closes when it is killed (kill -9), but a
    # worker busy with its task would only notice at the next one.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _serve(
    tasks: Connection, answers: Connection, start: Start, handle: Handle, setup: Any
) -> None:
    """A worker process's life: ``start(setup)``, then tasks in, one answer each, until EOF.

    An answer is ``(kind, True, value)``, or ``(kind, False, exception)`` when the
    task raised, for the caller to raise.
    """
    # Ctrl-C reaches the whole process group: the caller handles it and stops
    # the workers after their current task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    start(setup)
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_write_answers, args=(answers, outbox), daemon=True)
    writer.start()
    try:
        _answer_tasks(tasks, outbox, handle, setup)
    finally:
        outbox.put(None)
        writer.join()


def _write_answers(answers: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
    while (data := outbox.get()) is not None:
        try:
            answers.send_bytes(data)
        except OSError:
            return  # the caller's process ended


def _answer_tasks(
    tasks: Connection, outbox: queue.SimpleQueue[bytes | None], handle: Handle, setup: Any
) -> None:
    while True:
        try:
            kind, body = pickle.loads(tasks.recv_bytes())  # noqa: S301 (our own caller)
        except (EOFError, OSError):
            return  # the caller closed the pipe, or ended
        try:
            answer: tuple[Any, ...] = (kind, True, handle(setup, kind, body))
        except Exception as err:  # noqa: BLE001 (handed to the caller, which raises it)
            answer = (kind, False, err)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except UNPICKLABLE as err:
            data = pickle.dumps((kind, False, RuntimeError(f"{type(err).__name__}: {err}")))
        outbox.put(data)


def _widen(connection: Connection) -> None:
    """Let a pipe hold a task or its answer whole, where the OS lets us (Linux).

    With the default 64 KB an answer takes several reads, each waiting for the
    caller's GIL; the wider pipe is an optimisation only.
    """
    if sys.platform != "linux":  # pragma: no cover - F_SETPIPE_SZ is Linux's
        return
    import fcntl  # noqa: PLC0415 (POSIX only)

    with contextlib.suppress(OSError):  # over the system's limit: the pipe stays as it is
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, _PIPE)


class WorkerProcess:
    """One worker process: tasks over one pipe, answers back over another, in order.

    Args:
        start: run once in the worker with ``setup`` (a module-level function).
        handle: answers each task: ``handle(setup, kind, body)`` (module-level).
        setup: what the worker needs for all its tasks (pickled once).

    Raises:
        OSError: the process cannot be started.
    """

    def __init__(self, *, start: Start, handle: Handle, setup: Any) -> None:
        context = multiprocessing.get_context("spawn")
        theirs, self._tasks = context.Pipe(duplex=False)
        self._answers, ours = context.Pipe(duplex=False)
        try:
            self.process = context.Process(
                target=_serve,
                args=(theirs, ours, start, handle, setup),
                name="segment-braze-worker",
                daemon=True,
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
        # An answer's read was interrupted (Ctrl-C) part-way: the pipe no longer
        # starts at an answer, so nothing more is read from it.
        self._torn = False
        # Tasks are written by a thread of their own, so that the caller never
        # blocks on a full pipe (a worker stuck on a message): it waits only for
        # answers, and for those at most STALL seconds.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._broken = False
        self._writer = threading.Thread(
            target=self._write_tasks, name="segment-braze-tasks", daemon=True
        )
        self._writer.start()

    def _write_tasks(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._tasks.send_bytes(data)
            except (OSError, ValueError):  # BrokenPipeError: it died
                self._broken = True
                return

    def send(self, kind: str, body: Any) -> None:
        """Hand the worker a task.

        Raises:
            WorkerGoneError: the worker has ended.
            pickle.PicklingError, RecursionError, ...: ``body`` cannot be pickled
                (nothing was sent).
        """
        data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
        if self._broken or not self.process.is_alive():
            raise _died()
        self._outbox.put(data)
        self._waiting += 1

    def answer(self, kind: str, *, wait: float | None = None) -> Any:
        """The answer to the oldest task of ``kind``, skipping older tasks' answers.

        Raises:
            WorkerGoneError: the worker ended.
            TimeoutError: no answer came within ``wait`` seconds (default :data:`STALL`).
            Exception: what the task raised in the worker.
        """
        deadline = time.monotonic() + (STALL if wait is None else wait)
        while True:
            if self._waiting <= 0:  # pragma: no cover - a bug of the caller
                raise RuntimeError(f"no {kind} task is waiting for an answer")
            if self._torn:
                raise _died()
            try:
                ready = self._answers.poll(max(0.0, min(_POLL, deadline - time.monotonic())))
                self._torn = ready  # until the whole answer is read
                data = self._answers.recv_bytes() if ready else None
                self._torn = False
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
        self._outbox.put(None)
        self._writer.join(timeout=_STOP_WAIT if wait else 0.0)
        if not self._writer.is_alive():  # else it writes to a worker about to be killed
            with contextlib.suppress(OSError):
                self._tasks.close()  # the end of tasks: the worker ends
        self.process.join(timeout=_STOP_WAIT if wait else 0.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=_STOP_WAIT)
        self._writer.join(timeout=_STOP_WAIT)  # its write fails now that the worker is gone
        with contextlib.suppress(OSError):
            self._tasks.close()
            self._answers.close()
