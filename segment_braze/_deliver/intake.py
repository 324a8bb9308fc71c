"""The input of ``BrazeClient(processes=N)``, read on a thread of its own.

The caller's iterable may be slow (a socket, a queue) or fast (a file): the
pool takes whatever has arrived, a chunk at a time, without a slow input
holding back what already came.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["Intake"]

_READ_POLL: Final = 0.02


class Intake:
    """The input, read on a thread of its own, at most two chunks ahead.

    A slow input must not hold back what has already arrived.
    """

    def __init__(self, items: Iterable[tuple[int, Any]], *, chunk: int) -> None:
        self._items = items
        self._chunk = chunk
        self._lock = threading.Lock()
        self._taken: list[tuple[int, Any]] = []
        self._ended = False
        self.error: BaseException | None = None
        self._wake = threading.Event()
        self._room = threading.Event()
        threading.Thread(target=self._read, name="segment-braze-input", daemon=True).start()

    def _read(self) -> None:
        try:
            for entry in self._items:
                with self._lock:
                    self._taken.append(entry)
                    size = len(self._taken)
                if size == self._chunk:
                    self._wake.set()
                while size >= 2 * self._chunk:
                    # The timeout bounds the one race (collected just before
                    # the clear) to a short pause.
                    self._room.wait(_READ_POLL)
                    self._room.clear()
                    with self._lock:
                        size = len(self._taken)
        except BaseException as err:  # noqa: BLE001 (re-raised by translated(), as send() would)
            self.error = err
        finally:
            with self._lock:
                self._ended = True
            self._wake.set()

    def collect(self, timeout: float) -> tuple[list[tuple[int, Any]], bool, bool]:
        """What was read so far, after up to ``timeout`` for a chunk's worth.

        Returns:
            The entries, whether the input has ended (nothing more will come),
            and whether the wait timed out (the input is slow).
        """
        slow = not self._wake.wait(timeout)
        self._wake.clear()
        with self._lock:
            taken, self._taken = self._taken, []
            ended = self._ended
        self._room.set()
        return taken, ended, slow
