"""From input records to Braze, accounting for every message: the core of send and replay.

The reading thread translates, filters and claims messages; ``BrazeClient``'s
worker threads report each message's fate through ``on_outcome``, which records
it in the replay state and the dead-letter file. Memory holds only the messages
in flight (the client's bounded window).

With ``processes`` above 1 the translation runs in worker processes
(:mod:`segment_braze._processes`); the reading thread then claims each message
when its translation comes back, in input order, so the state sees the same
sequence of claims and releases as in one process.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import IO, Any, Final, NamedTuple

import attrs
import requests

from segment_braze import _json
from segment_braze._cli_config import TimeWindow
from segment_braze._client import BrazeClient
from segment_braze._inputs import Record
from segment_braze._processes import Counts, ProcessTranslator, Translated, count_objects
from segment_braze._replay import Claim, ReplayState, message_key
from segment_braze._report import DeliveryReport
from segment_braze._settings import Settings
from segment_braze._translate import translate
from segment_braze._translation import Translation
from segment_braze._usage import UsageError
from segment_braze.exceptions import AuthenticationError, InvalidMessage

__all__ = ["CommittingSession", "DeadLetter", "Feed", "Tally", "dry_run", "send"]

# Messages per BrazeClient.send call: each call's report lists its failures, so
# a long replay is sent in slices to keep memory flat. Order is kept: a slice
# is delivered before the next one starts.
_SLICE: Final = 20_000
# BrazeClient's reasons for a message Braze never processed: "not sent: ..." (a
# message too large for any request, or queued when the key was refused) and
# the refused key itself (HTTP 401/403: Braze processes nothing). Sending such a
# message again cannot duplicate it, so the state does not record it.
_NOT_SENT: Final = "not sent:"
_KEY_REFUSED: Final = "Braze refused the REST API key"


def _never_processed(reason: str) -> bool:
    return reason.startswith(_NOT_SENT) or _KEY_REFUSED in reason


class Tally:
    """Thread-safe counts of what became of the messages read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        """Add to a named count."""
        with self._lock:
            self.counts[name] += amount

    def drop(self, reason: str) -> None:
        """Count a message dropped by translation."""
        with self._lock:
            self.counts["dropped"] += 1
            self.dropped[reason] += 1

    def fail(self, reason: str) -> None:
        """Count a message Braze did not accept."""
        with self._lock:
            self.counts["failed"] += 1
            self.failed[reason] += 1

    def translation(self, translation: Translation) -> None:
        """Count the Braze objects of a translation and their data points."""
        self.objects(count_objects(translation))

    def objects(self, objects: Counts) -> None:
        """Add the counted Braze objects of one translation."""
        with self._lock:
            counts = self.counts
            counts["attribute objects"] += objects.attribute_objects
            counts["attribute points"] += objects.attribute_points
            counts["events"] += objects.events
            counts["purchases"] += objects.purchases
            counts["operations"] += objects.operations
            counts["warnings"] += objects.warnings

    def absorb(self, report: DeliveryReport) -> None:
        """Add the request and attribute-cache counts of a client report."""
        with self._lock:
            self.counts["requests"] += report.requests
            self.counts["retries"] += report.retries
            self.counts["attributes saved"] += report.attributes_saved
            self.counts["points saved"] += report.data_points_saved

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self.counts[name]

    @property
    def done(self) -> int:
        """Messages whose fate is known."""
        with self._lock:
            return self.counts["read"] - self.counts["in flight"]

    @property
    def unsuccessful(self) -> int:
        """Messages that failed or were invalid, in this run or an earlier one."""
        with self._lock:
            counts = self.counts
            return counts["failed"] + counts["invalid"] + counts["failed earlier"]


class DeadLetter:
    """The ``--dead-letter`` file: JSON Lines of every message not delivered.

    Appended to (a resumed replay adds to it), and flushed after every line, so
    a killed process loses none of them.
    """

    def __init__(self, path: str) -> None:
        try:
            self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise UsageError(
                f"cannot write the dead-letter file {path}: {err.strerror or err}"
            ) from err
        self._lock = threading.Lock()

    def write(self, record: Record, outcome: str, reason: str) -> None:
        """Write one message (or unreadable input) and why it was not delivered."""
        entry: dict[str, Any] = {
            "source": record.where,
            "messageId": record.message_id,
            "outcome": outcome,
            "reason": reason,
            "message": record.value,
        }
        if record.text is not None:
            entry["line"] = record.text
        data = _json.dumps(entry) + b"\n"
        with self._lock:
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


