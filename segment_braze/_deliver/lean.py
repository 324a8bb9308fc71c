"""The default transport: urllib3's connection pools, without the ``requests`` layer.

``requests`` costs about 0.27 ms of CPU per request above urllib3 (preparing,
hooks, adapters, cookie jars, the response object); at Braze's ceiling of 1,000
requests per second that is a quarter of a core. A client given no ``session=``
sends through urllib3 directly, as ``requests`` would: HTTP/1.1 keep-alive, TLS
verified against the same CA bundle, through the same proxy, read from the same
environment (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; ``requests``' own functions read
them, so the two cannot disagree), no retries (the sender's own rules apply), no
redirects followed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests
import urllib3
from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy

from segment_braze._deliver.exchange import Opened
from segment_braze.exceptions import TransportError

__all__ = ["LeanTransport"]

_CHUNK: Final = 64 * 1024


def _ca_bundle() -> dict[str, str]:
    """The CA certificates ``requests`` would verify with, as urllib3's arguments."""
    # requests: REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, then certifi's bundle.
    path = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    if os.path.isdir(path):
        return {"ca_cert_dir": path}
    return {"ca_certs": path}


class LeanTransport:
    """Exchanges through urllib3 pools of up to ``maxsize`` connections per host.

    The proxy and CA bundle for a URL are read from the environment the first
    time the URL is posted to, as :class:`~segment_braze._deliver.exchange.Poster`
    does for ``requests``.

    Args:
        maxsize: connections kept per host (one per worker thread).
    """

    def __init__(self, *, maxsize: int) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._managers: dict[str, urllib3.PoolManager] = {}  # by proxy ("" for none)
        self._routes: dict[str, urllib3.PoolManager] = {}  # by URL

    def __repr__(self) -> str:
        return f"LeanTransport(urls={sorted(self._routes)!r})"

    def _manager(self, url: str) -> urllib3.PoolManager:
        manager = self._routes.get(url)
        if manager is not None:
            return manager
        with self._lock:
            proxy = select_proxy(url, get_environ_proxies(url)) or ""
            manager = self._managers.get(proxy)
            if manager is None:
                manager = self._managers[proxy] = self._new_manager(proxy)
            self._routes[url] = manager
        return manager

    def _new_manager(self, proxy: str) -> urllib3.PoolManager:
        options: dict[str, Any] = {
            "maxsize": self._maxsize,
            "block": False,
            "cert_reqs": "CERT_REQUIRED",
            **_ca_bundle(),
        }
        if not proxy:
            return urllib3.PoolManager(**options)
        if proxy.lower().startswith("socks"):
            # urllib3 speaks SOCKS only with PySocks; requests does the same, so
            # such a setup keeps working through a session of the caller's.
            raise TransportError(
                "connection error: a SOCKS proxy is set in the environment; pass "
                "BrazeClient(session=requests.Session()) to send through it"
            )
        if "://" not in proxy:
            proxy = "http://" + proxy  # as requests reads a bare host:port
        username, password = get_auth_from_url(proxy)
        headers = {}
        if username:
            headers = urllib3.util.make_headers(proxy_basic_auth=f"{username}:{password}")
        return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)

    def opener(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
    ) -> Callable[[], Opened]:
        """Prepare a POST through urllib3 (see ``exchange.Transport``)."""
        manager = self._manager(url)
        sent_headers = {**_ACCEPT, **headers}
        limits = urllib3.Timeout(connect=timeout[0], read=timeout[1])

        def send() -> Opened:
            response = manager.urlopen(
                "POST",
                url,
                body=body,
                headers=sent_headers,
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=True,
                timeout=limits,
            )

            def close(whole: bool) -> None:
                if not whole:
                    # Unread bytes would corrupt the next answer on this connection.
                    response.close()
                response.release_conn()

            return Opened(
                status=response.status,
                headers=response.headers,
                chunks=response.stream(_CHUNK, decode_content=True),
                raw=response,
                close=close,
            )

        return send

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for manager in self._managers.values():
                manager.clear()


# What requests sends by default besides the caller's headers.
_ACCEPT: Final = {**urllib3.util.make_headers(accept_encoding=True), "Accept": "*/*"}
