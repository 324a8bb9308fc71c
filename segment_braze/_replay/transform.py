"""``--transform MODULE:FUNCTION``: the user's own rules, run on each message first.

A team moving from Segment's Actions destination keeps its custom mappings
(renamed events, fields moved, test users left out) as a Python function. The
command imports it by name and calls it with each Segment message (a dict);
it returns the message to translate, possibly changed, or ``None`` to drop it
("dropped by transform"). It runs before de-duplication and translation, and in
the worker processes of ``--processes`` too (each imports it by name).

The function gets its own copy of the message, so what the command keeps (the
message as read, for the dead-letter file) never changes. An exception it
raises makes that message invalid, with the exception's type and text as the
reason, and the run goes on: one bad message costs only itself.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from segment_braze import _json
from segment_braze._replay.usage import UsageError

__all__ = ["DROPPED", "Transform", "Transformed", "apply", "load"]

DROPPED: Final = "dropped by transform"
_LONGEST_REASON: Final = 300

Transform = Callable[[dict[str, Any]], Any]
"""A user's function: a Segment message in, the message to translate (or None) out."""


class Transformed(NamedTuple):
    """What a transform made of one message.

    Attributes:
        message: the message to go on with, or None when dropped or invalid.
        error: why the message is invalid (the function raised, or returned
            something that is not a message), or None.
    """

    message: dict[str, Any] | None
    error: str | None = None


@functools.lru_cache(maxsize=8)
def load(spec: str) -> Transform:
    """Import the function ``MODULE:FUNCTION`` names (once per process).

    The current folder comes first on the import path, as with ``python -m``, so
    a module beside the archive is found; ``PYTHONPATH`` adds others.

    Raises:
        UsageError: the spec is not ``MODULE:FUNCTION``, the module cannot be
            imported, or it has no such function.
    """
    module_name, colon, function_name = spec.partition(":")
    if not colon or not module_name or not function_name:
        raise UsageError(f"--transform must be MODULE:FUNCTION, not {spec!r}")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"--transform {spec}: cannot import {module_name}: {err}") from None
    except Exception as err:  # noqa: BLE001 (a user's module may raise anything on import)
        raise UsageError(
            f"--transform {spec}: importing {module_name} raised {_describe(err)}"
        ) from None
    for name in function_name.split("."):
        found = getattr(found, name, None)
        if found is None:
            raise UsageError(f"--transform {spec}: {module_name} has no {function_name}")
    if not callable(found):
        raise UsageError(f"--transform {spec}: {function_name} is not a function")
    function: Transform = found
    return function


def apply(transform: Transform, message: dict[str, Any], *, copy: bool) -> Transformed:
    """Run the user's function on one message.

    Args:
        transform: the function.
        message: the Segment message as read.
        copy: give the function a copy (in the reading process, where the message
            is kept for the dead-letter file); a worker process has its own.
    """
    given = _json.loads(_json.dumps(message)) if copy else message
    try:
        result = transform(given)
    except Exception as err:  # noqa: BLE001 (the user's function may raise anything)
        return Transformed(message=None, error=f"transform raised {_describe(err)}")
    if result is None or isinstance(result, dict):
        return Transformed(message=result)
    kind = type(result).__name__
    return Transformed(message=None, error=f"transform returned a {kind}, not a message or None")


def _describe(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    if len(text) > _LONGEST_REASON:
        text = text[: _LONGEST_REASON - 1] + "…"
    return text