@attrs.define(kw_only=True)
class _Entry:
    record: Record
    key: str | None
    translation: Translation  # held, so that its id() stays unique while in flight


class _Screened(NamedTuple):
    """A record on its way to translation, with what is already known of it."""

    record: Record
    key: str | None = None
    verdict: str | None = None  # a count to add instead of translating
    error: str | None = None  # why the record is invalid


class Feed:
    """Turns input records into translations for the sender, accounting for each one.

    Args:
        records: the input, in order.
        settings: translation settings.
        tally: where counts go.
        note: prints one line to stderr (invalid input).
        state: the replay state (claims, duplicates, resume), or ``None``.
        window: the ``--since``/``--until`` selection, or ``None``.
        dead_letter: the dead-letter file, or ``None``.
        processes: processes in all; above 1, ``processes - 1`` worker
            processes translate while this one reads, claims and sends.
    """

    def __init__(
        self,
        *,
        records: Iterable[Record],
        settings: Settings,
        tally: Tally,
        note: Callable[[str], None],
        state: ReplayState | None = None,
        window: TimeWindow | None = None,
        dead_letter: DeadLetter | None = None,
        processes: int = 1,
    ) -> None:
        self._records = records
        self._settings = settings
        self._tally = tally
        self._note = note
        self._state = state
        self._window = window
        self._dead_letter = dead_letter
        self._processes = processes
        self._lock = threading.Lock()
        self._in_flight: dict[int, _Entry] = {}
        self.key_refused = False

    def translations(self) -> Generator[Translation, None, None]:
        """Yield the translations to send; everything else is accounted here."""
        if self._processes > 1:
            return self._translated_elsewhere(dry=False)
        return self._translated_here(dry=False)

    def dry_run(self) -> None:
        """Translate and account for every message as if Braze had accepted it."""
        messages = (
            self._translated_elsewhere(dry=True)
            if self._processes > 1
            else self._translated_here(dry=True)
        )
        for _ in messages:  # a dry run yields nothing: every message is settled
            pass

    def _translated_here(self, *, dry: bool) -> Generator[Translation, None, None]:
        tally, state = self._tally, self._state
        for record in self._records:
            if self.key_refused:
                return  # the rest stays unread, to be sent by the next run
            tally.add("read")
            screened = self._screen(record)
            if screened is None:
                continue
            key = screened.key
            if state is not None and key is not None:
                claim = state.claim(key)
                if claim is not Claim.NEW:
                    tally.add(claim.value)
                    continue
            try:
                translation = translate(record.value, self._settings)
            except InvalidMessage as err:
                self._release(key)
                self._invalid(record, f"invalid message: {err}")
                continue
            tally.translation(translation)
            if self._accepted(record, key, translation.dropped):
                if dry:
                    self._settle_dry(key)
                else:
                    yield self._hold(record, key, translation)

    def _translated_elsewhere(self, *, dry: bool) -> Generator[Translation, None, None]:
        translator = ProcessTranslator(self._settings, workers=self._processes - 1, keep=not dry)
        try:
            for screened, result in translator.map(self._screened()):
                if self.key_refused:
                    return  # the rest is not sent, to be sent by the next run
                handle = self._settle(screened, result, dry=dry)
                if handle is not None:
                    yield handle
        finally:
            translator.close()

    def _screened(self) -> Iterator[tuple[_Screened, Any]]:
        """The records for the worker processes: ``(screened, message to translate)``."""
        state = self._state
        # On a resumed replay, messages an earlier run decided are skipped here,
        # untranslated: their claim cannot change during this run.
        precheck = state is not None and state.resuming
        for record in self._records:
            if self.key_refused:
                return
            if record.error is not None:
                yield _Screened(record=record, error=record.error), None
                continue
            message = record.value
            if self._window is not None and not self._window.contains(message):
                yield _Screened(record=record, verdict="outside window"), None
                continue
            key = message_key(message) if state is not None else None
            if precheck and key is not None and state is not None:
                decided = state.decided(key)
                if decided is not None:
                    yield _Screened(record=record, verdict=decided.value), None
                    continue
            yield _Screened(record=record, key=key), message

    def _settle(
        self, screened: _Screened, result: Translated | None, *, dry: bool
    ) -> Translation | None:
        """Account for one record in input order; return the translation to send."""
        tally, record, key = self._tally, screened.record, screened.key
        tally.add("read")
        if result is None:
            # Passed through untranslated: invalid input, outside the window, or
            # decided by an earlier run.
            if screened.error is not None:
                self._invalid(record, screened.error)
            elif screened.verdict is not None:
                tally.add(screened.verdict)
            return None
        if self._state is not None and key is not None:
            claim = self._state.claim(key)
            if claim is not Claim.NEW:
                tally.add(claim.value)
                return None
        if result.error is not None:
            self._release(key)
            self._invalid(record, f"invalid message: {result.error}")
            return None
        if result.counts is not None:
            tally.objects(result.counts)
        if not self._accepted(record, key, result.dropped):
            return None
        if dry:
            self._settle_dry(key)
            return None
        if result.translation is None:  # pragma: no cover - kept unless dropped
            raise RuntimeError("a worker process returned no translation to send")
        return self._hold(record, key, result.translation)

    def _screen(self, record: Record) -> _Screened | None:
        """Account for an invalid record or one outside the window; else find its key."""
        if record.error is not None:
            self._invalid(record, record.error)
            return None
        if self._window is not None and not self._window.contains(record.value):
            self._tally.add("outside window")
            return None
        key = message_key(record.value) if self._state is not None else None
        return _Screened(record=record, key=key)

    def _accepted(self, record: Record, key: str | None, dropped: str | None) -> bool:
        """Whether a translated message goes on; a dropped one is accounted here."""
        if dropped is None:
            return True
        self._release(key)
        self._tally.drop(dropped)
        if self._dead_letter is not None:
            self._dead_letter.write(record, "dropped", dropped)
        return False

    def _hold(self, record: Record, key: str | None, translation: Translation) -> Translation:
        """Keep a message in flight until the sender reports its fate."""
        with self._lock:
            self._in_flight[id(translation)] = _Entry(
                record=record, key=key, translation=translation
            )
        self._tally.add("in flight")
        return translation

    def _settle_dry(self, key: str | None) -> None:
        """A dry run: account for a message as if Braze had accepted it."""
        self._tally.add("delivered")
        if self._state is not None and key is not None:
            self._state.finish(key, "delivered")

    def outcome(self, item: Any, outcome: str, reason: str | None) -> None:
        """``BrazeClient``'s ``on_outcome``: record a message's fate (any thread)."""
        with self._lock:
            entry = self._in_flight.pop(id(item), None)
        if entry is None:
            return
        self._tally.add("in flight", -1)
        key, state = entry.key, self._state
        if outcome == "delivered":
            self._tally.add("delivered")
            if state is not None and key is not None:
                state.finish(key, "delivered")
            return
        reason = reason or outcome
        if _KEY_REFUSED in reason:
            self.key_refused = True
        if outcome == "failed":
            self._tally.fail(reason)
        else:
            self._tally.drop(reason)
        # The dead-letter line first: a kill between the two re-sends the
        # message rather than losing its record.
        if self._dead_letter is not None:
            self._dead_letter.write(entry.record, outcome, reason)
        if state is not None and key is not None:
            if outcome == "failed" and not _never_processed(reason):
                state.finish(key, "failed")
            else:
                state.release(key)

    def _release(self, key: str | None) -> None:
        if self._state is not None and key is not None:
            self._state.release(key)

    def _invalid(self, record: Record, reason: str) -> None:
        self._tally.add("invalid")
        self._note(f"{record.where}: {reason}")
        if self._dead_letter is not None:
            self._dead_letter.write(record, "invalid", reason)


