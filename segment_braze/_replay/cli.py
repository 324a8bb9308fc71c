"""The ``segment-braze`` command: translate, send and replay Segment messages.

Exit status: 0 when every message was delivered or deliberately dropped, 1 when
any failed or was not a readable Segment message, 2 for usage and settings
errors (one line on stderr, no traceback). docs/cli.md describes every option.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final, NoReturn

from segment_braze._replay.collector import fewer_collections
from segment_braze._replay.commands import EXIT_FAILED, PROG, run_replay, run_send, run_translate
from segment_braze._replay.config import ENV_KEY, parse_moment
from segment_braze._replay.state import MAX_WINDOW
from segment_braze._replay.usage import UsageError
from segment_braze.exceptions import SegmentBrazeError

__all__ = ["main"]

_EXIT_USAGE: Final = 2
_MAX_WINDOW_HOURS: Final = MAX_WINDOW // 3_600_000
_EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT
_EXIT_TERMINATED: Final = 143  # 128 + SIGTERM
_EXIT_BUG: Final = 70  # EX_SOFTWARE: an error of ours that no rule foresaw

_EPILOG: Final = """\
environment:
  BRAZE_REST_API_KEY            the REST API key (never a flag: it would show in
                                process listings and shell history)
  BRAZE_APP_ID                  the App identifier
  BRAZE_DATACENTER              the cluster, e.g. US-03 or EU-01
  BRAZE_REST_ENDPOINT           the REST endpoint, instead of the datacenter
  BRAZE_ALLOW_CUSTOM_ENDPOINT=1 accept a non-Braze endpoint (a proxy, a stand-in)

