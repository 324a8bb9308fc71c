"""From input records to Braze, accounting for every message: the core of send and replay.

The reading thread translates, filters and claims messages; ``BrazeClient``'s
worker threads report each message's fate through ``on_outcome``, which records
it in the replay state and the dead-letter file. Memory holds only the messages
in flight (the client's bounded window).

With ``processes`` above 1 the translation runs in worker processes
(:mod:`segment_braze._replay.processes`); the reading thread then claims each message
when its translation comes back, in input order, so the state sees the same
sequence of claims and releases as in one process.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Final, NamedTuple

import attrs

from segment_braze._deliver.pool import Prepared
from segment_braze._replay.cacheprocess import CacheLink
from segment_braze._replay.config import TimeWindow
from segment_braze._replay.deadletter import DeadLetter
from segment_braze._replay.identity import Identity, identify
from segment_braze._replay.inputs import Record
from segment_braze._replay.layout import folder_source
from segment_braze._replay.processes import ProcessTranslator, Translated
from segment_braze._replay.state import Claim, ReplayState, Verdict
from segment_braze._replay.tally import Tally
from segment_braze._replay.transform import DROPPED, apply, load
from segment_braze._settings import Settings
from segment_braze._translate.calls import translate
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import InvalidMessage

__all__ = ["Feed"]

# BrazeClient's reasons for a message Braze never processed: "not sent: ..." (a
# message too large for any request, or queued when the key was refused) and
# the refused key itself (HTTP 401/403: Braze processes nothing). Sending such a
# message again cannot duplicate it, so the state does not record it.
_NOT_SENT: Final = "not sent:"
_AHEAD: Final = 256  # records whose claims the state looks up in one query
_KEY_REFUSED: Final = "Braze refused the REST API key"


def _never_processed(reason: str) -> bool:
    return reason.startswith(_NOT_SENT) or _KEY_REFUSED in reason


@attrs.define(kw_only=True)
class _Entry:
    record: Record
    identity: Identity | None
    # Held, so that its id() stays unique while in flight.
    translation: Translation | Prepared


class _Screened(NamedTuple):
    """A record on its way to translation, with what is already known of it."""

    record: Record
    identity: Identity | None = None
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
        transform: ``--transform MODULE:FUNCTION``, run on each message before
            de-duplication and translation (in the worker processes, if any), or
            None.
        attribute_values: the sender has an attribute cache: worker processes
            hand back attributes objects as dicts, for it to see their values.
        cache: the sender's attribute cache, when one worker process may hold
            it (see ``cacheprocess``); :meth:`close` then saves its last answers.
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
        transform: str | None = None,
        attribute_values: bool = False,
        cache: CacheLink | None = None,
    ) -> None:
        self._records = records
        self._settings = settings
        self._tally = tally
        self._note = note
        self._state = state
        self._window = window
        self._dead_letter = dead_letter
        self._processes = processes
        self._transform_spec = transform
        self._attribute_values = attribute_values
        self._cache = cache
        self._translator: ProcessTranslator | None = None
        self._transform = load(transform) if transform is not None else None
        self._lock = threading.Lock()
        self._in_flight: dict[int, _Entry] = {}
        self._folder: tuple[str, str | None] = ("", None)  # the last input, its source
        self._known: dict[int, Identity] = {}  # identities of the chunk looked up ahead
        self.key_refused = False

    def translations(self) -> Generator[Translation | Prepared, None, None]:
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

    def _translated_here(self, *, dry: bool) -> Generator[Translation | Prepared, None, None]:
        tally = self._tally
        for record in self._looked_ahead():
            if self.key_refused:
                return  # the rest stays unread, to be sent by the next run
            tally.add("read")
            message = self._admit(record)
            if message is None:
                continue
            identity = self._identity(record, message) if self._state is not None else None
            if not self._claimed(record, identity):
                continue
            try:
                translation = translate(message, self._settings)
            except InvalidMessage as err:
                self._release(identity)
                self._invalid(record, f"invalid message: {err}")
                continue
            tally.translation(translation)
            if self._accepted(record, identity, translation.dropped):
                if dry:
                    self._settle_dry(identity)
                else:
                    yield self._hold(record, identity, translation)

    def _translated_elsewhere(self, *, dry: bool) -> Generator[Translation | Prepared, None, None]:
        try:
            translator = ProcessTranslator(
                self._settings,
                workers=self._processes - 1,
                keep=not dry,
                transform=self._transform_spec,
                attribute_values=self._attribute_values,
                cache=self._cache,
            )
        except (OSError, ImportError, NotImplementedError) as err:
            # No worker processes here (a platform that cannot start them, or
            # no process left under a limit): the same work in this one.
            self._note(
                f"worker processes could not start ({type(err).__name__}); "
                "translating in this process (as with --processes 1)"
            )
            yield from self._translated_here(dry=dry)
            return
        try:
            for screened, result in translator.map(self._screened()):
                if self.key_refused:
                    return  # the rest is not sent, to be sent by the next run
                handle = self._settle(screened, result, dry=dry)
                if handle is not None:
                    yield handle
        finally:
            if self._cache is None:
                translator.close()
            else:  # the worker may hold the cache: closed once every answer is in
                self._translator = translator

    def close(self) -> None:
        """Stop the worker processes kept for the attribute cache (see ``cache``).

        Call it once the sender has every answer: the worker holding the cache
        settles and saves the last ones first.

        Raises:
            FileError: the worker could not write the cache.
        """
        translator, self._translator = self._translator, None
        if translator is not None:
            translator.close()

    def _screened(self) -> Iterator[tuple[_Screened, Any]]:
        """The records for the worker processes: ``(screened, message to translate)``."""
        state = self._state
        # On a resumed replay, messages an earlier run decided are skipped here,
        # untranslated: their claim cannot change during this run.
        precheck = state is not None and state.resuming
        for record in self._looked_ahead():
            if self.key_refused:
                return
            if record.error is not None:
                yield _Screened(record=record, error=record.error), None
                continue
            message = record.value
            if self._window is not None and not self._window.contains(message):
                yield _Screened(record=record, verdict="outside window"), None
                continue
            if self._transform is not None:
                # The workers transform it, then say who it is.
                yield _Screened(record=record), (message, self._folder_of(record))
                continue
            identity = self._identity(record, message) if state is not None else None
            if precheck and identity is not None and state is not None:
                decided = state.decided(identity)
                if decided is not None:
                    yield _Screened(record=record, verdict=decided.value), None
                    continue
            # A line that is this message alone goes as its bytes: the worker
            # parses them again, cheaper for this process than pickling the value.
            data = record.data
            yield _Screened(record=record, identity=identity), message if data is None else data

    def _settle(
        self, screened: _Screened, result: Translated | None, *, dry: bool
    ) -> Translation | Prepared | None:
        """Account for one record in input order; return what to send."""
        tally, record = self._tally, screened.record
        tally.add("read")
        if result is None:
            # Passed through untranslated: invalid input, outside the window, or
            # decided by an earlier run.
            if screened.error is not None:
                self._invalid(record, screened.error)
            elif screened.verdict is not None:
                tally.add(screened.verdict)
            return None
        if result.transformed:  # dropped by the transform, or it raised
            if result.error is not None:
                self._invalid(record, result.error)
            else:
                self._drop(record, DROPPED)
            return None
        identity = result.identity if result.identity is not None else screened.identity
        if not self._claimed(record, identity):
            return None
        if result.error is not None:
            self._release(identity)
            self._invalid(record, f"invalid message: {result.error}")
            return None
        if result.counts is not None:
            tally.objects(result.counts)
        if not self._accepted(record, identity, result.dropped):
            return None
        if dry:
            self._settle_dry(identity)
            return None
        if result.prepared is None:  # pragma: no cover - kept unless dropped
            raise RuntimeError("a worker process returned nothing to send")
        return self._hold(record, identity, result.prepared)

    def _admit(self, record: Record) -> dict[str, Any] | None:
        """The message to claim and translate; None when it is accounted here already.

        Invalid input and messages outside the window stop here, and so do those
        the transform drops or fails on (before de-duplication, as the transform
        may change the messageId).
        """
        if record.error is not None:
            self._invalid(record, record.error)
            return None
        message: dict[str, Any] = record.value
        if self._window is not None and not self._window.contains(message):
            self._tally.add("outside window")
            return None
        if self._transform is None:
            return message
        applied = apply(self._transform, message, copy=True)
        if applied.error is not None:
            self._invalid(record, applied.error)
        elif applied.message is None:
            self._drop(record, DROPPED)
        return applied.message

    def _folder_of(self, record: Record) -> str | None:
        """The source id of the segment-logs folder a record was read from (one look per file)."""
        name, folder = self._folder
        if name != record.source:
            folder = folder_source(record.source)
            self._folder = (record.source, folder)
        return folder

    def _looked_ahead(self) -> Iterator[Record]:
        """The records, read in chunks whose claims the state looks up in one query.

        Without a state there is nothing to look up; with a transform, a message's
        identity is known only once the transform ran, so it is claimed alone.
        """
        state = self._state
        if state is None or self._transform is not None:
            yield from self._records
            return
        records = iter(self._records)
        while chunk := list(itertools.islice(records, _AHEAD)):
            known: dict[int, Identity] = {}
            for record in chunk:  # alive while in the chunk, so their id() is theirs
                message = record.value
                if record.error is None and (
                    self._window is None or self._window.contains(message)
                ):
                    known[id(record)] = identify(message, self._folder_of(record))
            self._known = known
            state.look_ahead(known.values())
            yield from chunk
        self._known = {}

    def _identity(self, record: Record, message: dict[str, Any]) -> Identity:
        """The identity of a record's message (after the transform, if any)."""
        known = self._known.pop(id(record), None)
        if known is not None:  # looked up ahead: no transform, so the same message
            return known
        return identify(message, self._folder_of(record))

    def _claimed(self, record: Record, identity: Identity | None) -> bool:
        """Claim a message in the state; a duplicate or earlier one is accounted here."""
        if self._state is None or identity is None:
            return True
        verdict = self._state.claim(identity, (record.source, record.line, record.item))
        if verdict.claim is Claim.NEW:
            return True
        self._tally.add(verdict.claim.value)
        if verdict.claim is Claim.DUPLICATE and self._dead_letter is not None:
            reason = self._duplicate(identity, verdict)
            self._dead_letter.write(record, "duplicate", reason, duplicate_of=verdict.first)
        return False

    def _duplicate(self, identity: Identity, verdict: Verdict) -> str:
        """Why a message is a duplicate, for the dead-letter file."""
        if identity.id.startswith("h:"):
            rule = "identical, and no messageId"
        elif verdict.same:
            rule = "same source, messageId and time"
        else:
            hours = self._state.window / 3_600_000 if self._state is not None else 0
            rule = f"same source and messageId within {hours:g} hours"
        return f"duplicate of {verdict.first} ({rule})"

    def _accepted(self, record: Record, identity: Identity | None, dropped: str | None) -> bool:
        """Whether a translated message goes on; a dropped one is accounted here."""
        if dropped is None:
            return True
        self._release(identity)
        self._drop(record, dropped)
        return False

    def _drop(self, record: Record, reason: str) -> None:
        self._tally.drop(reason)
        if self._dead_letter is not None:
            self._dead_letter.write(record, "dropped", reason)

    def _hold(
        self, record: Record, identity: Identity | None, translation: Translation | Prepared
    ) -> Translation | Prepared:
        """Keep a message in flight until the sender reports its fate."""
        with self._lock:
            self._in_flight[id(translation)] = _Entry(
                record=record, identity=identity, translation=translation
            )
        self._tally.add("in flight")
        return translation

    def _settle_dry(self, identity: Identity | None) -> None:
        """A dry run: account for a message as if Braze had accepted it."""
        self._tally.add("delivered")
        if self._state is not None and identity is not None:
            self._state.finish(identity, "delivered")

    def outcome(self, item: Any, outcome: str, reason: str | None) -> None:
        """``BrazeClient``'s ``on_outcome``: record a message's fate (any thread)."""
        with self._lock:
            entry = self._in_flight.pop(id(item), None)
        if entry is None:
            return
        self._tally.add("in flight", -1)
        identity, state = entry.identity, self._state
        if outcome == "delivered":
            self._tally.add("delivered")
            if state is not None and identity is not None:
                state.finish(identity, "delivered")
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
        if state is not None and identity is not None:
            if outcome == "failed" and not _never_processed(reason):
                state.finish(identity, "failed")
            else:
                state.release(identity)

    def _release(self, identity: Identity | None) -> None:
        if self._state is not None and identity is not None:
            self._state.release(identity)

    def _invalid(self, record: Record, reason: str) -> None:
        self._tally.add("invalid")
        self._note(f"{record.where}: {reason}")
        if self._dead_letter is not None:
            self._dead_letter.write(record, "invalid", reason)
