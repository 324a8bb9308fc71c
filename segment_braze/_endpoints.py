"""Braze's clusters and endpoint rules: where the REST API key may travel.

The key goes only to a Braze host over https://, or to a custom endpoint the
operator allowed; never in clear text off this machine (docs/settings.md,
"Endpoint rules").
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from segment_braze.exceptions import SettingsError

#: How an endpoint error advises a library user; the command line says instead
#: which environment variable to set.
LIBRARY_ADVICE = "pass allow_custom_endpoint=True"

__all__ = [
    "CLUSTERS",
    "CLUSTER_BY_HOST",
    "LIBRARY_ADVICE",
    "agree",
    "cluster",
    "is_braze",
    "rest_endpoint",
    "sdk_endpoint",
]

# Braze cluster -> host suffix of its endpoints: REST is https://rest.<suffix>,
# SDK is sdk.<suffix> (Braze "API basics", endpoints table). US-09 opened in 2025
# under its own name, like US-10.
CLUSTERS: dict[str, str] = {
    **{f"US-0{n}": f"iad-0{n}.braze.com" for n in range(1, 9)},
    "US-09": "us-09.braze.com",
    "US-10": "us-10.braze.com",
    **{f"EU-0{n}": f"fra-0{n}.braze.eu" for n in (1, 2)},
    **{f"{region.upper()}-01": f"{region}-01.braze.com" for region in ("au", "id", "jp", "kr")},
}
CLUSTER_BY_HOST = {
    f"{kind}.{suffix}": name for name, suffix in CLUSTERS.items() for kind in ("rest", "sdk")
}
_BRAZE_DOMAINS = (".braze.com", ".braze.eu")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")


def _is_loopback(host: str) -> bool:
    """Whether a URL's host (without port) is this machine: localhost, 127.0.0.0/8, ::1."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1 : host.find("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cluster(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"datacenter must be a string or None, not {type(value).__name__}")
    if (name := value.strip().upper()) not in CLUSTERS:
        raise SettingsError(f"datacenter {value!r} is not a Braze cluster: {', '.join(CLUSTERS)}")
    return name


def is_braze(host: str) -> bool:
    # Host names compare case-insensitively (rest.iad-01.Braze.com is Braze's).
    return host.split(":", maxsplit=1)[0].lower().endswith(_BRAZE_DOMAINS)


def rest_endpoint(value: str | None, *, custom: bool) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value.strip().rstrip("/"))
    if parts.username is not None or parts.password is not None:
        raise SettingsError("rest_endpoint must not contain credentials")  # never echo them
    if parts.scheme not in {"http", "https"} or not _HOST.fullmatch(parts.netloc.lower()):
        raise SettingsError(
            f"rest_endpoint must be a URL such as 'https://rest.iad-01.braze.com', not {value!r}"
        )
    normal = f"{parts.scheme}://{parts.netloc.lower()}"
    if parts.path or parts.query or parts.fragment:
        # The sender appends /users/track and friends itself.
        raise SettingsError(f"rest_endpoint must not have a path: use {normal!r}, not {value!r}")
    netloc = parts.netloc.lower()
    if parts.scheme == "http" and not _is_loopback(netloc):
        # The key travels in the Authorization header: never in clear text off
        # this machine, whatever allow_custom_endpoint says.
        raise SettingsError(
            f"rest_endpoint {normal!r} is plain http://, which would send the REST API key"
            " in clear text: use https:// (http:// is accepted only for loopback addresses,"
            " such as a local stand-in at http://127.0.0.1:8080)"
        )
    if not custom and (parts.scheme != "https" or not is_braze(netloc)):
        raise SettingsError(
            f"rest_endpoint {normal!r} is not an https:// Braze host (*.braze.com,"
            f" *.braze.eu); {LIBRARY_ADVICE} for a proxy or test server"
        )
    return normal


def sdk_endpoint(value: str | None, *, custom: bool) -> str | None:
    if value is None:
        return None
    if value.strip().lower().startswith(("https://", "http://")):
        # Braze's Segment guide: Segment prepends https:// to this setting, so a
        # scheme here makes the Web SDK call "https://https://..." and break.
        bare = urlsplit(value.strip()).netloc.lower()
        raise SettingsError(
            "sdk_endpoint must be a bare host without a scheme (Segment adds"
            f" https:// itself): use {bare!r}, not {value!r}"
        )
    host = value.strip().rstrip("/").lower()
    if not _HOST.fullmatch(host):
        raise SettingsError(
            f"sdk_endpoint must be a bare host such as 'sdk.iad-01.braze.com', not {value!r}"
        )
    if not custom and not is_braze(host):
        raise SettingsError(
            f"sdk_endpoint {host!r} is not a Braze host (*.braze.com, *.braze.eu);"
            f" {LIBRARY_ADVICE} for a custom host"
        )
    return host


def agree(field: str, given: str | None, expected: str, why: str) -> str:
    if given is None or given == expected:
        return expected
    host = urlsplit(given).netloc if "://" in given else given
    if not is_braze(host):
        return given  # a proxy (allow_custom_endpoint) may front any cluster
    raise SettingsError(f"{field} {given!r} contradicts {why}: expected {expected!r}")
