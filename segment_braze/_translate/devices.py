"""The device a call came from: push tokens from ``context.device``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from segment_braze._settings import Settings
from segment_braze._translate.segment import Call, Warnings, is_text

__all__ = ["push_token"]

# Braze: device_id of a push token is 8 to 255 bytes.
_DEVICE_ID_BYTES: Final = range(8, 256)


def push_token(call: Call, settings: Settings, warnings: Warnings) -> dict[str, Any] | None:
    """The push token a mobile client put in ``context.device``, as Braze imports it."""
    device = call.context.get("device")
    if not isinstance(device, Mapping):
        return None
    token = device.get("token")
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not is_text(token):
        warnings.append(
            ("$.context.device.token", "push token must be a valid Unicode string; skipped")
        )
        return None
    app_id = call.app_id or settings.app_id  # the app the message names, else the setting
    if app_id is None:
        warnings.append(
            (
                "$.context.device.token",
                "push token skipped: Braze needs app_id to import it",
            )
        )
        return None
    entry = {"app_id": app_id, "token": token}
    device_id = device.get("id")
    if device_id is not None:
        if (
            isinstance(device_id, str)
            and is_text(device_id)
            and len(device_id.encode()) in _DEVICE_ID_BYTES
        ):
            entry["device_id"] = device_id
        else:
            warnings.append(
                (
                    "$.context.device.id",
                    "device_id must be 8 to 255 bytes; omitted from push token",
                )
            )
    return entry
