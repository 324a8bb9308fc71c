"""What the command line reads besides messages: settings, secrets, the attribute cache.

The REST API key comes from the environment (``BRAZE_REST_API_KEY``) or the
settings file, never from a flag, so it stays out of shell history and process
listings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from segment_braze._cache.cache import AttributeCache
from segment_braze._endpoints import LIBRARY_ADVICE
from segment_braze._replay.usage import UsageError
from segment_braze._settings import Settings
from segment_braze._translate.dates import parse_time
from segment_braze._translate.segment import _TIME_FIELDS
from segment_braze.exceptions import SettingsError

__all__ = [
    "ENV_APP_ID",
    "ENV_CUSTOM_ENDPOINT",
    "ENV_DATACENTER",
    "ENV_KEY",
    "ENV_REST_ENDPOINT",
    "TimeWindow",
    "attribute_cache",
    "load_settings",
    "parse_moment",
]

ENV_KEY: Final = "BRAZE_REST_API_KEY"
ENV_APP_ID: Final = "BRAZE_APP_ID"
ENV_DATACENTER: Final = "BRAZE_DATACENTER"
ENV_REST_ENDPOINT: Final = "BRAZE_REST_ENDPOINT"
ENV_CUSTOM_ENDPOINT: Final = "BRAZE_ALLOW_CUSTOM_ENDPOINT"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_WHERE: Final = ("datacenter", "rest_endpoint")


@attrs.frozen(kw_only=True)
class LoadedSettings:
    """Settings, and notes for the user about how they were read.

    Attributes:
        settings: the validated settings.
        notes: one line each, for stderr (keys of an export that were skipped).
    """

    settings: Settings
    notes: tuple[str, ...] = ()


def load_settings(path: str | None, environ: Mapping[str, str]) -> LoadedSettings:
    """Read settings from a JSON file (ours or a Segment export) and the environment.

    The environment wins over the file. ``BRAZE_DATACENTER`` or
    ``BRAZE_REST_ENDPOINT`` replaces both the file's datacenter and its endpoint:
    they are one choice of where to send.

    Raises:
        SettingsError: the file or the environment holds an invalid option.
        UsageError: the file cannot be read or is not a JSON object.
    """
    config = _read_json_object(path) if path is not None else {}
    # Only the operator's environment may send the key to a non-Braze host: a
    # settings file (which may come from elsewhere) cannot allow it.
    config.pop("allow_custom_endpoint", None)
    env = _from_environment(environ)
    try:
        return _load(path, config, env)
    except SettingsError as err:
        advice = str(err).replace(LIBRARY_ADVICE, f"set {ENV_CUSTOM_ENDPOINT}=1 in the environment")
        if advice == str(err):
            raise
        raise SettingsError(advice) from None


def _load(path: str | None, config: dict[str, Any], env: dict[str, Any]) -> LoadedSettings:
    if env.keys() & set(_WHERE):
        config = {key: value for key, value in config.items() if key not in _WHERE}
    fields = attrs.fields_dict(Settings)
    segment_only = {
        key
        for key in config
        if key not in fields and key not in Settings.unknown_segment_keys({key: None})
    }
    if not segment_only:
        unknown = sorted(set(config) - set(fields))
        if unknown:
            raise SettingsError(
                f"unknown settings in {path}: {', '.join(unknown)}"
                " (neither Settings fields nor Segment Braze settings)"
            )
        return LoadedSettings(settings=Settings(**(config | env)))
    # A Segment export: camelCase keys. Our own field names may sit beside them
    # (events_denylist, anonymous_users, ...), as overrides.
    ours = {key: value for key, value in config.items() if key in fields and key != "datacenter"}
    export = {key: value for key, value in config.items() if key not in ours}
    if env.keys() & set(_WHERE):
        export = {key: value for key, value in export.items() if key != "restCustomEndpoint"}
    skipped = Settings.unknown_segment_keys(export)
    settings = Settings.from_segment(export, strict=False, **(ours | env))
    notes: tuple[str, ...] = ()
    if skipped:
        notes = (
            f"settings: skipped Segment settings this tool does not use: {', '.join(skipped)}",
        )
    return LoadedSettings(settings=settings, notes=notes)


def _read_json_object(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8"
        raise UsageError(f"cannot read the settings file {path}: {reason}") from err
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        # The message gives the position only, never the content (it may hold the key).
        raise SettingsError(f"the settings file {path} is not JSON: {err}") from None
    # A Segment API answer wraps the settings: {"destination": {"settings": {...}}}.
    for wrapper in ("destination", "settings"):
        inner = config.get(wrapper) if isinstance(config, dict) else None
        if isinstance(inner, dict) and not (config.keys() & attrs.fields_dict(Settings).keys()):
            config = inner
    if not isinstance(config, dict):
        raise SettingsError(f"the settings file {path} must hold a JSON object")
    return config


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in (
        (ENV_KEY, "rest_api_key"),
        (ENV_APP_ID, "app_id"),
        (ENV_DATACENTER, "datacenter"),
        (ENV_REST_ENDPOINT, "rest_endpoint"),
    ):
        value = environ.get(name, "").strip()
        if value:
            values[field] = value
    flag = environ.get(ENV_CUSTOM_ENDPOINT, "").strip().lower()
    if flag in _TRUE:
        values["allow_custom_endpoint"] = True
    elif flag in _FALSE:
        values["allow_custom_endpoint"] = False
    elif flag:
        raise SettingsError(f"{ENV_CUSTOM_ENDPOINT} must be 1 or 0, not {flag!r}")
    return values


def attribute_cache(
    spec: str,
    *,
    default_sqlite: str | None,
    ttl_days: float,
    namespace: str | None,
    settings: Settings,
) -> AttributeCache | None:
    """Build the attribute cache a ``--dedup`` option names.

    Args:
        spec: ``none``, ``memory``, ``sqlite`` (the default file), ``sqlite:PATH``,
            ``redis:URL`` or a ``redis://`` / ``rediss://`` / ``unix://`` URL.
        default_sqlite: the file ``sqlite`` alone means (next to the state file).
        ttl_days: how long a remembered value is trusted.
        namespace: keeps workspaces apart in a shared store; ``None`` derives one
            from the REST API key (a one-way digest: two workspaces never share
            entries, and the key is not stored).
        settings: the connection settings.

    Raises:
        UsageError: an unknown spec, a bad TTL, or a store that cannot be reached.
    """
    if not ttl_days > 0:
        raise UsageError(f"--dedup-ttl-days must be positive, not {ttl_days}")
    kind, _, where = spec.partition(":")
    if spec.startswith(("redis://", "rediss://", "unix://")):
        kind, where = "redis", spec
    if kind == "none" and not where:
        return None
    if namespace is None:
        secret = (settings.rest_api_key or "").encode()
        namespace = "k" + hashlib.blake2b(secret, digest_size=8).hexdigest()
    options: dict[str, Any] = {"ttl": ttl_days * 86400.0, "namespace": namespace}
    if kind == "memory" and not where:
        return AttributeCache.memory(**options)
    if kind == "sqlite":
        path = where or default_sqlite
        if not path:
            raise UsageError("--dedup sqlite needs a file here: --dedup sqlite:PATH")
        return AttributeCache.sqlite(path, **options)
    if kind == "redis" and where:
        return _redis_cache(where, options)
    raise UsageError(f"--dedup must be none, memory, sqlite[:PATH] or redis:URL, not {spec!r}")


def _redis_cache(url: str, options: dict[str, Any]) -> AttributeCache:
    try:
        import redis  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise UsageError(
            "--dedup redis needs the redis package: pip install 'segment-braze[redis]'"
        ) from None
    try:
        cache = AttributeCache.redis(url, **options)
        cache.store.load(["segment-braze:connection-check"])
    except (redis.RedisError, ValueError) as err:
        raise UsageError(f"cannot use Redis for --dedup: {err}") from None
    return cache


def parse_moment(text: str) -> dt.datetime:
    """Parse a ``--since``/``--until`` time: ISO 8601; no offset means UTC.

    Raises:
        ValueError: not an ISO 8601 date or time.
    """
    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2024-05-01 or 2024-05-01T12:00Z)")
    return moment


@attrs.frozen(kw_only=True)
class TimeWindow:
    """The ``--since`` (inclusive) / ``--until`` (exclusive) selection of messages.

    A message's time is its ``timestamp``, or the first of ``originalTimestamp``,
    ``sentAt``, ``receivedAt`` (the order translation uses). A message with no
    usable time is outside any window.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def contains(self, message: Mapping[str, Any]) -> bool:
        """Whether the message's time is inside the window."""
        for field in _TIME_FIELDS:
            moment = parse_time(message.get(field))
            if moment is not None:
                break
        else:
            return False
        if self.since is not None and moment < self.since:
            return False
        return self.until is None or moment < self.until