class CommittingSession(requests.Session):
    """The sender's HTTP session for a replay: commits the state before each request.

    Each worker thus has its last batch's outcomes on disk before it sends the
    next batch, which bounds what a kill can make a resumed run send twice to
    one batch per worker.

    Args:
        commit: makes the recorded outcomes durable.
        workers: the sender's worker threads (the connection pool's size).
    """

    def __init__(self, commit: Callable[[], None], *, workers: int) -> None:
        super().__init__()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=workers, max_retries=0
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self._commit = commit

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Commit the state, then send the request (BrazeClient sends every attempt here)."""
        self._commit()
        return super().send(request, **kwargs)


def send(feed: Feed, client: BrazeClient, tally: Tally) -> None:
    """Send every translation of ``feed`` with ``client``, slice by slice.

    Raises:
        AuthenticationError: Braze refused the key; the rest of the input is unread.
    """
    translations = feed.translations()
    try:
        while (head := next(translations, None)) is not None:
            batch = itertools.chain((head,), itertools.islice(translations, _SLICE - 1))
            try:
                report = client.send(batch)
            except AuthenticationError as err:
                if isinstance(err.report, DeliveryReport):
                    tally.absorb(err.report)
                raise
            tally.absorb(report)
    finally:
        translations.close()


def dry_run(feed: Feed) -> None:
    """Translate and account for every message as if Braze had accepted it."""
    feed.dry_run()
