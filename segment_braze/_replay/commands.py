"""The three commands of ``segment-braze``: translate, send and replay.

Each takes the parsed arguments and the environment and returns the exit
status; ``segment_braze._replay.cli`` parses the arguments and turns errors into
one-line messages.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Final

from segment_braze import _json
from segment_braze._cache.cache import AttributeCache
from segment_braze._deliver.client import BrazeClient
from segment_braze._replay.cachefile import guard
from segment_braze._replay.cacheprocess import CacheLink
from segment_braze._replay.config import (
    ENV_DATACENTER,
    ENV_KEY,
    ENV_REST_ENDPOINT,
    TimeWindow,
    load_settings,
)
from segment_braze._replay.feed import Feed
from segment_braze._replay.inputs import (
    STDIN,
    Meter,
    Record,
    read_source,
    total_bytes,
)
from segment_braze._replay.pipeline import dry_run, send
from segment_braze._replay.progress import Progress
from segment_braze._replay.resources import PROG, Resources, inputs, note, open_resources
from segment_braze._replay.summary import delivery_summary, translate_summary
from segment_braze._replay.tally import Tally
from segment_braze._replay.transform import DROPPED, Transform, apply, load
from segment_braze._replay.usage import UsageError
from segment_braze._settings import Settings
from segment_braze._translate.calls import translate
from segment_braze.exceptions import AuthenticationError, InvalidMessage, SenderError, SettingsError

__all__ = ["EXIT_FAILED", "PROG", "run_replay", "run_send", "run_translate"]

EXIT_FAILED: Final = 1
# Messages queued per sender worker (the memory bound). What a kill can re-send
# is bounded apart from it: one batch (at most 75 objects) per worker.
_WINDOW: Final = 75


class _LogNotes(logging.Handler):
    """Shows the library's warnings (retries, rate limits) as notes on stderr.

    The refused-key error is left out: the command ends with that message.
    """

    def __init__(self, note: Callable[[str], None], *, level: int) -> None:
        super().__init__(level)
        self._note = note

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Braze refused the REST API key"):
            self._note(f"{PROG}: {message}")


def _log_to(stack: ExitStack, note: Callable[[str], None], *, quiet: bool) -> None:
    logger = logging.getLogger("segment_braze")
    handler = _LogNotes(note, level=logging.ERROR if quiet else logging.WARNING)
    logger.addHandler(handler)
    stack.callback(logger.removeHandler, handler)


def _records(files: Iterable[str], meter: Meter) -> Iterator[Record]:
    for name in files:
        yield from read_source(name, meter)


def _settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    loaded = load_settings(args.settings, env)
    if not args.quiet:
        for line in loaded.notes:
            note(line)
    return loaded.settings


def _progress(
    args: argparse.Namespace,
    files: list[str],
    meter: Meter,
    tally: Tally,
    status: Callable[[], tuple[int, str]],
) -> Progress:
    total = total_bytes(files)
    progress = Progress(
        label=f"{PROG} {args.command}",
        total=total,
        position=(lambda: meter.position) if total is not None else (lambda: tally["read"]),
        status=status,
        stream=sys.stderr,
        quiet=args.quiet,
        every=args.progress_every,
    )
    return progress.start()


def run_translate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``segment-braze translate``: one JSON line per input message."""
    transform = load(args.transform) if args.transform else None
    settings = _settings(args, env)
    files = inputs(args.paths or [STDIN], quiet=args.quiet)
    tally, meter = Tally(), Meter()
    progress = _progress(args, files, meter, tally, lambda: (tally["read"], ""))
    out = sys.stdout.buffer
    try:
        for record in _records(files, meter):
            tally.add("read")
            line = _translation_line(record, settings, tally, progress.note, transform)
            out.write(_json.dumps(line) + b"\n")
        out.flush()
    finally:
        progress.close()
    if args.summary:
        print("\n".join(translate_summary(tally)), file=sys.stderr)
    return EXIT_FAILED if tally["invalid"] else 0


def _translation_line(
    record: Record,
    settings: Settings,
    tally: Tally,
    note: Callable[[str], None],
    transform: Transform | None,
) -> dict[str, Any]:
    error, message, message_id = record.error, record.value, record.message_id
    if error is None and transform is not None:
        applied = apply(transform, message, copy=False)  # nothing else keeps the message
        error, message = applied.error, applied.message
        if error is None and message is None:
            tally.drop(DROPPED)
            return _line(record, message_id, dropped=DROPPED)
    if error is None:
        try:
            translation = translate(message, settings)
        except InvalidMessage as err:
            error = f"invalid message: {err}"
    if error is not None:
        tally.add("invalid")
        note(f"{record.where}: {error}")
        return _line(record, message_id, error=error)
    tally.translation(translation)
    if translation.dropped is not None:
        tally.drop(translation.dropped)
    return _line(
        record,
        translation.message_id,
        requests=[{"path": r.path, "body": r.body} for r in translation.requests()],
        dropped=translation.dropped,
        warnings=[{"path": path, "warning": text} for path, text in translation.warnings],
    )


