"""Transport faults through real loopback sockets: each is retried, then fails with its cause.

Every send here returns a report (nothing escapes) within a bound, every message
is accounted for once, and the reason names what went wrong.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from segment_braze import BrazeClient, DeliveryReport
from segment_braze._deliver.exchange import describe_fault

from .hostile import Conn, answer, head, refused_url, serving
from .support import KEY, Outcomes, accounted, bounded, send, settings_for, tracks

pytestmark = pytest.mark.usefixtures("processes")

JSON = "Content-Type: application/json"
SUCCESS = b'{"message":"success"}'
# A success padded to 200 bytes: trickled, it takes 10 s, far past request_timeout.
SLOW_SUCCESS = SUCCESS[:-1] + b" " * (200 - len(SUCCESS)) + b"}"


def close_before_answer(conn: Conn) -> None:
    """Read the request, then close without a word."""
    conn.read_request()


def reset_before_answer(conn: Conn) -> None:
    """Read the request, then reset the connection."""
    conn.read_request()
    conn.reset()


def close_mid_body(conn: Conn) -> None:
    """Promise 100 bytes, send 11, close."""
    conn.read_request()
    conn.send(head("201 Created", "Content-Length: 100", JSON) + SUCCESS[:11])


def reset_mid_body(conn: Conn) -> None:
    """Promise 100 bytes, send 11, reset."""
    conn.read_request()
    conn.send(head("201 Created", "Content-Length: 100", JSON) + SUCCESS[:11])
    conn.reset()


def chunked_cut_short(conn: Conn) -> None:
    """A chunked answer that stops before its last chunk."""
    conn.read_request()
    conn.send(head("201 Created", "Transfer-Encoding: chunked", JSON) + b"b\r\n" + SUCCESS[:11])


def trickle_body(conn: Conn) -> None:
    """Headers at once, then the body a byte at a time."""
    conn.read_request()
    conn.send(head("201 Created", f"Content-Length: {len(SLOW_SUCCESS)}", JSON))
    conn.trickle(SLOW_SUCCESS)


def trickle_head(conn: Conn) -> None:
    """The status line and headers a byte at a time."""
    conn.read_request()
    conn.trickle(head("201 Created", f"Content-Length: {len(SUCCESS)}", JSON) + SUCCESS)


def hang(conn: Conn) -> None:
    """Read the request and never answer."""
    conn.read_request()
    conn.hang()


def garbage(conn: Conn) -> None:
    """Answer bytes that are not HTTP."""
    conn.read_request()
    conn.send(b"\x00\xff\xfe\x80 this is not HTTP \x01\r\n\r\n")


def declared_too_long(conn: Conn) -> None:
    """Announce a 5 MB answer."""
    conn.read_request()
    conn.send(head("201 Created", f"Content-Length: {5 * 1024 * 1024}", JSON) + b"{")
    conn.hang()


def chunked_too_long(conn: Conn) -> None:
    """Send over 4 MB of chunked answer, no length announced."""
    conn.read_request()
    conn.send(head("201 Created", "Transfer-Encoding: chunked", JSON))
    chunk = b"x" * 65536
    for _ in range(80):  # 5 MB
        conn.send(b"10000\r\n" + chunk + b"\r\n")
    conn.send(b"0\r\n\r\n")


def gzip_bomb_free_but_undecodable(conn: Conn) -> None:
    """Claim gzip, send plain bytes."""
    answer("201 Created", b"this is not gzip at all", JSON, "Content-Encoding: gzip")(conn)


FAULTS = [
    (close_before_answer, "connection error: the server closed the connection without answering"),
    (reset_before_answer, "connection error: the connection was reset"),
    (close_mid_body, "connection error: the answer was cut short"),
    (reset_mid_body, "connection error: the connection was reset"),
    (chunked_cut_short, "connection error: the answer was cut short"),
    (trickle_body, "timed out waiting for Braze: no whole answer within request_timeout (1 s)"),
    (trickle_head, "timed out waiting for Braze: no whole answer within request_timeout (1 s)"),
    (hang, "timed out waiting for Braze (it may have processed the request)"),
    (garbage, "connection error: the answer is not HTTP"),
    (declared_too_long, "answer too long: over 4 MB"),
    (chunked_too_long, "answer too long: over 4 MB"),
    (gzip_bomb_free_but_undecodable, "Content-Encoding could not be decoded"),
]


def assert_failed_after_retries(
    report: Any, messages: list[dict[str, Any]], outcomes: Outcomes, reason: str
) -> None:
    """Every message failed once, status None, the reason naming the cause and the attempts."""
    assert isinstance(report, DeliveryReport), report
    assert accounted(report, messages)
    assert outcomes.decided_once(messages)
    assert report.delivered == 0
    assert len(report.failed) == len(messages)
    for failure in report.failed:
        assert reason in failure.reason
        assert "(gave up after 2 attempts)" in failure.reason
        assert failure.status is None


class TestEveryFault:
    """Each transport fault: retried like a dropped connection, then failed with its cause."""

    @pytest.mark.parametrize(
        ("behaviour", "reason"), FAULTS, ids=[behaviour.__name__ for behaviour, _ in FAULTS]
    )
    def test_retried_then_failed(self, behaviour, reason):
        """Two attempts reach the server; send() returns a report naming the cause."""
        messages = tracks(12)
        outcomes = Outcomes()
        with serving(behaviour) as server:
            # One worker: one request per attempt.
            report = bounded(lambda: send(server.url, messages, workers=1, **outcomes.hooks()))
            assert server.requests == 2
        assert_failed_after_retries(report, messages, outcomes, reason)

    def test_connection_refused(self):
        """Nothing listening: connection refused, retried, failed."""
        messages = tracks(3)
        outcomes = Outcomes()
        report = bounded(lambda: send(refused_url(), messages, **outcomes.hooks()))
        assert_failed_after_retries(
            report, messages, outcomes, "connection error: connection refused"
        )

    def test_request_timeout_ends_a_trickle_promptly(self):
        """A trickle is cut at request_timeout per attempt, not at the answer's end."""
        messages = tracks(2)
        with serving(trickle_body) as server:
            report = bounded(
                lambda: send(server.url, messages, max_attempts=1, request_timeout=0.3), bound=5.0
            )
        assert isinstance(report, DeliveryReport)
        assert "request_timeout (0.3 s)" in report.failed[0].reason

    def test_a_later_good_answer_delivers(self):
        """A fault on the first attempt only: the retry delivers."""
        attempts = []

        def once_broken(conn: Conn) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                garbage(conn)
            else:
                answer("201 Created", SUCCESS, JSON)(conn)

        messages = tracks(5)
        with serving(once_broken) as server:
            report = bounded(lambda: send(server.url, messages))
        assert report.delivered == 5
        assert report.retries == 1


