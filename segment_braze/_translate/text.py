"""Text for warnings and errors: JSON paths, values shown briefly, valid Unicode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["child_path", "is_text", "kind_of", "shown"]


def is_text(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (JSON input can hold lone surrogates)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


_SHOWN: Final = 60


def shown(value: object) -> str:
    """``repr(value)`` for a warning: at most about 60 characters, never an error."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 180:
        return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, str):
        text = repr(value[:_SHOWN])
        return text if len(value) <= _SHOWN else f"{text}... ({len(value)} characters)"
    if isinstance(value, (float, bool)) or value is None or isinstance(value, int):
        return repr(value)
    return f"<{kind_of(value)}>"


def child_path(parent: str, key: object) -> str:
    """Return the JSON path of ``key`` under ``parent`` (``$.traits.email``)."""
    if type(key) is str and key.isascii() and key.isidentifier():
        return f"{parent}.{key}"
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent}[{key}]" if key.bit_length() <= 180 else f"{parent}[{shown(key)}]"
    text = key if isinstance(key, str) else shown(key)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{escaped}"]'


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
