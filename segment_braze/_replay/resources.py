"""What a send or replay opens: the state, the dead-letter file, the cache, the inputs.

Each is refused in one line (a ``UsageError``) when it cannot serve: a dead-letter
file that is an input, an attribute-cache file that is not one.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import urllib.parse
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path

import attrs

from segment_braze._cache.cache import AttributeCache
from segment_braze._replay.config import attribute_cache
from segment_braze._replay.deadletter import DeadLetter
from segment_braze._replay.inputs import STDIN, expand_paths
from segment_braze._replay.layout import received_long_before
from segment_braze._replay.state import ReplayState
from segment_braze._replay.usage import FileError, UsageError
from segment_braze._settings import Settings

__all__ = ["Resources", "inputs", "note", "open_resources"]


PROG = "segment-braze"


def note(text: str) -> None:
    """Print one line to stderr, prefixed with the program's name."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _state_files(state: str) -> list[Path]:
    base = Path(os.path.realpath(state))
    return [base, *(base.with_name(base.name + suffix) for suffix in ("-wal", "-shm", ".lock"))]


def _default_cache(state: str) -> str:
    path = Path(state)
    return str(path.with_name(f"{path.stem}.attributes.sqlite"))


@attrs.define(kw_only=True)
class Resources:
    """What a send or replay opened, closed by the ExitStack that holds them."""

    files: list[str]
    unread: int = 0  # files skipped unread: received over a day before --since
    state: ReplayState | None = None
    dead_letter: DeadLetter | None = None
    cache: AttributeCache | None = None
    cache_name: str = ""


def open_resources(
    args: argparse.Namespace,
    stack: ExitStack,
    *,
    paths: Sequence[str],
    state_path: str | None,
    settings: Settings,
    dry: bool,
) -> Resources:
    state = dead_letter = cache = None
    exclude: list[Path] = []  # never read our own files from an input folder
    cache_file = None
    if state_path is not None:
        state = ReplayState(
            state_path,
            dry_run=dry,
            retry_failed=bool(args.retry_failed),
            window=round(args.dedup_window * 3_600_000),
        )
        stack.callback(state.close)
        cache_file = _default_cache(state_path)
        exclude += [*_state_files(state_path), *_state_files(cache_file)]
    if args.dead_letter:
        target = Path(os.path.realpath(args.dead_letter))
        _refuse_as_dead_letter(args.dead_letter, target, paths=paths, kept=exclude)
        exclude.append(target)
        # A replay reads the same archive each run: its invalid lines go in once.
        dead_letter = DeadLetter(args.dead_letter, once=state_path is not None)
        stack.callback(dead_letter.close)
    files = inputs(paths, quiet=args.quiet, exclude=exclude)
    unread = 0
    since = getattr(args, "since", None)
    if since is not None:
        kept = [name for name in files if not received_long_before(name, since)]
        unread, files = len(files) - len(kept), kept
    if not dry:
        cache = _attribute_cache(args, cache_file, settings)
        if cache is not None:
            stack.callback(cache.close)
    name = _cache_name(args.dedup or "", cache_file)
    return Resources(
        files=files,
        unread=unread,
        state=state,
        dead_letter=dead_letter,
        cache=cache,
        cache_name=name,
    )


def _refuse_as_dead_letter(
    name: str, target: Path, *, paths: Sequence[str], kept: Sequence[Path]
) -> None:
    """Refuse a ``--dead-letter`` file that is an input, or a file the replay keeps."""
    for path in paths:
        if path != STDIN and Path(os.path.realpath(path)) == target:
            raise UsageError(
                f"the dead-letter file {name} is also an input ({path}): give another"
                " --dead-letter file"
            )
    if target in kept:
        raise UsageError(
            f"the dead-letter file {name} is a file the replay keeps (its state or attribute"
            " cache): give another --dead-letter file"
        )


def _cache_name(spec: str, default: str | None) -> str:
    """The attribute cache as messages name it: its file or URL, a password hidden."""
    rest = spec.partition(":")[2]
    where = spec if rest.startswith("//") else rest  # a URL alone, or KIND:WHERE
    return _shown(where or default or "")


def _shown(name: str) -> str:
    """A cache's name for messages: a Redis URL's password replaced by ``***``."""
    parts = urllib.parse.urlsplit(name)
    if parts.password is None:
        return name
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _attribute_cache(
    args: argparse.Namespace, default: str | None, settings: Settings
) -> AttributeCache | None:
    spec = args.dedup or ("sqlite" if default is not None else "none")
    try:
        return attribute_cache(
            spec,
            default_sqlite=default,
            ttl_days=args.dedup_ttl_days,
            namespace=args.dedup_namespace,
            settings=settings,
        )
    except ValueError as err:  # SQLiteStore: a database that is not an attribute cache
        raise FileError(f"{err}: give another file with --dedup sqlite:PATH") from err
    except sqlite3.Error as err:
        name = _cache_name(spec, default)
        raise FileError(
            f"cannot use the attribute cache {name} ({err}): give another file with"
            " --dedup sqlite:PATH, or --dedup none"
        ) from err


def inputs(paths: Sequence[str], *, quiet: bool, exclude: Iterable[Path] = ()) -> list[str]:
    files, skipped = expand_paths(paths, exclude=frozenset(exclude))
    if skipped and not quiet:
        note(f"skipped {skipped:,} files in folders (hidden, or not .json, .jsonl, .ndjson or .gz)")
    return files
