"""Naming what went wrong in an HTTP exchange, without quoting the exception.

An exception's own text can quote headers, and the Authorization header holds
the REST API key: a fault is named from its type and its chain's types only.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from typing import Final

import requests
import urllib3

__all__ = ["FAULTS", "TIMED_OUT", "AnswerTooLong", "describe_fault"]

TIMED_OUT: Final = "timed out waiting for Braze (it may have processed the request)"

# What requests, urllib3 and the layers below them raise for a failed exchange.
FAULTS: Final = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


class AnswerTooLong(Exception):  # noqa: N818 (internal signal, described below)
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
        if isinstance(error, AnswerTooLong):
            return f"answer too long: over {_megabytes(error.limit)}, not read further"
    for matches, text in _RULES:
        for error in chain:
            if matches(error):
                if text.startswith("timed out"):
                    return text
                return f"{text} ({type(error).__name__})"
    # Something else: the innermost exception is the most telling.
    return f"connection error: {type(chain[-1]).__name__}"
