"""The REST API key never appears in logs, reports, exceptions or reprs.

Each scenario sends through BrazeStandIn with every logger captured at DEBUG,
then searches everything a user could print for the key.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from segment_braze import (
    AuthenticationError,
    BrazeClient,
    DeliveryReport,
    Settings,
    SettingsError,
)
from segment_braze.testing import BrazeStandIn, Fault

SECRET = "rk-7f3a9c1e-0d4b-4e2a-SECRET-do-not-log"  # noqa: S105 (made up, searched for)
TIME = "2024-05-01T12:00:00Z"
FAST: dict[str, Any] = {"backoff_initial": 0.001, "backoff_max": 0.01, "seed": 5}


def track(n: int) -> dict[str, Any]:
    """A track call."""
    return {
        "type": "track",
        "userId": f"u{n % 3}",
        "event": "Signed Up",
        "timestamp": TIME,
        "messageId": f"m{n}",
    }


def settings_for(url: str) -> Settings:
    """Settings with the secret key pointing at ``url``."""
    return Settings(rest_api_key=SECRET, rest_endpoint=url, allow_custom_endpoint=True)


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in accepting the secret key."""
    with BrazeStandIn(api_key=SECRET) as stand_in:
        yield stand_in


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger, the library's and requests', captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_secret_absent(*things: object) -> None:
    """Neither str() nor repr() of anything given contains the key."""
    for thing in things:
        assert SECRET not in str(thing)
        assert SECRET not in repr(thing)


def assert_logs_clean(logs: pytest.LogCaptureFixture) -> None:
    """The captured log, formatted and raw, never holds the key."""
    assert any(r.name == "segment_braze" and r.levelno == logging.DEBUG for r in logs.records)
    assert SECRET not in logs.text
    for record in logs.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)
        assert SECRET not in (record.exc_text or "")


def assert_report_clean(report: DeliveryReport) -> None:
    """The report and every reason in it are free of the key."""
    assert_secret_absent(report, *report.failed, *report.dropped)
    assert all(SECRET not in f.reason for f in report.failed)


def assert_error_clean(error: BaseException) -> None:
    """An exception's text, arguments and formatted traceback are free of the key."""
    assert_secret_absent(error, *error.args)
    assert SECRET not in "".join(traceback.format_exception(error))


class TestSendWithFaults:
    """Retries, failures and invalid messages keep the key out of sight."""

    def test_retries_and_failures(self, braze, logs):
        """503s, a dropped connection, a 429, a timeout, partial errors, a 400."""
        for fault in (
            Fault.status(503),
            Fault.disconnect(),
            Fault.rate_limited(retry_after=0),
            Fault.timeout_after_receipt(delay=1.0),
            Fault.partial_errors(("events", 0)),
            Fault.status(400),
        ):
            braze.inject(fault)
        messages: list[Any] = [track(n) for n in range(200)]
        messages.append({"type": "track", "userId": "u1", "messageId": "bad"})
        with BrazeClient(settings_for(braze.url), workers=1, read_timeout=0.3, **FAST) as client:
            report = client.send(messages)
            assert_secret_absent(client)
        assert report.total == len(messages)
        assert report.failed
        assert report.dropped
        assert report.retries >= 4
        assert_report_clean(report)
        assert_logs_clean(logs)
        assert_secret_absent(braze, braze.requests, *braze.requests)

    def test_gave_up(self, braze, logs):
        """Retries exhausted: the failure reasons and warnings are free of the key."""
        braze.inject(Fault.status(502), times=3)
        with BrazeClient(settings_for(braze.url), max_attempts=3, **FAST) as client:
            report = client.send([track(0)])
        assert len(report.failed) == 1
        assert_report_clean(report)
        assert_logs_clean(logs)

    def test_nothing_listening(self, logs):
        """Connection errors (nothing listens) name no key."""
        with BrazeStandIn(api_key=SECRET) as braze:
            url = braze.url
        with BrazeClient(settings_for(url), max_attempts=2, **FAST) as client:
            report = client.send([track(0), track(1)])
        assert {f.status for f in report.failed} == {None}
        assert_report_clean(report)
        assert_logs_clean(logs)


class TestAuthentication:
    """401 and 403: the AuthenticationError and its report are free of the key."""

    def test_wrong_key(self, logs):
        """Braze refuses the key: neither the error nor the log repeats it."""
        with BrazeStandIn(api_key="another-workspace-key") as braze:
            with (
                BrazeClient(settings_for(braze.url), **FAST) as client,
                pytest.raises(AuthenticationError) as caught,
            ):
                client.send([track(n) for n in range(100)])
            assert_secret_absent(braze, *braze.requests)
        assert_error_clean(caught.value)
        assert_report_clean(caught.value.report)
        assert_logs_clean(logs)

    @pytest.mark.parametrize("code", [401, 403])
    def test_refused(self, braze, logs, code):
        """An injected 401 or 403: the error, its report and the log are clean."""
        braze.inject(Fault.status(code))
        with (
            BrazeClient(settings_for(braze.url), **FAST) as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            client.send([track(n) for n in range(100)])
        assert caught.value.status == code
        assert_error_clean(caught.value)
        assert_report_clean(caught.value.report)
        assert_logs_clean(logs)


class TestReprs:
    """Objects that hold or see the key do not show it."""

    def test_settings_and_client(self, braze):
        """Settings and BrazeClient reprs leave the key out."""
        settings = settings_for(braze.url)
        with BrazeClient(settings) as client:
            assert_secret_absent(settings, client)

    def test_recorded_requests(self, braze):
        """The stand-in's recorded requests hide the Authorization header in repr."""
        with BrazeClient(settings_for(braze.url), **FAST) as client:
            client.send([track(0)])
        [request] = braze.requests
        assert request.headers["authorization"] == f"Bearer {SECRET}"  # kept for tests
        assert SECRET not in repr(request)
        assert SECRET not in repr(braze.requests)

    def test_settings_error(self):
        """A SettingsError about a missing endpoint does not name the key."""
        with pytest.raises(SettingsError) as caught:
            BrazeClient(Settings(rest_api_key=SECRET))
        assert_error_clean(caught.value)
