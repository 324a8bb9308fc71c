"""Braze's clusters and endpoints: the rules ``Settings`` applies to them.

``datacenter`` names a cluster and fills in both endpoints; an endpoint on a
known Braze host implies its cluster; contradictions are errors. Kept apart from
``_settings`` so that each stays one concept (see docs/settings.md, "Endpoint
rules"). Imports only the exceptions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final
from urllib.parse import urlsplit

from segment_braze.exceptions import SettingsError

__all__ = ["LIBRARY_ADVICE", "cluster_name", "resolve_endpoints"]

#: How an endpoint error advises a library user; the command line says instead
#: which environment variable to set.
LIBRARY_ADVICE: Final = "pass allow_custom_endpoint=True"

# Braze cluster -> host suffix of its endpoints: REST is https://rest.<suffix>,
# SDK is sdk.<suffix> (Braze "API basics", endpoints table). US-09 opened in 2025
# under its own name, like US-10.
_CLUSTERS: dict[str, str] = {
    **{f"US-0{n}": f"iad-0{n}.braze.com" for n in range(1, 9)},
    "US-09": "us-09.braze.com",
    "US-10": "us-10.braze.com",
    **{f"EU-0{n}": f"fra-0{n}.braze.eu" for n in (1, 2)},
    **{f"{region.upper()}-01": f"{region}-01.braze.com" for region in ("au", "id", "jp", "kr")},
}
_CLUSTER_BY_HOST = {
    f"{kind}.{suffix}": name for name, suffix in _CLUSTERS.items() for kind in ("rest", "sdk")
}
_BRAZE_DOMAINS = (".braze.com", ".braze.eu")
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")


def cluster_name(value: Any) -> str | None:
    """Read ``datacenter``: a Braze cluster name in upper case, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"datacenter must be a string or None, not {type(value).__name__}")
    if (name := value.strip().upper()) not in _CLUSTERS:
        raise SettingsError(f"datacenter {value!r} is not a Braze cluster: {', '.join(_CLUSTERS)}")
    return name


def _is_loopback(host: str) -> bool:
    """Whether a URL's host (without port) is this machine: localhost, 127.0.0.0/8, ::1."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1 : host.find("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_braze(host: str) -> bool:
    # Host names compare case-insensitively (rest.iad-01.Braze.com is Braze's).
    return host.split(":", maxsplit=1)[0].lower().endswith(_BRAZE_DOMAINS)


def _rest_endpoint(value: str | None, *, custom: bool) -> str | None:
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
    if not custom and (parts.scheme != "https" or not _is_braze(netloc)):
        raise SettingsError(
            f"rest_endpoint {normal!r} is not an https:// Braze host (*.braze.com,"
            f" *.braze.eu); {LIBRARY_ADVICE} for a proxy or test server"
        )
    return normal


def _sdk_endpoint(value: str | None, *, custom: bool) -> str | None:
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
    if not custom and not _is_braze(host):
        raise SettingsError(
            f"sdk_endpoint {host!r} is not a Braze host (*.braze.com, *.braze.eu);"
            f" {LIBRARY_ADVICE} for a custom host"
        )
    return host


def _agree(field: str, given: str | None, expected: str, why: str) -> str:
    if given is None or given == expected:
        return expected
    host = urlsplit(given).netloc if "://" in given else given
    if not _is_braze(host):
        return given  # a proxy (allow_custom_endpoint) may front any cluster
    raise SettingsError(f"{field} {given!r} contradicts {why}: expected {expected!r}")


def resolve_endpoints(
    datacenter: str | None, rest: str | None, sdk: str | None, *, custom: bool
) -> tuple[str | None, str | None, str | None]:
    """Check the endpoints and fill in what the cluster implies.

    Args:
        datacenter: the cluster named (already read by :func:`cluster_name`).
        rest: the REST endpoint given, or None.
        sdk: the SDK endpoint given, or None.
        custom: ``allow_custom_endpoint``.

    Returns:
        The cluster (given or inferred), the REST endpoint and the SDK endpoint.

    Raises:
        SettingsError: an endpoint is malformed, or contradicts the cluster.
    """
    rest = _rest_endpoint(rest, custom=custom)
    sdk = _sdk_endpoint(sdk, custom=custom)
    cluster, why = datacenter, f"datacenter {datacenter}"
    if cluster is None and rest is not None:
        cluster = _CLUSTER_BY_HOST.get(urlsplit(rest).netloc)
        why = f"cluster {cluster} implied by rest_endpoint"
    if cluster is None and sdk is not None:
        cluster = _CLUSTER_BY_HOST.get(sdk)
        why = f"cluster {cluster} implied by sdk_endpoint"
    if cluster is not None:
        suffix = _CLUSTERS[cluster]
        rest = _agree("rest_endpoint", rest, f"https://rest.{suffix}", why)
        sdk = _agree("sdk_endpoint", sdk, f"sdk.{suffix}", why)
    return cluster, rest, sdk
