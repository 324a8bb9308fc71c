"""One ``send`` call at work: reading the input, the worker threads, the ledger.

Messages are sharded by user across worker threads, each building its own
batches and sending them one at a time, so one user's requests keep their order.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from segment_braze import _json
from segment_braze._deliver.answers import (
    has_errors,
    named_entry,
    named_failures,
    release_attributes,
    settle_attributes,
)
from segment_braze._deliver.batching import (
    MAX_USER_ENTRIES,
    Packer,
    Pending,
    operation_batches,
    shard_of,
    track_body,
)
from segment_braze._deliver.report import DeliveryReport, Ledger, message_label
from segment_braze._deliver.runconfig import RunConfig
from segment_braze._deliver.transport import UNAUTHORIZED_CAUSES, Answer, HookRaised, Unauthorized
from segment_braze._translate.braze import TRACK_PATH
from segment_braze.exceptions import AuthenticationError, SenderError

__all__ = ["HOOK_STOP", "Run", "RunConfig"]

logger = logging.getLogger("segment_braze")

_END: Final = object()
# A worker is woken for _CHUNK messages and looks every _POLL s (linger if shorter):
# each look takes the GIL from the reading thread (docs/performance.md).
_CHUNK: Final = 64
_POLL: Final = 0.1
_ROOM_POLL: Final = 0.02  # a reader waiting for room looks again (bounds one race)
HOOK_STOP: Final = "not sent: a hook given to BrazeClient raised"


class Run:
    """One ``send`` call: the reading loop, the workers and the ledger."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.ledger = Ledger(on_failure=config.on_failure, on_outcome=config.on_outcome)
        self.stop = threading.Event()
        self.unauthorized: Unauthorized | None = None
        self.stop_reason = "not sent"
        self.crash: BaseException | None = None
        self.lock = threading.Lock()

    def execute(self, messages: Iterable[Any]) -> DeliveryReport:
        """Read ``messages``, hand them to the workers and return the report."""
        config = self.config
        workers = [_Worker(self, index) for index in range(config.workers)]
        for worker in workers:
            worker.thread.start()
        source = config.source
        try:
            prepared = self.each(messages) if source is None else source(messages, self)
            count = len(workers)
            for _position, _item, pending in prepared:
                if pending is not None:
                    shard = pending.shard
                    if shard is None:
                        shard = shard_of(pending.user_key, count)
                    workers[shard].put(pending)
        finally:
            for worker in workers:
                worker.end()
            # Each worker's waits end when the run stops and each request has a
            # total deadline (request_timeout), so these joins are bounded.
            for worker in workers:
                worker.thread.join()
        report = self.ledger.report()
        if isinstance(self.crash, SenderError):
            # Ours, already worded (a translation process died).
            raise SenderError(str(self.crash), report=report) from self.crash
        if self.crash is not None:
            raise SenderError(
                f"sending stopped on an unexpected error ({type(self.crash).__name__}); "
                "every message not delivered before it is reported failed",
                report=report,
            ) from self.crash
        if self.ledger.hook_error is not None:
            raise self.ledger.hook_error
        if self.unauthorized is not None:
            status = self.unauthorized.status
            error = AuthenticationError(
                f"Braze refused the REST API key (HTTP {status}): {UNAUTHORIZED_CAUSES[status]}",
                status=status,
                report=report,
            )
            raise error
        return report

    def admitted(self, messages: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """``(position, item)`` of each input item; once stopped, each is failed instead."""
        for position, item in enumerate(messages):
            if self.ledger.hook_error is not None:
                # The caller's hook is broken: failures would no longer reach
                # its dead-letter store, so stop sending.
                self.halt(HOOK_STOP)
            if self.stop.is_set():
                self.fail_unsent(item, message_label(item, f"#{position}"))
                continue
            yield position, item

    def each(self, messages: Iterable[Any]) -> Iterator[tuple[int, Any, Pending | None]]:
        """Prepare the input items one by one, here (the default source)."""
        for position, item in self.admitted(messages):
            yield position, item, self.prepare(item, position)

    def prepare(
        self, item: Any, position: int, prepare: Callable[..., Any] | None = None, *extra: Any
    ) -> Pending | None:
        """Prepare one item (``prepare(..., *extra)`` or the config's): a bug fails it alone."""
        try:
            done: Pending | None = (prepare or self.config.prepare)(
                item, position, self.ledger, *extra
            )
        except SenderError as err:  # ours: the attribute cache failed, so stop the run
            self.crashed(err, reason=f"not sent: {str(err).split(';')[0]}")
            self.fail_unsent(item, message_label(item, f"#{position}"))
            return None
        except Exception as err:  # one bad message costs only itself
            label = message_label(item, f"#{position}")
            logger.exception("message %s could not be prepared (%s)", label, type(err).__name__)
            self.ledger.failed(
                item, label, f"not sent: unexpected error preparing it ({type(err).__name__})", None
            )
            return None
        return done

    def crashed(self, err: BaseException, *, reason: str | None = None) -> None:
        """Remember the first unexpected error of a worker and stop sending."""
        with self.lock:
            if self.crash is None:
                self.crash = err
        name = type(err).__name__
        self.halt(reason or f"not sent: the sender stopped on an unexpected error ({name})")

    def fail_unsent(self, item: Any, label: str) -> None:
        """Account for a message that will not be sent, with the stop's reason."""
        self.ledger.failed(item, label, self.stop_reason, None)

    def halt(self, reason: str) -> None:
        """Stop sending; messages not yet sent fail with ``reason``."""
        with self.lock:
            if not self.stop.is_set():
                self.stop_reason = reason
                self.stop.set()

    def unauthorized_answer(self, err: Unauthorized) -> None:
        """Remember Braze's first refusal of the key and stop sending."""
        with self.lock:
            if self.unauthorized is None:
                self.unauthorized = err
        self.halt("not sent: Braze refused the REST API key")


class _Worker:
    """Builds batches for its share of users and sends them, one at a time.

    Messages are sharded by user, so one user's messages are sent by one worker
    in order: Braze does not order separate requests.
    """

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.config = run.config
        self.ledger = run.ledger
        # An inbox the worker empties in one go: not a GIL hand-off per message.
        self.inbox: list[Any] = []
        self.inbox_lock = threading.Lock()
        self.wake = threading.Event()
        # The window (the memory bound): messages handed over but not yet taken.
        self.queued = 0  # written by the reading thread only
        self.taken = 0  # written by this worker only
        self.room = threading.Event()
        self.waiting_for_room = False
        # What the worker took from the inbox and has not yet handled, and the
        # message in hand: if the worker fails, drain() accounts for both.
        self.unread: collections.deque[Any] = collections.deque()
        self.current: Pending | None = None
        self.ended = False  # the worker has taken _END from its inbox
        self.packer = Packer(legacy_limits=self.config.legacy_limits)
        self.sending: list[Pending] = []  # batches on their way: drain() finds them
        self.deferred: list[Pending] = []
        self.deferred_users: set[str] = set()
        self.deferred_entries = 0
        self.thread = threading.Thread(
            target=self.loop, name=f"segment-braze-sender-{index}", daemon=True
        )

    def put(self, message: Pending) -> None:
        """Hand a message to this worker; wait while ``window`` messages wait for it."""
        with self.inbox_lock:
            self.inbox.append(message)
            waiting = len(self.inbox)
        self.queued += message.count
        if waiting == _CHUNK:
            self.wake.set()
        window = self.config.window
        while self.queued - self.taken > window and self.thread.is_alive():
            self.room.clear()
            self.waiting_for_room = True
            self.wake.set()
            # The timeout bounds the one race (the worker looked at the flag just
            # before it was set) to a short pause, never a hang.
            self.room.wait(_ROOM_POLL)
        self.waiting_for_room = False

    def end(self) -> None:
        """Tell the worker the input has ended (it sends what it holds, then stops)."""
        with self.inbox_lock:
            self.inbox.append(_END)
        self.wake.set()

    def take(self) -> list[Any]:
        """Whatever the reading thread has handed over (possibly nothing), after a wait."""
        self.wake.wait(min(_POLL, max(self.config.linger, _ROOM_POLL)))
        self.wake.clear()
        with self.inbox_lock:
            items, self.inbox = self.inbox, []
        return items

    def took(self, count: int) -> None:
        """Count messages as taken from the window; let a waiting reader go on."""
        self.taken += count
        if self.waiting_for_room and self.queued - self.taken <= self.config.window // 2:
            self.room.set()

    def loop(self) -> None:
        try:
            last = time.monotonic()
            while True:
                items = self.take()
                if not items:
                    if time.monotonic() - last >= self.config.linger:
                        # The input is slow: send the part-filled batch.
                        self.flush()
                        last = time.monotonic()
                    continue
                self.unread.extend(items)
                while self.unread:
                    item = self.unread.popleft()
                    if item is _END:
                        self.ended = True
                        self.flush()
                        return
                    self.took(item.count)
                    self.current = item
                    self.add(item)
                    self.current = None
                last = time.monotonic()
        except BaseException as err:  # noqa: BLE001 (raised by send() as SenderError)
            # A bug here must not hang send(): record it, account for every
            # message this worker holds or will be given, and let send() raise.
            self.run.crashed(err)
            self.drain(self.run.stop_reason)

    def drain(self, reason: str) -> None:
        """Fail every message this worker holds or will still be given."""
        # The batch and the deferred messages stay in place while they are sent
        # (see flush), so whatever was in flight is here too; `done` keeps the
        # ones already decided from being counted twice.
        held = [*self.packer.messages(), *self.sending, *self.deferred]
        if self.current is not None:
            held.append(self.current)
        self.finish_failed(held, reason, None)
        # After _END (a failure in the last flush) nothing more will come.
        while not self.ended:
            self.unread.extend(self.take())
            while self.unread:
                item = self.unread.popleft()
                if item is _END:
                    self.ended = True
                    break
                self.took(item.count)
                self.finish_failed([item], reason, None)

    def add(self, message: Pending) -> None:
        if self.run.stop.is_set():
            self.finish_failed([message], self.run.stop_reason, None)
            return
        # Keep one user's order: this user's waiting user-management entries (a
        # delete, a merge) must go before this message's track objects.
        batched = message.has_track or bool(message.before)
        if batched and message.shares_user(self.deferred_users):
            self.flush()
        elif message.before and any(
            m.shares_user({message.user_key}) for m in self.packer.messages()
        ):
            # Its entries go before its batch's track request, so this user's
            # earlier objects waiting in a batch go first.
            self.flush_track()
        if batched:
            self.send_ready(self.packer.add(message))
        if message.operations:
            # Sent after the message's track objects, once 50 entries wait (Braze's
            # per-request maximum) or the input pauses or ends.
            self.deferred.append(message)
            self.deferred_users.add(message.user_key)
            self.deferred_entries += len(message.operations)
        if self.deferred_entries >= MAX_USER_ENTRIES:
            self.flush()

    def flush(self) -> None:
        """Send everything waiting: track objects first, then their entries."""
        self.flush_track()
        # The deferred messages stay in self.deferred until they are decided: if
        # sending them fails unexpectedly, drain() finds them there.
        deferred = self.deferred
        ready = [message for message in deferred if not message.done]
        for path, key, entries, owners in operation_batches(ready):
            self.send_operations(path, key, entries, owners)
        self.finish_delivered(deferred)
        self.deferred, self.deferred_entries, self.deferred_users = [], 0, set()

    def flush_track(self) -> None:
        self.send_ready(self.packer.take_all())

    def send_ready(self, ready: list[list[Pending]]) -> None:
        # Kept in self.sending until decided, for drain() if sending fails.
        self.sending = [message for batch in ready for message in batch]
        for ready_batch in ready:
            batch = ready_batch
            if any(message.before for message in batch):
                # Entries that must reach Braze before the batch's objects; a message
                # whose entry failed does not send its objects.
                for path, key, entries, owners in operation_batches(batch, before=True):
                    self.send_operations(path, key, entries, owners)
                batch = [message for message in batch if not message.done]
            tracked = [message for message in batch if message.has_track]
            if tracked:
                self.send_track(tracked)
            # A message with entries still to send is finished by flush().
            self.finish_delivered([message for message in batch if not message.operations])
        self.sending = []

    def finish_delivered(self, messages: list[Pending]) -> None:
        items: list[Any] = []
        for message in messages:
            if not message.done:
                message.done = True
                if message.bundle is not None:
                    items.extend(message.bundle.items)
                else:
                    items.append(message.item)
        self.ledger.delivered_all(items)

    def post(self, path: str, body: bytes) -> Answer:
        try:
            return self.config.post(path, body, self.ledger, self.run.stop)
        except Unauthorized as err:
            self.run.unauthorized_answer(err)
            return Answer(
                status=err.status, reason=f"Braze refused the REST API key (HTTP {err.status})"
            )
        except HookRaised as raised:
            # The caller's own error: send() re-raises it as it is.
            self.ledger.hook_failed(raised.error)
            self.run.halt(HOOK_STOP)
            return Answer(status=None, reason=HOOK_STOP)

    def send_track(self, messages: list[Pending]) -> None:
        work = [messages]
        # Bundles taken apart here: their messages are delivered at the end, unless failed.
        exploded: list[Pending] = []
        while work:
            group = work.pop()
            answer = self.post(TRACK_PATH, track_body(group))
            if has_errors(answer) or answer.status == 413:
                # Braze names single objects, or the request must be split:
                # bundles become their messages again (the same body).
                group = self.unbundled(group, exploded)
            if answer.ok:
                self.accepted(group, answer)
            elif answer.status == 413 and len(group) > 1:
                # Braze: payload over 4 MB; split and resend the halves.
                middle = len(group) // 2
                work.extend((group[middle:], group[:middle]))
            elif answer.status == 400 and (named := named_failures(group, answer)):
                # Braze named the offending objects: only their messages fail,
                # the others were not processed and go again.
                for message, reason in named.items():
                    self.finish_failed([message], reason, answer.status)
                rest = [message for message in group if message not in named]
                if rest:
                    work.append(rest)
            else:
                self.finish_failed(group, answer.reason, answer.status)
        self.finish_delivered(exploded)

    def unbundled(self, group: list[Pending], exploded: list[Pending]) -> list[Pending]:
        """``group`` with each bundle replaced by its messages (kept for drain() too)."""
        if all(message.bundle is None for message in group):
            return group
        singles: list[Pending] = []
        for message in group:
            if message.bundle is not None and not message.done:
                parts = message.explode()
                # Its messages carry its fate from here: found by drain() in
                # self.sending, delivered at the end of send_track().
                self.sending.extend(parts)
                exploded.extend(parts)
                message.done = True
                singles.extend(parts)
            else:
                singles.append(message)
        return singles

    def accepted(self, group: list[Pending], answer: Answer) -> None:
        if self.config.attribute_cache is not None:
            settle_attributes(self.config.attribute_cache, group, answer)
        for message, reason in named_failures(group, answer).items():
            self.finish_failed([message], reason, answer.status)

    def send_operations(
        self, path: str, key: str, entries: list[Any], owners: list[Pending]
    ) -> None:
        live = [(entry, owner) for entry, owner in zip(entries, owners, strict=True)]
        while live:
            live = [(entry, owner) for entry, owner in live if not owner.done]
            if not live:
                return
            answer = self.post(path, _json.dumps({key: [entry for entry, _ in live]}))
            if answer.ok:
                return
            index = named_entry(answer, key)
            if index is not None and index < len(live):
                # Braze named the offending entry: only its message fails, the
                # others were not processed and go again.
                self.finish_failed([live[index][1]], answer.reason, answer.status)
                del live[index]
                continue
            self.finish_failed([owner for _, owner in live], answer.reason, answer.status)
            return

    def finish_failed(self, messages: list[Pending], reason: str, status: int | None) -> None:
        for message in messages:
            if not message.done:
                message.done = True
                release_attributes(self.config.attribute_cache, message)
                for item, label in message.outcomes():
                    self.ledger.failed(item, label, reason, status)
