"""One HTTP exchange with Braze: a total deadline, a capped answer, every fault named.

``requests`` bounds each socket operation (``connect_timeout``, ``read_timeout``)
but not the exchange: a server that trickles a byte a second never times out.
So each exchange runs on another thread (a courier, one per worker thread) while
the worker waits for it at most ``request_timeout``. At the deadline the worker
gives up: it shuts the answer's socket if the answer has begun
(``HTTPResponse.shutdown``, urllib3 2.3), leaves that courier to end on its own
and takes a new one for its next request. The answer is read at most
``max_answer_bytes`` (decoded) into memory.

Whatever goes wrong below HTTP (``requests``, ``urllib3``, ``http.client``,
``ssl`` and socket errors) becomes one :class:`~segment_braze.TransportError`
whose message names the cause in words, never the exception's own text (which
can quote headers, and the Authorization header holds the REST API key).
"""

from __future__ import annotations

import http.client
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import requests
import urllib3

from segment_braze.exceptions import TransportError

__all__ = ["MAX_ANSWER_BYTES", "TIMED_OUT", "Poster", "Reply", "describe_fault"]

# Braze's answers are a few hundred bytes; its own payload limit is 4 MB.
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_CHUNK: Final = 64 * 1024
# Seconds a courier thread waits for its worker's next request before it ends.
_IDLE: Final = 2.0
TIMED_OUT: Final = "timed out waiting for Braze (it may have processed the request)"
_REDACTED: Final = b"[REST API key]"
# Shorter "keys" (tests' "k") would blank out innocent text.
_MIN_SECRET: Final = 8

# What requests, urllib3 and the layers below them raise for a failed exchange.
_FAULTS: Final = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


@attrs.frozen(kw_only=True)
class Reply:
    """An HTTP answer, read whole within the deadline.

    Attributes:
        status: the HTTP status.
        headers: the headers (case-insensitive, as ``requests`` gives them).
        body: the body, decoded per ``Content-Encoding``, at most the cap.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


class _AnswerTooLong(Exception):  # noqa: N818 (internal signal, described below)
    """The answer is longer than the cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"over {limit} bytes")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    found: list[BaseException] = []
    todo = [err]
    while todo and len(found) < 32:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        todo.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))
    return found


