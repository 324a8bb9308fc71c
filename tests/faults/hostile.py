"""A small hostile HTTP server on 127.0.0.1: it misbehaves in one chosen way.

Each behaviour is a function of one accepted connection (a :class:`Conn`); the
server runs it for every connection until the test stops the server, which ends
any behaviour still waiting (a hang, a trickle) and closes its socket. Raw
sockets, so it can do what no well-behaved HTTP server would.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Final

# How long one hostile connection may live: a guard, far above any test's needs.
_GUARD: Final = 30.0
# Between two trickled bytes: under the tests' read_timeout (0.5 s), so only the
# total request_timeout can end the exchange.
TRICKLE: Final = 0.05


class Conn:
    """One accepted connection, with the moves a hostile server makes."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.request = b""

    def read_request(self) -> bytes:
        """Read one request (head and Content-Length body); return it whole."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        self.request = head + b"\r\n\r\n" + body
        return self.request

    def send(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.sock.sendall(data)

    def trickle(self, data: bytes) -> None:
        """Write one byte every TRICKLE seconds until done or stopped."""
        for index in range(len(data)):
            if self.stop.wait(TRICKLE):
                return
            self.sock.sendall(data[index : index + 1])

    def hang(self) -> None:
        """Say nothing until the test stops the server."""
        self.stop.wait(_GUARD)

    def reset(self) -> None:
        """Abort the connection: the client sees a TCP reset, not a clean close."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Behaviour = Callable[[Conn], None]


def head(status: str, *headers: str) -> bytes:
    """A status line and headers, ending with the blank line."""
    lines = [f"HTTP/1.1 {status}", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(status: str, body: bytes, *headers: str) -> Behaviour:
    """Answer every request with ``status``, ``headers`` and ``body`` (Content-Length set)."""

    def behave(conn: Conn) -> None:
        conn.read_request()
        conn.send(head(status, f"Content-Length: {len(body)}", *headers) + body)

    return behave


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, behaviour: Behaviour, tls: ssl.SSLContext | None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.connections: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.requests = 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        server = self.server
        sock: socket.socket = self.request
        sock.settimeout(_GUARD)
        with server.lock:
            server.connections.append(sock)
            server.threads.append(threading.current_thread())
        if server.tls is not None:
            try:
                sock = server.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate: that is the test
            # The TLS socket took over the descriptor: stop() must close it.
            with server.lock:
                server.connections.append(sock)
        conn = Conn(sock, server.stop)
        original = conn.read_request

        def counted() -> bytes:
            request = original()
            with server.lock:
                server.requests += 1
            return request

        conn.read_request = counted  # type: ignore[method-assign]
        # The client may give up first (a timeout, a reset): that is the point.
        with contextlib.suppress(OSError):
            server.behaviour(conn)


class HostileServer:
    """Serve ``behaviour`` on 127.0.0.1 until :meth:`stop` (or the ``with`` block ends).

    Attributes:
        url: ``http://127.0.0.1:<port>`` (``https`` when serving TLS).
    """

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(behaviour, tls)
        port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def requests(self) -> int:
        """Requests read so far (each attempt of the client is one)."""
        with self._server.lock:
            return self._server.requests

    def start(self) -> HostileServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every behaviour, close every connection, stop serving (bounded)."""
        server = self._server
        server.stop.set()
        server.shutdown()
        server.server_close()
        with server.lock:
            connections, threads = list(server.connections), list(server.threads)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(5.0)
        self._thread.join(5.0)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> Iterator[HostileServer]:
    """Run a hostile server for the ``with`` block."""
    with HostileServer(behaviour, tls=tls) as server:
        yield server


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