exit status: 0 all delivered or deliberately dropped; 1 some failed or invalid;
2 usage, settings or state error; 130 Ctrl-C; 143 SIGTERM. See docs/cli.md."""


_UNRECOGNIZED: Final = "unrecognized arguments: "


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        hint = f"see {self.prog} --help"
        if message.startswith(_UNRECOGNIZED):
            # Never echo an option's value: someone may have tried --api-key=SECRET.
            words = message.removeprefix(_UNRECOGNIZED).split()
            shown = [w.split("=", 1)[0] + "=..." if w.startswith("-") and "=" in w else w
                     for w in words]  # fmt: skip
            message = _UNRECOGNIZED + " ".join(shown)
            if any("key" in word.lower() for word in words if word.startswith("-")):
                hint = "the REST API key is read from BRAZE_REST_API_KEY, never from a flag"
        raise UsageError(f"{message} ({hint})")


def _cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= _MAX_WINDOW_HOURS:
        raise argparse.ArgumentTypeError(
            f"must be a number of hours from 0 to {_MAX_WINDOW_HOURS:,}, not {text!r}"
        )
    return value


def _moment(text: str) -> Any:
    try:
        return parse_moment(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser() -> _Parser:
    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--settings",
        metavar="FILE",
        help="JSON settings: Settings field names, or a Segment Braze destination export",
    )
    common.add_argument(
        "--transform",
        metavar="MODULE:FUNCTION",
        help="your function, imported by name, run on each message before de-duplication"
        " and translation: it returns the message to translate (possibly changed) or None"
        " to drop it",
    )
    common.add_argument(
        "--quiet", action="store_true", help="no progress bar or progress lines on stderr"
    )
    common.add_argument(
        "--progress-every",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="seconds between progress lines when stderr is not a terminal (default 10)",
    )
    sending = _Parser(add_help=False, allow_abbrev=False)
    sending.add_argument(
        "--dead-letter",
        metavar="FILE",
        help="append every failed, dropped or unreadable message to FILE (JSON Lines)",
    )
    sending.add_argument(
        "--workers",
        metavar="N",
        type=_positive_int,
        default=32,
        help="concurrent requests to Braze, each of at most 75 objects (default 32: enough"
        " for Braze's 1,000 requests per second at 32 ms each)",
    )
    sending.add_argument(
        "--processes",
        metavar="N",
        type=_positive_int,
        default=_cores(),
        help="processes to use (default: the cores this process may run on, here"
        f" {_cores()}): above 1, N-1 worker processes translate while the main one reads,"
        " deduplicates and sends; 1 keeps everything in one process",
    )
    sending.add_argument(
        "--dedup",
        metavar="STORE",
        help="attribute cache, to send only changed attributes: none, memory,"
        " sqlite[:PATH] or redis:URL (default: none for send, sqlite next to --state"
        " for replay)",
    )
    sending.add_argument(
        "--dedup-ttl-days",
        metavar="DAYS",
        type=_positive_float,
        default=30.0,
        help="forget a remembered attribute after DAYS (default 30)",
    )
    sending.add_argument(
        "--dedup-namespace",
        metavar="NAME",
        help="cache namespace (default: derived from the REST API key, one per workspace)",
    )
    parser = _Parser(
        prog=PROG,
        description="Translate Segment messages into Braze data, send them, replay archives.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kwargs: dict[str, Any] = {
        "epilog": _EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        "allow_abbrev": False,
    }
    translate_cmd = commands.add_parser(
        "translate",
        parents=[common],
        help="print what each message becomes in Braze (JSON Lines)",
        description="Print one JSON line per input message: its Braze requests,"
        " or why it was dropped or is invalid. Sends nothing.",
        **kwargs,
    )
    translate_cmd.set_defaults(run=run_translate)
    translate_cmd.add_argument("paths", nargs="*", metavar="PATH", help="files (default stdin)")
    translate_cmd.add_argument(
        "--summary", action="store_true", help="print totals and estimated data points to stderr"
    )
    send_cmd = commands.add_parser(
        "send",
        parents=[common, sending],
        help="translate and send messages to Braze",
        description="Translate messages and send them to Braze; print the delivery report.",
        **kwargs,
    )
    send_cmd.set_defaults(run=run_send)
    send_cmd.add_argument("paths", nargs="*", metavar="PATH", help="files (default stdin)")
    replay = commands.add_parser(
        "replay",
        parents=[common, sending],
        help="send Segment archives to Braze, resumably and without duplicates",
        description="Send archives (files or folders; Segment's S3 layout in time order"
        " across sources) to Braze. Progress is kept in --state: run the same command"
        " again to resume after any stop.",
        **kwargs,
    )
    replay.set_defaults(run=run_replay)
    replay.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (- for stdin)")
    replay.add_argument("--state", metavar="FILE", required=True, help="the SQLite state file")
    replay.add_argument(
        "--since", metavar="TIME", type=_moment, help="only messages at or after TIME (ISO 8601)"
    )
    replay.add_argument(
        "--until", metavar="TIME", type=_moment, help="only messages before TIME (ISO 8601)"
    )
    replay.add_argument(
        "--dedup-window",
        metavar="HOURS",
        type=_hours,
        default=24.0,
        help="skip a message as a duplicate when its source sent the same messageId within"
        " HOURS of it, by the messages' times, as Segment does (default 24; 0 turns this"
        " off: only the same message, with the same time, is skipped)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="translate and summarise; send and record nothing"
    )
    replay.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the messages that failed in an earlier run",
    )
    return parser


def _version() -> str:
    from segment_braze import __version__  # noqa: PLC0415 (import cycle at module level)

    return __version__


class _Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, Kubernetes): stopped exactly like Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise _Terminated


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM like Ctrl-C while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment to read; the key leaves the process's own environment.

    Worker processes (``--processes``) inherit the process environment: the REST
    API key, once read, is removed from it so that no child ever holds it.
    """
    if environ is not None:
        return environ
    env = dict(os.environ)
    os.environ.pop(ENV_KEY, None)
    return env


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``segment-braze`` and return its exit status.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
        environ: the environment (default ``os.environ``, from which the REST API
            key is then removed once read).
    """
    env = _environment(environ)
    command_name = ""
    try:
        with _sigterm_as_interrupt(), fewer_collections():
            args = _parser().parse_args(argv)
            command_name = args.command
            command: Callable[[argparse.Namespace, Mapping[str, str]], int] = args.run
            return command(args, env)
    except SegmentBrazeError as err:
        # Usage, settings, state, a refused key, a stopped sender: one line.
        _error(str(err))
        return _EXIT_USAGE
    except SystemExit as stop:  # --help and --version
        return stop.code if isinstance(stop.code, int) else 0
    except KeyboardInterrupt as stop:
        how = "terminated (SIGTERM)" if isinstance(stop, _Terminated) else "interrupted"
        if command_name == "replay":
            _error(f"{how}: the state is saved; run the same command again to resume")
        elif command_name == "send":
            _error(f"{how}: the summary above covers what was sent (send keeps no state)")
        else:
            _error(how)
        return _EXIT_TERMINATED if isinstance(stop, _Terminated) else _EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (| head): stop quietly, as the docs of
        # the signal module advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as err:
        # A full disk, a file that went away: what and where, never a traceback.
        where = f" ({err.filename})" if err.filename else ""
        _error(f"{err.strerror or type(err).__name__}{where}")
        return _EXIT_USAGE
    except Exception as err:  # noqa: BLE001 (a bug: one line still, never a traceback)
        detail = str(err)[:200]
        _error(
            f"unexpected error ({type(err).__name__}{': ' if detail else ''}{detail});"
            " what a replay recorded is saved: please report this"
        )
        return _EXIT_BUG


def _error(message: str) -> None:
    text = " ".join(message.split())  # one line, whatever the message
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)