def _is_connect_timeout(err: BaseException) -> bool:
    # urllib3's NewConnectionError (refused, DNS) is a ConnectTimeoutError too.
    return isinstance(err, requests.ConnectTimeout) or (
        isinstance(err, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(err, urllib3.exceptions.NewConnectionError)
    )


# The first rule that matches anything in the chain names the fault; the more
# specific causes come first.
_RULES: Final[tuple[tuple[Callable[[BaseException], bool], str], ...]] = (
    (
        lambda e: isinstance(e, urllib3.exceptions.NameResolutionError | socket.gaierror),
        "connection error: the host name could not be resolved (DNS)",
    ),
    (lambda e: isinstance(e, ConnectionRefusedError), "connection error: connection refused"),
    (
        lambda e: isinstance(e, ssl.SSLCertVerificationError),
        "connection error: TLS certificate verification failed",
    ),
    (
        lambda e: isinstance(
            e, requests.exceptions.SSLError | urllib3.exceptions.SSLError | ssl.SSLError
        ),
        "connection error: TLS failed",
    ),
    (
        lambda e: isinstance(e, requests.exceptions.ProxyError | urllib3.exceptions.ProxyError),
        "connection error: the proxy failed",
    ),
    (_is_connect_timeout, "timed out connecting to Braze"),
    (
        lambda e: isinstance(
            e, requests.Timeout | urllib3.exceptions.ReadTimeoutError | TimeoutError
        ),
        TIMED_OUT,
    ),
    (
        lambda e: isinstance(
            e, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError
        ),
        "connection error: the answer's Content-Encoding could not be decoded",
    ),
    (
        lambda e: isinstance(e, http.client.RemoteDisconnected),
        "connection error: the server closed the connection without answering",
    ),
    (
        lambda e: isinstance(e, ConnectionResetError | ConnectionAbortedError | BrokenPipeError),
        "connection error: the connection was reset",
    ),
    (
        lambda e: isinstance(
            e, http.client.IncompleteRead | requests.exceptions.ChunkedEncodingError
        ),
        "connection error: the answer was cut short",
    ),
    (
        lambda e: isinstance(e, http.client.HTTPException | urllib3.exceptions.HeaderParsingError),
        "connection error: the answer is not HTTP",
    ),
)


def describe_fault(err: BaseException) -> str:
    """Name the cause of a failed exchange in one line, without quoting the exception.

    Args:
        err: what ``requests`` (or a layer below) raised.

    Returns:
        For example ``"connection error: connection refused (ConnectionRefusedError)"``;
        a timeout reads as :data:`TIMED_OUT`.
    """
    chain = _chain(err)
    for error in chain:
        if isinstance(error, _AnswerTooLong):
            return f"answer too long: over {_megabytes(error.limit)}, not read further"
    for matches, text in _RULES:
        for error in chain:
            if matches(error):
                if text.startswith("timed out"):
                    return text
                return f"{text} ({type(error).__name__})"
    # Something else: the innermost exception is the most telling.
    return f"connection error: {type(chain[-1]).__name__}"


def _read_capped(response: requests.Response, limit: int) -> bytes:
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _AnswerTooLong(limit)
    body = bytearray()
    for chunk in response.iter_content(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise _AnswerTooLong(limit)
    return bytes(body)


def _interrupt(response: requests.Response) -> None:
    """Stop a read of ``response`` blocked in another thread."""
    shutdown = getattr(response.raw, "shutdown", None)
    if shutdown is None:  # pragma: no cover - urllib3 before 2.3
        return
    try:
        shutdown()
    except (ValueError, RuntimeError, OSError):
        # The answer was read whole meanwhile, or the socket is already gone.
        return


class _Exchange:
    """One request, run by a courier; the worker may abandon it at the deadline."""

    def __init__(self, send: Callable[[], requests.Response], limit: int) -> None:
        self._send = send
        self._limit = limit
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._abandoned = False
        self._reply: Reply | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        response = None
        try:
            response = self._send()
            with self._lock:
                if self._abandoned:
                    return
                self._response = response
            body = _read_capped(response, self._limit)
            self._reply = Reply(status=response.status_code, headers=response.headers, body=body)
        except BaseException as err:  # noqa: BLE001 (handed to the waiting worker)
            self._error = err
        finally:
            if response is not None:
                # After a whole read this only returns the connection to the pool.
                response.close()

    def abandon(self) -> None:
        """The deadline passed: stop the read if the answer has begun."""
        with self._lock:
            self._abandoned = True
            response = self._response
        if response is not None:
            _interrupt(response)

    def reply(self) -> Reply:
        """The answer, or the exchange's fault raised as ``TransportError``."""
        error = self._error
        if error is not None:
            if isinstance(error, (*_FAULTS, _AnswerTooLong)):
                raise TransportError(describe_fault(error)) from error
            raise error  # not a transport fault: a bug, for the worker to report
        if self._reply is None:  # pragma: no cover - run() sets one or the other
            raise TransportError("connection error: no answer")
        return self._reply


class _Courier:
    """A thread that carries one worker's exchanges, one at a time.

    A new thread per request would cost more CPU than the request itself on a
    fast network; a courier costs two hand-offs through C-level queues. It ends
    after ``_IDLE`` seconds without work (its worker has gone), or after an
    exchange its worker abandoned at the deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Exchange] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[_Exchange] = queue.SimpleQueue()
        self._open = True
        threading.Thread(target=self._loop, name="segment-braze-request", daemon=True).start()

    def carry(self, job: _Exchange, *, deadline: float) -> bool | None:
        """Run ``job`` and wait for it at most ``deadline`` seconds.

        Returns:
            ``True`` when it ended in time, ``False`` when the deadline passed
            (this courier is then retired), ``None`` when this courier had
            already ended (take another).
        """
        with self._lock:
            if not self._open:
                return None
            self._jobs.put(job)
        try:
            self._done.get(timeout=deadline)
        except queue.Empty:
            with self._lock:
                self._open = False
            return False
        return True

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._open = False
                        return
                continue
            job.run()
            self._done.put(job)
            with self._lock:
                if not self._open:
                    return


class Poster:
    """POSTs bodies through a ``requests.Session``, preparing what repeats only once.

    ``Session.post`` prepares every request from scratch: it merges the session's
    headers, auth and hooks and reads the proxy and CA-bundle environment each
    time, about half of its CPU cost per request. A sender posts thousands of
    bodies to the same few URLs with the same headers, so this prepares a template
    per URL once and sends a copy with each body, through ``Session.send`` (the
    same adapters, hooks and connection pool as ``Session.post``). The environment
    is read when a URL is first posted to; cookies set by an answer are not sent
    back (Braze's REST API sets none that matter).

    Args:
        session: the session to send through.
        headers: headers for every request (the Authorization header among them).
        timeout: ``(connect, read)`` seconds, for each socket operation.
        deadline: seconds for the whole exchange, from connecting to the last
            byte of the answer.
        max_answer_bytes: the most of an answer read (decoded); more is a fault.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float = 120.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._headers = dict(headers)
        # An answer that quotes the request (a debugging proxy's error page) must
        # not carry the key into a reason: it is blanked out of every answer.
        token = self._headers.get("Authorization", "").removeprefix("Bearer ").strip()
        self._secret = token.encode() if len(token) >= _MIN_SECRET else b""
        self._timeout = timeout
        self._deadline = deadline
        self._limit = max_answer_bytes
        self._templates: dict[str, tuple[requests.PreparedRequest, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._couriers = threading.local()

    def __repr__(self) -> str:
        # The headers hold the REST API key: never shown.
        return f"Poster(urls={sorted(self._templates)!r})"

    def _template(self, url: str) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        template = self._templates.get(url)
        if template is None:
            with self._lock:
                request = requests.Request("POST", url, headers=self._headers)
                prepared = self._session.prepare_request(request)
                environment = dict(
                    self._session.merge_environment_settings(url, {}, None, None, None)
                )
                # The answer is read here, in chunks, under the cap.
                environment["stream"] = True
                template = self._templates.setdefault(url, (prepared, environment))
        return template

    def __call__(self, url: str, body: bytes) -> Reply:
        """POST ``body`` to ``url`` and read the answer within the deadline.

        Raises:
            TransportError: no whole answer came: its message names the cause.
        """
        try:
            template, environment = self._template(url)
            request = template.copy()
            request.prepare_body(body, None)
        except _FAULTS as err:
            raise TransportError(describe_fault(err)) from err
        session, timeout = self._session, self._timeout

        def send() -> requests.Response:
            return session.send(request, timeout=timeout, allow_redirects=False, **environment)

        exchange = _Exchange(send, self._limit)
        courier: _Courier | None = getattr(self._couriers, "courier", None)
        ended = None if courier is None else courier.carry(exchange, deadline=self._deadline)
        if ended is None:
            courier = self._couriers.courier = _Courier()
            ended = courier.carry(exchange, deadline=self._deadline)
        if not ended:
            self._couriers.courier = None
            exchange.abandon()
            raise TransportError(
                f"timed out waiting for Braze: no whole answer within request_timeout "
                f"({self._deadline:g} s) (it may have processed the request)"
            )
        return self._redacted(exchange.reply())

    def _redacted(self, reply: Reply) -> Reply:
        secret = self._secret
        if not secret:
            return reply
        body, headers = reply.body, reply.headers
        if secret in body:
            body = body.replace(secret, _REDACTED)
        text = secret.decode(errors="replace")
        if any(text in value for value in headers.values()):
            headers = requests.structures.CaseInsensitiveDict(
                {name: value.replace(text, _REDACTED.decode()) for name, value in headers.items()}
            )
        return attrs.evolve(reply, body=body, headers=headers)