def _line(
    record: Record,
    message_id: str | None,
    *,
    requests: list[dict[str, Any]] | None = None,
    dropped: str | None = None,
    warnings: list[dict[str, str]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One line of ``translate``'s output."""
    return {
        "messageId": message_id,
        "requests": requests or [],
        "dropped": dropped,
        "warnings": warnings or [],
        "error": error,
        "source": record.where,
    }


def _require_sending(settings: Settings) -> None:
    try:
        settings.require_sending()
    except SettingsError as err:
        raise SettingsError(
            f"{err}: set {ENV_KEY} and {ENV_DATACENTER} (or {ENV_REST_ENDPOINT}) in the"
            " environment, or use --settings FILE"
        ) from None


def run_send(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``segment-braze send``: translate, send, print the delivery report."""
    return _deliver(args, env, paths=args.paths or [STDIN], state_path=None)


def _quietly(close: Callable[[], None]) -> None:
    """Close on the way out of a failed run: the run's own error is the one reported."""
    with contextlib.suppress(UsageError):  # a cache write failed: values are sent again
        close()


def _sender_cache(cache: AttributeCache | None, name: str, processes: int) -> AttributeCache | None:
    """The attribute cache for the sender: with worker processes, one of them may hold it."""
    if cache is not None and processes > 1:
        return CacheLink(cache, name)  # see cacheprocess
    return cache


def run_replay(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """``segment-braze replay``: send archives, resumably, without duplicates."""
    if args.since and args.until and args.since >= args.until:
        raise UsageError("--since must be before --until")
    return _deliver(args, env, paths=args.paths, state_path=args.state)


def _transmit(
    args: argparse.Namespace,
    stack: ExitStack,
    *,
    settings: Settings,
    feed: Feed,
    opened: Resources,
    tally: Tally,
    cache: AttributeCache | None,
) -> AuthenticationError | None:
    # The state is committed before each request: a kill re-sends at most the
    # batch each worker had in flight. A cache that could not save stops it.
    cache_fault = guard(cache, opened.cache_name)
    state = opened.state

    def before_request() -> None:
        cache_fault()
        if state is not None:
            state.commit()

    client = stack.enter_context(
        BrazeClient(
            settings,
            before_request=before_request,
            workers=args.workers,
            window=_WINDOW,
            on_outcome=feed.outcome,
            attribute_cache=cache,
        )
    )
    try:
        send(feed, client, tally, check=cache_fault)
    except AuthenticationError as err:
        _quietly(feed.close)  # the refused key is what the user must hear of
        return err
    feed.close()  # every answer is in: a worker holding the cache saves the last
    cache_fault()
    return None


def _deliver(
    args: argparse.Namespace,
    env: Mapping[str, str],
    *,
    paths: Sequence[str],
    state_path: str | None,
) -> int:
    if args.transform:
        load(args.transform)  # a bad one is a usage error before anything is opened
    settings = _settings(args, env)
    dry = bool(getattr(args, "dry_run", False))
    if not dry:
        _require_sending(settings)
    window = None
    if getattr(args, "since", None) or getattr(args, "until", None):
        window = TimeWindow(since=args.since, until=args.until)
    tally, meter = Tally(), Meter()
    refused: AuthenticationError | None = None
    stopped: BaseException | None = None  # Ctrl-C, SIGTERM, a stopped sender
    opened: Resources | None = None
    recorded = None
    try:
        with ExitStack() as stack:
            opened = open_resources(
                args, stack, paths=paths, state_path=state_path, settings=settings, dry=dry
            )
            progress = _progress(args, opened.files, meter, tally, _status(tally, dry=dry))
            stack.callback(progress.close)
            _log_to(stack, progress.note, quiet=args.quiet)
            processes = getattr(args, "processes", 1)
            cache = None if dry else _sender_cache(opened.cache, opened.cache_name, processes)
            feed = Feed(
                records=_records(opened.files, meter),
                settings=settings,
                tally=tally,
                note=progress.note,
                state=opened.state,
                window=window,
                dead_letter=opened.dead_letter,
                processes=processes,
                transform=args.transform,
                attribute_values=cache is not None,
                cache=cache if isinstance(cache, CacheLink) else None,
            )
            stack.callback(_quietly, feed.close)  # after the sender, on any way out
            try:
                if dry:
                    dry_run(feed)
                else:
                    refused = _transmit(
                        args,
                        stack,
                        settings=settings,
                        feed=feed,
                        opened=opened,
                        tally=tally,
                        cache=cache,
                    )
            except (KeyboardInterrupt, SenderError) as err:
                # The ExitStack still saves the state; the summary says what was done.
                stopped = err
            progress.close()
            if opened.state is not None:
                recorded = opened.state.recorded()
    except KeyboardInterrupt as err:  # a second Ctrl-C while closing: no summary
        if opened is None or stopped is None:
            raise
        stopped = err
    if opened is None:  # pragma: no cover - _open either returns or raises
        raise UsageError("nothing was opened")
    summary = delivery_summary(
        tally,
        command=args.command,
        files=len(opened.files),
        unread=opened.unread,
        dedup_window=getattr(args, "dedup_window", None),
        dry_run=dry,
        recorded=recorded,
        state=state_path,
    )
    print("\n".join(summary), flush=True)
    if stopped is not None:
        raise stopped
    if refused is not None:
        raise refused
    return EXIT_FAILED if tally.unsuccessful else 0


def _status(tally: Tally, *, dry: bool) -> Callable[[], tuple[int, str]]:
    """The progress line's counts."""
    sent = "would be sent" if dry else "delivered"

    def status() -> tuple[int, str]:
        failed = tally["failed"] + tally["invalid"]
        return tally.done, f"{tally['delivered']:,} {sent}, {failed:,} failed"

    return status
