"""The HTTP plumbing of :mod:`segment_braze.testing`: a threaded loopback server.

It knows HTTP/1.1 (keep-alive, ``Content-Length``, clients that give up, prompt
shutdown) and nothing of Braze: each request is handed to an *exchange*
function, which reads the body if it wants, decides, and answers or drops the
connection.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal

import attrs

__all__ = ["Answer", "Body", "Exchange", "LoopbackServer", "Request"]

_CHUNK: Final = 1 << 16


@attrs.frozen(kw_only=True)
class Request:
    """The head of a request: what arrives before the body.

    Attributes:
        method: the HTTP method.
        target: the request target as sent (path and query).
        headers: header names in lower case, values as sent.
        received_at: seconds since the epoch.
    """

    method: str
    target: str
    headers: dict[str, str]
    received_at: float


@attrs.frozen(kw_only=True)
class Body:
    """A request body as read from the socket.

    Attributes:
        raw: the bytes (empty when too large or not readable).
        too_large: it was longer than the limit and was drained unread.
        length_problem: ``"missing"`` (a POST without ``Content-Length``) or
            ``"invalid"``; the connection is closed after the answer.
    """

    raw: bytes = b""
    too_large: bool = False
    length_problem: Literal["missing", "invalid"] | None = None


@attrs.frozen(kw_only=True)
class Answer:
    """A JSON answer.

    Attributes:
        status: the HTTP status.
        payload: the JSON body.
        headers: extra headers, in order.
    """

    status: int
    payload: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


Exchange = Callable[[Request, Callable[[], Body | None]], Answer | None]
"""Decide one request: given its head and a function that reads its body (None
when the client went away), return the answer, or None to drop the connection."""


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 and a free port, run in a daemon thread.

    Args:
        exchange: decides each request.
        max_body_bytes: bodies longer than this are drained, not kept.
    """

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections from a burst of
    # parallel clients, which then wait a second to retry their SYN.
    request_queue_size = 128

    def __init__(self, *, exchange: Exchange, max_body_bytes: int) -> None:
        self.exchange = exchange
        self.max_body_bytes = max_body_bytes
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"BrazeStandIn {self.url}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def server_bind(self) -> None:
        """Bind without HTTPServer's host-name lookup, which can stall without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the socket and cut open connections."""
        stopper = threading.Thread(target=self.shutdown, daemon=True)
        stopper.start()
        # shutdown() waits for the serving loop's next poll; a connection wakes
        # it at once (the handler sees an empty request and ends).
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.server_port), timeout=1).close()
        stopper.join()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        """Remember open connections so :meth:`stop` can cut them.

        Args:
            connection: the client socket.
            open_: True when it opens, False when it closes.
        """
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that gave up; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Braze's load balancers do
    server_version = "BrazeStandIn"
    sys_version = ""
    timeout = 30  # an abandoned keep-alive connection must not hold a thread for ever
    server: LoopbackServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def version_string(self) -> str:
        """Name the server without Python's version."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: the stand-in records requests itself."""

    def do_POST(self) -> None:
        """Hand any request to the exchange (it answers 405 to all but POST)."""
        request = Request(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            received_at=time.time(),
        )
        body: list[Body | None] = []

        def read_body() -> Body | None:
            if not body:
                body.append(self._read_body())
            return body[0]

        answer = self.server.exchange(request, read_body)
        # Unread or unreadable bodies leave the connection out of step: close it.
        if answer is None or not body or body[0] is None or body[0].length_problem:
            self.close_connection = True
        if answer is not None:
            self._send(answer)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST  # noqa: N815

    def _read_body(self) -> Body | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return Body(length_problem="missing" if self.command == "POST" else None)
        try:
            length = int(length_text)
        except ValueError:
            return Body(length_problem="invalid")
        if length < 0:
            return Body(length_problem="invalid")
        try:
            if length <= self.server.max_body_bytes:
                data = self.rfile.read(length)
                return Body(raw=data) if len(data) == length else None
            # Too large: drain it, so the client reads the answer instead of a reset.
            while length:
                chunk = self.rfile.read(min(length, _CHUNK))
                if not chunk:
                    return None
                length -= len(chunk)
        except OSError:
            return None
        return Body(too_large=True)

    def _send(self, answer: Answer) -> None:
        data = json.dumps(answer.payload).encode()
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":  # HTTP: an answer to HEAD has no body
                self.wfile.write(data)
        except OSError:
            # The client gave up waiting (its read timeout): a broken pipe here.
            self.close_connection = True
