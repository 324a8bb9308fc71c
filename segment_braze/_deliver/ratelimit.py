"""A client-side rate limiter shared by all sender workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allow at most ``limit`` acquisitions in any ``period`` seconds.

    A sliding log of the last ``limit`` start times, shared by all workers, so
    the request rate never exceeds Braze's limit (for example 3,000 requests per
    3 seconds on ``/users/track``). ``pause_until`` holds every worker back after
    Braze answers 429.

    Args:
        limit: acquisitions allowed in any ``period``.
        period: the window, in seconds.
        clock: the monotonic clock (injected by tests).
        sleep: how to wait (injected by tests). By default a wait ends early when
            the ``stop`` event given to :meth:`acquire` is set.
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: list[float] = []
        self._next = 0  # ring index into _starts once it is full
        self._paused_until = 0.0

    def acquire(self, *, stop: threading.Event | None = None) -> bool:
        """Block until one more request may start, then count it.

        Args:
            stop: when set, stop waiting (a stopped send must not sit out a long
                429 pause).

        Returns:
            ``True`` once counted, ``False`` if ``stop`` was set first.
        """
        while True:
            if stop is not None and stop.is_set():
                return False
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    if len(self._starts) < self.limit:
                        self._starts.append(now)
                        return True
                    # The oldest of the last `limit` starts must be a full
                    # period old before another may start.
                    wait = self._starts[self._next] + self.period - now
                    if wait <= 0:
                        self._starts[self._next] = now
                        self._next = (self._next + 1) % self.limit
                        return True
            if self._sleep is not None:
                self._sleep(wait)
            elif stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)

    def pause_for(self, seconds: float) -> None:
        """Hold every acquisition for ``seconds`` from now (after Braze's 429)."""
        self.pause_until(self._clock() + seconds)

    def pause_until(self, deadline: float) -> None:
        """Hold every acquisition until ``deadline`` (a ``clock`` reading)."""
        with self._lock:
            self._paused_until = max(self._paused_until, deadline)
