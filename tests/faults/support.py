"""What the fault tests share: bounded runs, inputs, and a record of every outcome."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import requests

from segment_braze import BrazeClient, DeliveryReport, Settings

KEY: Final = "rk-faults-3b1f-SECRET-never-shown"  # made up, searched for
TIME: Final = "2024-05-01T12:00:00Z"
# Retries and timeouts small enough for a whole test to take well under a second
# or two; the bounds below only guard against hangs.
QUICK: Final[dict[str, Any]] = {
    "connect_timeout": 0.5,
    "read_timeout": 0.5,
    "request_timeout": 1.0,
    "max_attempts": 2,
    "backoff_initial": 0.01,
    "backoff_max": 0.02,
    "seed": 3,
    "linger": 5.0,
}
# The two transports: the default (urllib3 directly, no session given) and a
# requests.Session passed in. The autouse fixture in conftest.py sets `transport`
# for each test, so every fault is driven through both.
TRANSPORTS: Final = ("lean", "requests")
transport: str = TRANSPORTS[0]
# Translation processes for the clients built here (set by the `processes` fixture).
processes: int = 1
# The guard against a hang: far above what any of these sends needs.
BOUND: Final = 20.0


def settings_for(url: str) -> Settings:
    """Settings with the secret key, pointing at ``url``."""
    return Settings(rest_api_key=KEY, rest_endpoint=url, allow_custom_endpoint=True)


def track(mid: str, *, user: str = "u1") -> dict[str, Any]:
    """A Segment track call."""
    return {
        "type": "track",
        "userId": user,
        "event": "Signed Up",
        "timestamp": TIME,
        "messageId": mid,
    }


def tracks(count: int, *, users: int = 5) -> list[dict[str, Any]]:
    """``count`` track calls over ``users`` users."""
    return [track(f"m{n}", user=f"u{n % users}") for n in range(count)]


def bounded(call: Callable[[], Any], *, bound: float = BOUND) -> Any:
    """Run ``call`` on a thread; fail if it does not end within ``bound`` seconds.

    Returns what it returned, or the exception it raised (not re-raised, so the
    test can look at it).
    """
    ended: list[Any] = []

    def run() -> None:
        try:
            ended.append(call())
        except BaseException as err:  # noqa: BLE001 (handed to the test to inspect)
            ended.append(err)

    thread = threading.Thread(target=run, name="bounded-send", daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"the call did not end within {bound} s"
    [result] = ended
    return result


class Outcomes:
    """Records every on_outcome and on_failure call, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[tuple[str, str, str | None]] = []
        self.dead: list[tuple[str, str]] = []

    def on_outcome(self, message: Any, outcome: str, reason: str | None) -> None:
        """Record a message's fate."""
        with self.lock:
            self.outcomes.append((message["messageId"], outcome, reason))

    def on_failure(self, message: Any, reason: str) -> None:
        """Record a dead letter."""
        with self.lock:
            self.dead.append((message["messageId"], reason))

    def hooks(self) -> dict[str, Any]:
        """The hooks to give BrazeClient."""
        return {"on_outcome": self.on_outcome, "on_failure": self.on_failure}

    def decided_once(self, messages: list[dict[str, Any]]) -> bool:
        """Whether every message got exactly one outcome."""
        counted = Counter(mid for mid, _, _ in self.outcomes)
        return counted == Counter(message["messageId"] for message in messages)

    def reasons(self, outcome: str = "failed") -> set[str]:
        """The distinct reasons given with ``outcome``."""
        return {reason or "" for _, fate, reason in self.outcomes if fate == outcome}


def client_options(**options: Any) -> dict[str, Any]:
    """Quick options plus ``options``, with a fresh session when the transport is requests."""
    merged = {**QUICK, **options}
    if processes > 1:
        merged.setdefault("processes", processes)
    if transport == "requests" and "session" not in merged:
        merged["session"] = requests.Session()
    return merged


def send(url: str, messages: list[dict[str, Any]], **options: Any) -> DeliveryReport:
    """Send with a fresh client to ``url`` (quick timeouts unless overridden)."""
    merged = client_options(**options)
    try:
        with BrazeClient(settings_for(url), **merged) as client:
            return client.send(messages)
    finally:
        if "session" not in options and "session" in merged:
            merged["session"].close()


def accounted(report: DeliveryReport, messages: list[dict[str, Any]]) -> bool:
    """Whether the report accounts for every message exactly once."""
    ids = [f.message_id for f in report.failed] + [mid for mid, _ in report.dropped]
    return report.total == len(messages) and len(set(ids)) == len(ids)
