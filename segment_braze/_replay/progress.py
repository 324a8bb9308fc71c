"""Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise.

The bar's position is the bytes read of the inputs (compressed bytes for gzip),
so its ETA holds for archives of any size; its postfix counts the messages done
and their rate. Without a terminal (a log file, CI) a one-line status is
printed every ``every`` seconds instead, since a bar would fill the log.

A ticker thread refreshes the display, so it moves on while the reading thread
waits for the sender (Braze slow, rate limits, retries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

__all__ = ["Progress"]

_BAR_INTERVAL: Final = 0.2
_BAR_FORMAT: Final = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}"
)
_COUNT_FORMAT: Final = "{desc}: {n_fmt} messages read [{elapsed}]{postfix}"

#: Returns how many messages are done, and a few words on how they went.
Status = Callable[[], tuple[int, str]]


def _size(count: float) -> str:
    return str(tqdm.format_sizeof(count, suffix="B", divisor=1024))


def _interval(seconds: float) -> str:
    return str(tqdm.format_interval(seconds))


class Progress:
    """Shows how far a command has got.

    Args:
        label: the command's name, shown first.
        total: the size of the inputs in bytes, or ``None`` when unknown (stdin).
        position: returns the bytes read so far (or, without a total, the
            messages read).
        status: returns the messages done and a few words on them.
        stream: where to write (stderr).
        quiet: show nothing.
        every: seconds between status lines when ``stream`` is not a terminal.
        clock: the time source, in seconds.
    """

    def __init__(
        self,
        *,
        label: str,
        total: int | None,
        position: Callable[[], int],
        status: Status,
        stream: TextIO,
        quiet: bool = False,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = total
        self._position = position
        self._status = status
        self._stream = stream
        self._every = every
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._bar: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.mode = "off" if quiet else "bar" if _is_terminal(stream) else "lines"
        if self.mode == "bar":
            known = total is not None
            self._bar = tqdm(
                total=total,
                desc=label,
                file=stream,
                unit="B" if known else "",
                unit_scale=known,
                unit_divisor=1024,
                dynamic_ncols=True,
                bar_format=_BAR_FORMAT if known else _COUNT_FORMAT,
                mininterval=_BAR_INTERVAL,
            )

    def start(self) -> Progress:
        """Start the ticker thread that refreshes the display."""
        if self.mode != "off" and self._ticker is None:
            self._ticker = threading.Thread(
                target=self._tick_loop, name="segment-braze-progress", daemon=True
            )
            self._ticker.start()
        return self

    def _tick_loop(self) -> None:
        while not self._stop.wait(_BAR_INTERVAL):
            self.tick()

    def tick(self) -> None:
        """Update the display if it is due."""
        if self.mode == "off":
            return
        with self._lock:
            now = self._clock()
            interval = _BAR_INTERVAL if self.mode == "bar" else self._every
            if now - self._last < interval:
                return
            self._last = now
            if self._bar is not None:
                self._update_bar(now)
            elif self.mode == "lines":
                self._stream.write(self.line(now) + "\n")
                self._stream.flush()

    def _update_bar(self, now: float) -> None:
        bar = self._bar
        bar.update(self._position() - bar.n)
        done, words = self._status()
        rate = done / max(now - self._started, 1e-9)
        bar.set_postfix_str(f"{done:,} messages done, {rate:,.0f}/s{_tail(words)}")

    def line(self, now: float) -> str:
        """The one-line status printed when stderr is not a terminal."""
        elapsed = now - self._started
        done, words = self._status()
        rate = done / max(elapsed, 1e-9)
        parts = [f"{done:,} messages done ({rate:,.0f}/s){_tail(words)}"]
        if self._total:
            read = self._position()
            parts.append(f"{_size(read)} of {_size(self._total)} read ({read / self._total:.0%})")
            if read:
                parts.append(f"ETA {_interval(elapsed * (self._total - read) / read)}")
        parts.append(f"elapsed {_interval(elapsed)}")
        return f"{self._label}: " + ", ".join(parts)

    def note(self, text: str) -> None:
        """Print one line (an invalid input, a warning) without breaking the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=self._stream)
            else:
                self._stream.write(text + "\n")
                self._stream.flush()

    def close(self) -> None:
        """Stop the ticker; finish the bar at its last position."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            if self._bar is not None:
                self._update_bar(self._clock())
                self._bar.close()
                self._bar = None


def _tail(words: str) -> str:
    return f", {words}" if words else ""


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
