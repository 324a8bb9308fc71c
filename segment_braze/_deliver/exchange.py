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

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Protocol

import attrs
import requests

from segment_braze._deliver.faults import FAULTS, TIMED_OUT, AnswerTooLong, describe_fault
from segment_braze.exceptions import TransportError

__all__ = [
    "MAX_ANSWER_BYTES",
    "TIMED_OUT",
    "Opened",
    "Poster",
    "Reply",
    "RequestsTransport",
    "Transport",
    "describe_fault",
]

# Braze's answers are a few hundred bytes; its own payload limit is 4 MB.
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_CHUNK: Final = 64 * 1024
# Seconds a courier thread waits for its worker's next request before it ends.
_IDLE: Final = 2.0
_REDACTED: Final = b"[REST API key]"
# Shorter "keys" (tests' "k") would blank out innocent text.
_MIN_SECRET: Final = 8


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


@attrs.frozen(kw_only=True)
class Opened:
    """An answer whose status and headers have arrived; its body is still to come.

    The one shape both transports (``requests`` and the lean urllib3 one) hand to
    the exchange, which reads the body under the cap and the deadline.

    Attributes:
        status: the HTTP status.
        headers: the headers (case-insensitive).
        chunks: the body, decoded per ``Content-Encoding``, in chunks.
        raw: urllib3's response under it, whose socket is shut at the deadline.
        close: closes the answer; ``True`` when it was read whole (the connection
            then goes back to the pool), ``False`` to drop the connection.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    chunks: Iterator[bytes] = attrs.field(repr=False)
    raw: Any = attrs.field(repr=False)
    close: Callable[[bool], None] = attrs.field(repr=False)


class Transport(Protocol):
    """Opens POST exchanges: ``requests`` (a caller's session) or the lean one."""

    def opener(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> Callable[[], Opened]:
        """Prepare a POST of ``body`` to ``url``; the callable sends it (on a courier).

        Preparing may raise what the libraries raise for a bad URL or proxy
        setting; sending raises what they raise for a failed exchange.
        """
        ...  # pragma: no cover - a protocol

    def close(self) -> None:
        """Close the connections it holds."""
        ...  # pragma: no cover - a protocol


def _read_capped(opened: Opened, limit: int) -> bytes:
    declared = opened.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLong(limit)
    body = bytearray()
    for chunk in opened.chunks:
        body += chunk
        if len(body) > limit:
            raise AnswerTooLong(limit)
    return bytes(body)


def _interrupt(opened: Opened) -> None:
    """Stop a read of ``opened`` blocked in another thread."""
    shutdown = getattr(opened.raw, "shutdown", None)
    if shutdown is None:  # pragma: no cover - urllib3 before 2.3
        return
    try:
        shutdown()
    except (ValueError, RuntimeError, OSError):
        # The answer was read whole meanwhile, or the socket is already gone.
        return


class _Exchange:
    """One request, run by a courier; the worker may abandon it at the deadline."""

    def __init__(self, send: Callable[[], Opened], limit: int) -> None:
        self._send = send
        self._limit = limit
        self._lock = threading.Lock()
        self._opened: Opened | None = None
        self._abandoned = False
        self._reply: Reply | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        opened = None
        whole = False
        try:
            opened = self._send()
            with self._lock:
                if self._abandoned:
                    return
                self._opened = opened
            body = _read_capped(opened, self._limit)
            whole = True
            self._reply = Reply(status=opened.status, headers=opened.headers, body=body)
        except BaseException as err:  # noqa: BLE001 (handed to the waiting worker)
            self._error = err
        finally:
            if opened is not None:
                # After a whole read this only returns the connection to the pool.
                opened.close(whole)

    def abandon(self) -> None:
        """The deadline passed: stop the read if the answer has begun."""
        with self._lock:
            self._abandoned = True
            opened = self._opened
        if opened is not None:
            _interrupt(opened)

    def reply(self) -> Reply:
        """The answer, or the exchange's fault raised as ``TransportError``."""
        error = self._error
        if error is not None:
            if isinstance(error, (*FAULTS, AnswerTooLong)):
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


class RequestsTransport:
    """Exchanges through a ``requests.Session``, preparing what repeats only once.

    ``Session.post`` prepares every request from scratch: it merges the session's
    headers, auth and hooks and reads the proxy and CA-bundle environment each
    time, about half of its CPU cost per request. A sender posts thousands of
    bodies to the same few URLs with the same headers, so this prepares a template
    per URL once and sends a copy with each body, through ``Session.send`` (the
    same adapters, hooks and connection pool as ``Session.post``). The environment
    is read when a URL is first posted to; cookies set by an answer are not sent
    back (Braze's REST API sets none that matter).
    """

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._templates: dict[str, tuple[requests.PreparedRequest, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RequestsTransport(urls={sorted(self._templates)!r})"

    def _template(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        template = self._templates.get(url)
        if template is None:
            with self._lock:
                request = requests.Request("POST", url, headers=dict(headers))
                prepared = self.session.prepare_request(request)
                environment = dict(
                    self.session.merge_environment_settings(url, {}, None, None, None)
                )
                # The answer is read by the exchange, in chunks, under the cap.
                environment["stream"] = True
                template = self._templates.setdefault(url, (prepared, environment))
        return template

    def opener(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> Callable[[], Opened]:
        """Prepare a POST through the session (see :class:`Transport`)."""
        template, environment = self._template(url, headers)
        request = template.copy()
        request.prepare_body(body, None)
        session = self.session

        def send() -> Opened:
            response = session.send(request, timeout=timeout, allow_redirects=False, **environment)
            return Opened(
                status=response.status_code,
                headers=response.headers,
                chunks=response.iter_content(_CHUNK),
                raw=response.raw,
                close=lambda _whole: response.close(),
            )

        return send

    def close(self) -> None:
        """Close the session."""
        self.session.close()


class Poster:
    """POSTs bodies through a transport, each within the total deadline.

    Args:
        transport: what carries the exchanges (a ``requests.Session`` is wrapped
            in a :class:`RequestsTransport`).
        headers: headers for every request (the Authorization header among them).
        timeout: ``(connect, read)`` seconds, for each socket operation.
        deadline: seconds for the whole exchange, from connecting to the last
            byte of the answer.
        max_answer_bytes: the most of an answer read (decoded); more is a fault.
    """

    def __init__(
        self,
        transport: requests.Session | Transport,
        *,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float = 120.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if isinstance(transport, requests.Session):
            transport = RequestsTransport(transport)
        self.transport: Transport = transport
        self._headers = dict(headers)
        # An answer that quotes the request (a debugging proxy's error page) must
        # not carry the key into a reason: it is blanked out of every answer.
        token = self._headers.get("Authorization", "").removeprefix("Bearer ").strip()
        self._secret = token.encode() if len(token) >= _MIN_SECRET else b""
        self._timeout = timeout
        self._deadline = deadline
        self._limit = max_answer_bytes
        self._couriers = threading.local()

    def __repr__(self) -> str:
        # The headers hold the REST API key: never shown.
        return f"Poster(transport={self.transport!r})"

    def __call__(self, url: str, body: bytes) -> Reply:
        """POST ``body`` to ``url`` and read the answer within the deadline.

        Raises:
            TransportError: no whole answer came: its message names the cause.
        """
        try:
            send = self.transport.opener(url, body, self._headers, self._timeout)
        except FAULTS as err:
            raise TransportError(describe_fault(err)) from err
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