class TestAnythingRequestsRaises:
    """Whatever requests or urllib3 raise, nothing escapes send()."""

    def test_session_hook_raising_a_requests_error(self):
        """A RequestException from the caller's session is a transport fault, retried, failed."""
        session = requests.Session()

        def hook(response: requests.Response, **kwargs: Any) -> None:
            response.close()  # requests would leave the socket open behind a raising hook
            raise requests.exceptions.RetryError("the session gave up")

        session.hooks["response"].append(hook)
        messages = tracks(4)
        outcomes = Outcomes()
        with serving(answer("201 Created", SUCCESS, JSON)) as server:
            report = bounded(
                lambda: send(server.url, messages, session=session, **outcomes.hooks())
            )
        session.close()
        assert_failed_after_retries(report, messages, outcomes, "connection error: RetryError")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1, as PEM files."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed, so no test certificate can be made")
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            openssl,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


@pytest.fixture(scope="module")
def self_signed(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    key, cert = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class TestTls:
    """TLS is verified: a certificate no CA vouches for is a failure, never delivered."""

    def test_untrusted_certificate(self, self_signed):
        """A self-signed certificate fails verification: retried, failed, named."""
        messages = tracks(3)
        outcomes = Outcomes()
        with serving(answer("201 Created", SUCCESS, JSON), tls=self_signed) as server:
            report = bounded(lambda: send(server.url, messages, **outcomes.hooks()))
            assert server.requests == 0
        assert_failed_after_retries(
            report, messages, outcomes, "connection error: TLS certificate verification failed"
        )

    @pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
    def test_ca_bundle_from_the_environment(self, self_signed, tls_files, monkeypatch, variable):
        """A CA bundle named in the environment (as requests reads it) is trusted."""
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(variable, str(tls_files[1]))
        messages = tracks(3)
        with serving(answer("201 Created", SUCCESS, JSON), tls=self_signed) as server:
            report = bounded(lambda: send(server.url, messages))
        assert report.delivered == 3

    def test_tls_to_a_plain_server(self):
        """https:// to a server that speaks plain HTTP: a TLS failure, named."""
        messages = tracks(2)
        outcomes = Outcomes()

        def plain(conn: Conn) -> None:
            conn.send(head("400 Bad Request", "Content-Length: 0"))

        with serving(plain) as server:
            url = server.url.replace("http://", "https://")
            report = bounded(lambda: send(url, messages, **outcomes.hooks()))
        assert_failed_after_retries(report, messages, outcomes, "connection error: TLS failed")


def wrapped(inner: BaseException) -> requests.ConnectionError:
    """``inner`` wrapped the way requests wraps urllib3's errors."""
    url = "/users/track"
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, url, inner))


class TestNames:
    """Faults no loopback server can produce (DNS, a proxy) are named the same way."""

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (
                wrapped(
                    urllib3.exceptions.NameResolutionError(
                        "rest.iad-01.braze.com",
                        None,
                        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                    )
                ),
                "connection error: the host name could not be resolved (DNS) (NameResolutionError)",
            ),
            (
                requests.exceptions.ProxyError(
                    urllib3.exceptions.ProxyError("Unable to connect to proxy", OSError("403"))
                ),
                "connection error: the proxy failed (ProxyError)",
            ),
            (
                requests.ConnectTimeout("connect timed out"),
                "timed out connecting to Braze",
            ),
            (
                wrapped(urllib3.exceptions.LocationParseError("bad:host")),
                "connection error: LocationParseError",
            ),
            (OSError(f"something about Bearer {KEY}"), "connection error: OSError"),
        ],
        ids=["dns", "proxy", "connect-timeout", "anything-else", "plain-oserror"],
    )
    def test_named(self, error, reason):
        """describe_fault names the cause in words of ours, never the exception's text."""
        assert describe_fault(error) == reason
        assert KEY not in describe_fault(error)


class TestOptions:
    """request_timeout is checked when the client is made."""

    @pytest.mark.parametrize("value", [0, -1.0, float("nan")])
    def test_request_timeout_must_be_positive(self, value):
        """Zero, negative or NaN request_timeout raises ValueError."""
        with pytest.raises(ValueError, match="request_timeout"):
            BrazeClient(settings_for("http://127.0.0.1:9"), request_timeout=value)
