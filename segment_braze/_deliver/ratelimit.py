"""A client-side rate limiter shared by all sender workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["MARGIN_PERCENT", "RateLimiter"]

# Braze counts a request when it arrives; the limiter counts it when it starts.
# Keeping 1% below the limit, over a window 1% longer than Braze's, absorbs a
# spread of up to 1% of the period in how long requests take to arrive (30 ms of
# Braze's 3 s window) without drawing 429s at the ceiling.
MARGIN_PERCENT: Final = 1


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
        burst: float | None = None,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        # Pacing (when ``burst`` is given): starts spaced ``period / limit`` apart,
        # up to ``burst`` seconds early to make up for a late wake-up. A burst of
        # `limit` starts at once would arrive at Braze bunched by the network and
        # its load balancer; paced starts need a much larger spread in delivery
        # times before any window of arrivals holds more than ``limit``.
        self._interval = period / limit
        self._burst = burst
        self._theoretical = 0.0  # when the next start is due, when pacing
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: list[float] = []
        self._next = 0  # ring index into _starts once it is full
        self._paused_until = 0.0

    @classmethod
    def with_margin(
        cls,
        limit: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> RateLimiter:
        """A limiter that keeps under Braze's ``limit`` per ``period`` as Braze counts it.

        It allows at most 99% of ``limit`` (at least one) in any window 1% longer
        than ``period``, so a request that arrives up to ``period / 100`` later
        or earlier than its neighbours still keeps every ``period`` window of
        arrivals at or under 99% of the limit.

        Raises:
            ValueError: ``limit`` below 1 or ``period`` not positive.
        """
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        kept = max(1, limit * (100 - MARGIN_PERCENT) // 100)
        longer = period * (100 + MARGIN_PERCENT) / 100
        # Up to a quarter of the margin may come early, to catch up a late wake.
        burst = period * MARGIN_PERCENT / 400
        return cls(kept, longer, clock=clock, sleep=sleep, burst=burst)

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
                if wait <= 0 and self._burst is not None:
                    wait = self._theoretical - self._burst - now
                if wait <= 0:
                    if len(self._starts) < self.limit:
                        self._starts.append(now)
                        self._paced(now)
                        return True
                    # The oldest of the last `limit` starts must be a full
                    # period old before another may start.
                    wait = self._starts[self._next] + self.period - now
                    if wait <= 0:
                        self._starts[self._next] = now
                        self._next = (self._next + 1) % self.limit
                        self._paced(now)
                        return True
            if self._sleep is not None:
                self._sleep(wait)
            elif stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)

    def _paced(self, now: float) -> None:
        self._theoretical = max(self._theoretical, now) + self._interval

    def pause_for(self, seconds: float) -> None:
        """Hold every acquisition for ``seconds`` from now (after Braze's 429)."""
        self.pause_until(self._clock() + seconds)

    def pause_until(self, deadline: float) -> None:
        """Hold every acquisition until ``deadline`` (a ``clock`` reading)."""
        with self._lock:
            self._paused_until = max(self._paused_until, deadline)
