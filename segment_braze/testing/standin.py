"""BrazeStandIn: a real HTTP server on loopback that answers like Braze's REST API."""

from __future__ import annotations

import copy
import hmac
import json
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import attrs

from segment_braze.testing import processing
from segment_braze.testing.faults import (
    RANDOM_MIX,
    RANDOM_MIX_ENTRIES,
    Fault,
    ResetStyle,
    check_reset_style,
    fault_answer,
    message,
    reset_header,
)
from segment_braze.testing.records import IgnoredObject, RecordedRequest
from segment_braze.testing.rules import ARRAYS, ENTRY_ARRAYS, UserKey
from segment_braze.testing.server import Answer, Body, LoopbackServer, Request

__all__ = ["BrazeStandIn"]

TRACK: Final = "/users/track"
PATHS: Final = frozenset({TRACK, *ENTRY_ARRAYS})
"""The Braze endpoints the stand-in serves."""

# Braze: 3,000 requests per 3 seconds on /users/track; shown in X-RateLimit-Limit
# by an injected 429 when no rate_limit is configured.
_DEFAULT_LIMIT: Final = 3000


@attrs.define(kw_only=True)
class _Queued:
    fault: Fault
    path: str | None
    remaining: int


_INVALID: Final = object()


def _parse_json(raw: bytes) -> Any:
    """Parse a body as strict JSON (no NaN or Infinity), or return _INVALID."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _INVALID


class BrazeStandIn:
    """A local HTTP server that answers like Braze's REST user-data endpoints.

    Use it as a context manager (or call :meth:`start` and :meth:`close`);
    point the client under test at :attr:`url`. Every option is keyword-only.

    Args:
        api_key: the REST API key to accept in ``Authorization: Bearer``.
        legacy_limits: judge /users/track's 75-object limit per array (legacy
            accounts) instead of in total (current accounts).
        max_body_bytes: bodies larger than this get 413 (Braze: 4 MB).
        latency: seconds added before every answer.
        rate_limit: ``(requests, window_seconds)``; beyond it answer 429 with
            ``X-RateLimit-*`` headers. None: no limit.
        rate_limit_reset_style: ``X-RateLimit-Reset`` as a UTC ``"epoch"`` or
            ``"seconds"`` remaining.
        random_faults: probability, per request to a Braze path, of a fault drawn
            from: 429 (both header styles), 500, 502, 503, a dropped connection,
            a timeout after receipt, partial errors (/users/track).
        seed: seed of the random faults: the same requests, one at a time, meet
            the same faults.
        post_receipt_delay: seconds a timeout-after-receipt holds the answer.

    Raises:
        ValueError: for an empty key or out-of-range numbers.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        legacy_limits: bool = False,
        max_body_bytes: int = 4 * 1024 * 1024,
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        rate_limit_reset_style: ResetStyle = "epoch",
        random_faults: float = 0.0,
        seed: int = 0,
        post_receipt_delay: float = 2.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if max_body_bytes < 1 or latency < 0 or post_receipt_delay < 0:
            raise ValueError("max_body_bytes must be >= 1 and delays >= 0")
        if not 0.0 <= random_faults <= 1.0:
            raise ValueError(f"random_faults is a probability, not {random_faults}")
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ValueError("rate_limit is (requests >= 1, window seconds > 0)")
        check_reset_style(rate_limit_reset_style)
        self._api_key = api_key
        self._legacy_limits = legacy_limits
        self._max_body_bytes = max_body_bytes
        self._latency = latency
        self._rate_limit = rate_limit
        self._reset_style: ResetStyle = rate_limit_reset_style
        self._random_faults = random_faults
        self._seed = seed
        self._post_receipt_delay = post_receipt_delay
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: LoopbackServer | None = None
        self._clear()

    def _clear(self) -> None:
        self._requests: list[RecordedRequest] = []
        self._accepted: dict[str, list[Any]] = {name: [] for name in (*ARRAYS, *ENTRY_ARRAYS)}
        self._ignored: list[IgnoredObject] = []
        self._directory = processing.UserDirectory()
        self._faults: list[_Queued] = []
        self._rng = random.Random(self._seed)  # noqa: S311 (fault injection, not security)
        self._window: tuple[float, int] | None = None  # (start, requests counted)

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not running"
        return f"<BrazeStandIn {where}>"

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on 127.0.0.1, on a free port.

        Returns:
            The stand-in itself.

        Raises:
            RuntimeError: if it is already running.
        """
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._stopping.clear()
        self._server = LoopbackServer(exchange=self._exchange, max_body_bytes=self._max_body_bytes)
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving promptly, abandoning answers still being delayed."""
        server, self._server = self._server, None
        if server is not None:
            self._stopping.set()  # wakes every delayed answer
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``, without a trailing slash.

        Raises:
            RuntimeError: if the stand-in is not running.
        """
        if self._server is None:
            raise RuntimeError("the stand-in is not running: use it as a context manager")
        return self._server.url

    # -- ledgers ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order of arrival (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted_attributes(self) -> list[dict[str, Any]]:
        """The attributes objects Braze processed, in order (a copy)."""
        return self._ledger("attributes")

    @property
    def accepted_events(self) -> list[dict[str, Any]]:
        """The event objects Braze processed, in order (a copy)."""
        return self._ledger("events")

    @property
    def accepted_purchases(self) -> list[dict[str, Any]]:
        """The purchase objects Braze processed, in order (a copy)."""
        return self._ledger("purchases")

    def accepted_entries(self, path: str) -> list[Any]:
        """The entries accepted on one of the other user endpoints, in order.

        Args:
            path: ``"/users/identify"`` (``aliases_to_identify`` and
                ``emails_to_identify`` items),
                ``"/users/merge"`` (``merge_updates`` items), ``"/users/delete"``
                (the deleted identifiers) or ``"/users/alias/new"``
                (``user_aliases`` items).

        Returns:
            A copy of the ledger.

        Raises:
            ValueError: for another path (use ``accepted_attributes``, ... for
                /users/track).
        """
        if path not in ENTRY_ARRAYS:
            raise ValueError(f"no entry ledger for {path!r}; one of {sorted(ENTRY_ARRAYS)}")
        return self._ledger(path)

    def _ledger(self, name: str) -> list[Any]:
        with self._lock:
            return list(self._accepted[name])

    @property
    def ignored(self) -> list[IgnoredObject]:
        """Valid objects Braze answered as processed but silently dropped."""
        with self._lock:
            return list(self._ignored)

    @property
    def profiles(self) -> dict[UserKey, dict[str, Any]]:
        """The users that exist, with their merged attributes (a copy).

        Keys name the user: ``("external_id", "u1")``, ``("user_alias", name,
        label)``, ``("braze_id", id)``, ``("email", address)`` or ``("phone", number)``.
        """
        with self._lock:
            return copy.deepcopy(self._directory.profiles)

    def reset(self) -> None:
        """Forget requests, ledgers, users, queued faults and the rate window.

        The random-fault generator restarts from ``seed``.
        """
        with self._lock:
            self._clear()

    # -- faults -------------------------------------------------------------------

    def inject(self, fault: Fault, *, times: int = 1, path: str | None = None) -> None:
        """Queue a one-shot fault for the next matching requests.

        Queued faults are consumed in order: each request takes the first one
        whose path matches, before any random fault is drawn.

        Args:
            fault: the fault (see :class:`Fault`).
            times: how many requests it applies to.
            path: only requests to this path; None matches any path, except
                that partial errors wait for /users/track.

        Raises:
            ValueError: for ``times`` below 1 or a path not starting with "/".
        """
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        if path is None and fault.kind == "partial_errors":
            path = TRACK
        with self._lock:
            self._faults.append(_Queued(fault=fault, path=path, remaining=times))

    def _next_fault(self, route: str) -> Fault | None:
        with self._lock:
            for queued in self._faults:
                if queued.path in (None, route):
                    queued.remaining -= 1
                    if not queued.remaining:
                        self._faults.remove(queued)
                    return queued.fault
            if route in PATHS and self._random_faults and self._rng.random() < self._random_faults:
                return self._rng.choice(RANDOM_MIX if route == TRACK else RANDOM_MIX_ENTRIES)
        return None

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # -- answering ----------------------------------------------------------------

    def _exchange(self, request: Request, read_body: Callable[[], Body | None]) -> Answer | None:
        fault = self._next_fault(urlsplit(request.target).path)
        if fault is not None and fault.kind == "disconnect":
            with self._lock:
                self._record(request, body=None, status=None, fault=fault)
            return None  # nothing read, nothing processed
        body = read_body()
        if body is None:  # the client went away mid-body
            return None
        if fault is not None and fault.kind == "slow":
            self._pause(fault.delay or 0.0)
        parsed = _parse_json(body.raw) if body.raw else _INVALID
        with self._lock:
            answer, fault = self._decide(request, body, parsed, fault)
            self._record(
                request,
                body=None if parsed is _INVALID else parsed,
                status=answer.status,
                fault=fault,
            )
        # The objects are processed and recorded by now: a client that times out
        # below cannot know whether Braze kept them.
        delay = self._latency
        if fault is not None and fault.kind == "timeout_after_receipt":
            delay += self._post_receipt_delay if fault.delay is None else fault.delay
        self._pause(delay)
        return answer

    def _record(
        self, request: Request, *, body: Any, status: int | None, fault: Fault | None
    ) -> None:
        # Callers hold the lock, so a record and its ledger entries appear together.
        entry = RecordedRequest(
            method=request.method,
            path=request.target,
            headers=request.headers,
            body=body,
            status=status,
            received_at=request.received_at,
            fault=fault,
        )
        self._requests.append(entry)

    def _decide(
        self, request: Request, body: Body, parsed: Any, fault: Fault | None
    ) -> tuple[Answer, Fault | None]:
        limit = self._rate_limit[0] if self._rate_limit else _DEFAULT_LIMIT
        replaced = fault_answer(fault, limit=limit) if fault is not None else None
        if replaced is not None:
            return replaced, fault
        route = urlsplit(request.target).path
        if request.method != "POST":
            text = f"Method {request.method} not allowed: Braze's user endpoints take POST"
            return message(405, text, (("Allow", "POST"),)), fault
        if route not in PATHS:
            if route.rstrip("/") in PATHS:
                # Braze answers 403 to a REST path with a trailing slash.
                return message(403, "Forbidden: remove the trailing slash from the path"), fault
            return message(404, f"Not found: {route} is not a Braze user endpoint"), fault
        problem = self._auth_problem(request.headers.get("authorization"))
        if problem is not None:
            return message(401, f"Invalid API key: {problem}"), fault
        headers, limited = self._count_request()
        if limited:
            return message(429, "Rate limit exceeded", headers), fault
        media_type = request.headers.get("content-type", "").partition(";")[0]
        if media_type.strip().lower() != "application/json":
            return message(415, "Content-Type must be application/json", headers), fault
        if body.length_problem == "missing":
            return message(411, "Content-Length is required", headers), fault
        if body.length_problem == "invalid":
            return message(400, "Invalid Content-Length", headers), fault
        if body.too_large:
            text = f"Payload too large: at most {self._max_body_bytes} bytes per request"
            return message(413, text, headers), fault
        if not isinstance(parsed, dict):
            return message(400, "Request body must be a JSON object", headers), fault
        outcome, fault = self._process(route, parsed, fault)
        return Answer(status=outcome.status, payload=outcome.payload, headers=headers), fault

    def _process(
        self, route: str, body: dict[str, Any], fault: Fault | None
    ) -> tuple[processing.Outcome, Fault | None]:
        if route != TRACK:
            outcome = processing.process_entries(route, body, directory=self._directory)
        else:
            if fault is not None and fault.kind == "partial_errors" and not fault.objects:
                fault = attrs.evolve(fault, objects=self._draw_failing(body))
            failing = frozenset(fault.objects) if fault is not None else frozenset()
            outcome = processing.process_track(
                body, directory=self._directory, legacy_limits=self._legacy_limits, failing=failing
            )
        for ledger, obj in outcome.accepted:
            self._accepted[ledger].append(obj)
        self._ignored.extend(
            IgnoredObject(input_array=array, index=index, data=obj, reason=reason)
            for array, index, obj, reason in outcome.ignored
        )
        return outcome, fault

    def _draw_failing(self, body: dict[str, Any]) -> tuple[tuple[str, int], ...]:
        positions = [
            (name, index)
            for name in ARRAYS
            if isinstance(body.get(name), list)
            for index in range(len(body[name]))
        ]
        # A random partial error leaves at least one object processed: failing
        # the only object would be a 400, a different fault.
        if len(positions) < 2:
            return ()
        return (self._rng.choice(positions),)

    def _auth_problem(self, header: str | None) -> str | None:
        # The presented key is never echoed: it may be a real key sent by mistake.
        if header is None:
            return "send 'Authorization: Bearer <REST API key>'"
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return "the Authorization header must be 'Bearer <REST API key>'"
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            return "the key is not valid for this workspace"
        return None

    def _count_request(self) -> tuple[tuple[tuple[str, str], ...], bool]:
        if self._rate_limit is None:
            return (), False
        limit, window = self._rate_limit
        now = time.monotonic()
        if self._window is None or now - self._window[0] >= window:
            self._window = (now, 0)
        start, count = self._window[0], self._window[1] + 1
        self._window = (start, count)
        headers = (
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(limit - count, 0))),
            ("X-RateLimit-Reset", reset_header(start + window - now, self._reset_style)),
        )
        return headers, count > limit
