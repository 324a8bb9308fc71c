"""One translation child of ``BrazeClient(processes=N)`` and its two pipes.

A plain ``python -m segment_braze._deliver.pool`` process (no fork of a process
that runs threads), talking length-prefixed pickles over its standard input and
output. Its environment holds neither ``BRAZE_REST_API_KEY`` nor any variable
holding the key. A thread writes the chunks handed to it, so the thread that
hands them over never blocks on a full pipe; another reads its answers into a
queue. A child that dies, or does not answer within :data:`STALL` seconds, is a
``SenderError``; ending one waits at most :data:`_CLOSE_WAIT` seconds per step,
then kills it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from typing import IO, Any, Final

from segment_braze._settings import Settings
from segment_braze.exceptions import SenderError

__all__ = ["BROKEN", "STALL", "UNPICKLABLE", "UNREAD", "Child", "read_value", "write_value"]

# Seconds without any answer from a child before it is given up on. Translation
# bounds its work per message, so a healthy child answers a chunk in well under
# a second.
STALL: Final = 60.0
_POLL: Final = 0.5
_CLOSE_WAIT: Final = 5.0  # seconds each step of ending a child may take
_HEADER: Final = struct.Struct("!I")
_KEY_VARIABLE: Final = "BRAZE_REST_API_KEY"
BROKEN: Final = "not sent: a translation process ended unexpectedly"
UNREAD: Final = "unread"
"""A child's answer for a chunk it could not unpickle: the parent prepares it."""
UNPICKLABLE: Final = (pickle.PicklingError, RecursionError, ValueError, TypeError, AttributeError)
"""What pickling raises for a value it cannot carry (a message nested too deeply)."""


def write_value(stream: IO[bytes], value: Any) -> None:
    """Write ``value`` as a length-prefixed pickle."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_value(stream: IO[bytes]) -> Any:
    """Read one length-prefixed pickle; ``EOFError`` at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 (our own child's answer)


class Child:
    """One child process, a thread that writes its chunks and one that reads its answers.

    The chunks are written by a thread of their own, so the thread that hands
    them over never blocks on a full pipe: a child that stops reading (stopped,
    stuck) is found by :meth:`answer` within :data:`STALL` seconds.
    """

    def __init__(self, settings: Settings, secret: str, workers: int) -> None:
        env = {
            name: value
            for name, value in os.environ.items()
            if name != _KEY_VARIABLE and not (secret and secret in value)
        }
        # The child imports this package as the parent does, from the same paths.
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segment_braze._deliver.pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._listen, name="segment-braze-pool", daemon=True).start()
        self._writer = threading.Thread(
            target=self._write_chunks, name="segment-braze-pool-chunks", daemon=True
        )
        self._writer.start()
        self.send((settings, workers))

    def _write_chunks(self) -> None:
        """Write what :meth:`send` hands over, then close the child's input (its end)."""
        stdin = self.process.stdin
        try:
            while stdin is not None and (data := self._outbox.get()) is not None:
                stdin.write(data)
                stdin.flush()
            if stdin is not None:
                stdin.close()
        except (OSError, ValueError):
            pass  # the child has gone: answer() says so

    def _listen(self) -> None:
        stdout = self.process.stdout
        try:
            while stdout is not None:
                self.answers.put(read_value(stdout))
        except (EOFError, OSError, pickle.UnpicklingError, ValueError):
            self.answers.put(None)  # the child has gone

    def send(self, value: Any) -> None:
        """Hand the child a value to write (pickled here: what cannot be is raised here)."""
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self._outbox.put(_HEADER.pack(len(data)) + data)

    def answer(self) -> list[tuple[Any, ...]] | str:
        """The child's units (or ``UNREAD``); ``SenderError`` if it died or stalled."""
        waited = 0.0
        while True:
            try:
                answer = self.answers.get(timeout=_POLL)
            except queue.Empty:
                waited += _POLL
                if waited >= STALL:
                    self.kill()
                    raise SenderError(f"{BROKEN} (it did not answer within {STALL:g} s)") from None
                continue
            if answer is None:
                raise SenderError(f"{BROKEN} (exit status {self.process.poll()})")
            result: list[tuple[Any, ...]] | str = answer
            return result

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        """End the child: end of input, then a bounded wait, then a kill."""
        self._outbox.put(None)
        self._writer.join(timeout=_CLOSE_WAIT)
        try:
            self.process.wait(timeout=_CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # reaped when it ends
                self.process.wait(timeout=_CLOSE_WAIT)
        # A write blocked on a child that stopped reading fails once it is gone.
        self._writer.join(timeout=_CLOSE_WAIT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not self._writer.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
