"""BrazeClient: deliver translations to Braze and account for every message."""

from __future__ import annotations

import queue
import random
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import requests

from segment_braze import _json
from segment_braze._batching import (
    MAX_USER_ENTRIES,
    Pending,
    TrackBatch,
    fits_alone,
    operation_batches,
    track_body,
)
from segment_braze._braze import TRACK_PATH
from segment_braze._cache import AttributeCache
from segment_braze._http import Answer, RetryPolicy, Unauthorized, post_with_retries
from segment_braze._ratelimit import RateLimiter
from segment_braze._report import DeliveryReport, Ledger
from segment_braze._settings import Settings
from segment_braze._translate import translate
from segment_braze._translation import Translation
from segment_braze.exceptions import AuthenticationError, InvalidMessage

__all__ = ["BrazeClient"]

_END: Final = object()
# A user-management 400 that names its entry: "external_ids[3]: ...".
_NAMED_ENTRY: Final = re.compile(r"(?P<key>\w+)\[(?P<index>\d+)\]")
_UNAUTHORIZED_CAUSES: Final = {
    401: "the REST API key is wrong, malformed, revoked, or from another Braze "
    "cluster or workspace (check datacenter/rest_endpoint)",
    403: "the REST API key lacks the permission for this endpoint "
    "(users.track, users.identify, users.merge, users.delete)",
}


def _version() -> str:
    from importlib.metadata import version  # noqa: PLC0415 (only needed once per client)

    return version("segment-braze")


class BrazeClient:
    """Send Segment messages to Braze in batches, with retries and exact accounting.

    Use it as a context manager::

        with BrazeClient(settings) as client:
            report = client.send(messages)

    ``send`` streams: it holds at most a bounded window of messages in memory.
    Delivery is at-least-once: a timeout after Braze received a request can send
    its events twice on retry (Braze has no idempotency key).

    Args:
        settings: needs ``rest_api_key`` and an endpoint.
        session: a ``requests.Session`` to use (default: one of our own with a
            connection pool of ``workers`` connections).
        workers: worker threads, each with at most one request in flight.
        max_attempts: attempts per request for 5xx, connection errors, timeouts.
        backoff_initial: first retry delay in seconds (jittered, then doubling).
        backoff_max: the cap on a retry delay.
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for Braze's answer.
        track_rate_limit: ``(requests, seconds)`` for ``/users/track``.
        users_rate_limit: ``(requests, seconds)`` shared by the user-management
            endpoints.
        max_rate_limit_waits: 429 answers tolerated per request before it fails.
        linger: seconds a part-filled batch waits for more messages when the
            input is slow.
        window: messages queued per worker before ``send`` waits (the memory bound).
        on_failure: called with each failed original message and the reason.
        on_outcome: called with each message and ``"delivered"``, ``"failed"``
            or ``"dropped"`` (and the reason), as its fate is decided.
        attribute_cache: leaves out attributes Braze already has (see
            ``AttributeCache``).
        seed: seeds the retry jitter (for reproducible tests).

    Raises:
        SettingsError: ``rest_api_key`` or the endpoint is missing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        workers: int = 4,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        track_rate_limit: tuple[int, float] = (3000, 3.0),
        users_rate_limit: tuple[int, float] = (20000, 60.0),
        max_rate_limit_waits: int = 20,
        linger: float = 0.5,
        window: int = 1000,
        on_failure: Callable[[Any, str], None] | None = None,
        on_outcome: Callable[[Any, str, str | None], None] | None = None,
        attribute_cache: AttributeCache | None = None,
        seed: int | None = None,
    ) -> None:
        settings.require_sending()
        if workers < 1 or max_attempts < 1 or window < 1:
            raise ValueError("workers, max_attempts and window must be at least 1")
        self.settings = settings
        self.workers = workers
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_rate_limit_waits=max_rate_limit_waits,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.linger = linger
        self.window = window
        self.on_failure = on_failure
        self.on_outcome = on_outcome
        self.attribute_cache = attribute_cache
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=1, pool_maxsize=workers, max_retries=0
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._limiters = {
            "track": RateLimiter(*track_rate_limit),
            "users": RateLimiter(*users_rate_limit),
        }
        self._rng = random.Random(seed)  # noqa: S311 (jitter, not security)
        self._rng_lock = threading.Lock()
        self._headers = {
            "Authorization": f"Bearer {settings.rest_api_key}",
            "Content-Type": "application/json",
            "User-Agent": f"segment-braze/{_version()} python-requests/{requests.__version__}",
        }
        self._base = str(settings.rest_endpoint).rstrip("/")

    def __repr__(self) -> str:
        return f"BrazeClient(endpoint={self._base!r}, workers={self.workers})"

    def __enter__(self) -> BrazeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        if self._own_session:
            self._session.close()

    def send(self, messages: Iterable[Mapping[str, Any] | Translation]) -> DeliveryReport:
        """Translate (where needed) and deliver messages; account for each one.

        Args:
            messages: Segment message dicts and/or ``Translation`` objects, any
                iterable (a generator of millions is fine: it is streamed).

        Returns:
            The report: every message delivered, failed or dropped, exactly once.

        Raises:
            AuthenticationError: Braze refused the key (401/403). Nothing further
                is sent; every unsent message is reported failed, and the report
                so far is on the exception's ``report`` attribute.
        """
        run = _Run(self)
        return run.execute(messages)

    # Internal helpers used by _Run and its workers.

    def _prepare(self, item: Any, position: int, ledger: Ledger) -> Pending | None:
        label = f"#{position}"
        if isinstance(item, Translation):
            translation = item
        else:
            try:
                translation = translate(item, self.settings)
            except InvalidMessage as err:
                ledger.dropped(item, _label(item, label), f"invalid message: {err}")
                return None
        label = translation.message_id or label
        if translation.dropped is not None:
            ledger.dropped(item, label, translation.dropped)
            return None
        if not translation.object_count and not translation.operations:
            ledger.dropped(item, label, "the translation holds nothing to send")
            return None
        attribute_objects = [obj.to_json() for obj in translation.attributes]
        if self.attribute_cache is not None and attribute_objects:
            result = self.attribute_cache.filter_objects(attribute_objects)
            attribute_objects = result.objects
            ledger.attributes(
                sent=result.sent, saved=result.saved, data_points_saved=result.data_points_saved
            )
        else:
            ledger.attributes(sent=_attribute_keys(attribute_objects), saved=0, data_points_saved=0)
        objects = {
            "attributes": [_json.dumps(obj) for obj in attribute_objects],
            "events": [_json.dumps(obj.to_json()) for obj in translation.events],
            "purchases": [_json.dumps(obj.to_json()) for obj in translation.purchases],
        }
        pending = Pending(
            item=item,
            label=label,
            user_key=_user_key(translation),
            objects=objects,
            attribute_objects=attribute_objects,
            operations=translation.operations,
        )
        if not pending.has_track and not pending.operations:
            # Everything was already known to Braze (attribute cache): nothing
            # to send, and nothing lost.
            pending.done = True
            ledger.delivered(item)
            return None
        problem = fits_alone(pending, legacy_limits=self.settings.legacy_track_limits)
        if problem is not None:
            ledger.failed(item, label, f"not sent: {problem}", None)
            return None
        return pending

    def _post(self, path: str, body: bytes, ledger: Ledger, stop: threading.Event) -> Answer:
        limiter = self._limiters["track" if path == TRACK_PATH else "users"]
        with self._rng_lock:
            rng = random.Random(self._rng.random())  # noqa: S311 (jitter)
        return post_with_retries(
            self._session,
            self._base + path,
            body,
            headers=self._headers,
            limiter=limiter,
            policy=self.policy,
            count_request=lambda retry: ledger.request(retry=retry),
            should_stop=stop.is_set,
            rng=rng,
        )


def _label(item: Any, default: str) -> str:
    if isinstance(item, Mapping):
        message_id = item.get("messageId")
        if isinstance(message_id, str) and message_id:
            return message_id
    return default


def _attribute_keys(objects: list[dict[str, Any]]) -> int:
    identifiers = {"external_id", "user_alias", "braze_id", "_update_existing_only"}
    return sum(1 for obj in objects for key in obj if key not in identifiers)


def _user_key(translation: Translation) -> str:
    """The key that decides which worker sends a message: one key, one order.

    An anonymous visitor's alias and the identify that merges it into a known
    user share the alias's key, so the merge never overtakes the visitor's own
    events (which would orphan them on a fresh alias profile).
    """
    for operation in translation.operations:
        entry = operation.entry
        if operation.key == "aliases_to_identify" and isinstance(entry, Mapping):
            return f"user_alias:{entry['user_alias']['alias_name']}"
    for objects in (translation.attributes, translation.events, translation.purchases):
        if objects:
            identifier = objects[0].identifier
            return f"{identifier.kind}:{identifier.value}"
    for operation in translation.operations:
        entry = operation.entry
        if isinstance(entry, str):
            return f"external_id:{entry}"
        if isinstance(entry, Mapping):
            keep = entry.get("identifier_to_keep", entry)
            if isinstance(keep, Mapping) and "external_id" in keep:
                return f"external_id:{keep['external_id']}"
    return ""


class _Run:
    """One ``send`` call: the reading loop, the workers and the ledger."""

    def __init__(self, client: BrazeClient) -> None:
        self.client = client
        self.ledger = Ledger(on_failure=client.on_failure, on_outcome=client.on_outcome)
        self.stop = threading.Event()
        self.unauthorized: Unauthorized | None = None
        self.stop_reason = "not sent"
        self.crash: BaseException | None = None
        self.lock = threading.Lock()

    def execute(self, messages: Iterable[Any]) -> DeliveryReport:
        client = self.client
        workers = [_Worker(self, index) for index in range(client.workers)]
        for worker in workers:
            worker.thread.start()
        try:
            for position, item in enumerate(messages):
                if self.ledger.hook_error is not None:
                    # The caller's hook is broken: failures would no longer reach
                    # its dead-letter store, so stop sending.
                    self.halt("not sent: a hook given to BrazeClient raised")
                if self.stop.is_set():
                    self.fail_unsent(item, _label(item, f"#{position}"))
                    continue
                pending = client._prepare(item, position, self.ledger)
                if pending is not None:
                    shard = zlib.crc32(pending.user_key.encode()) % len(workers)
                    workers[shard].queue.put(pending)
        finally:
            for worker in workers:
                worker.queue.put(_END)
            for worker in workers:
                worker.thread.join()
        if self.crash is not None:
            raise self.crash
        if self.ledger.hook_error is not None:
            raise self.ledger.hook_error
        report = self.ledger.report()
        if self.unauthorized is not None:
            status = self.unauthorized.status
            error = AuthenticationError(
                f"Braze refused the REST API key (HTTP {status}): {_UNAUTHORIZED_CAUSES[status]}",
                status=status,
                report=report,
            )
            raise error
        return report

    def fail_unsent(self, item: Any, label: str) -> None:
        self.ledger.failed(item, label, self.stop_reason, None)

    def halt(self, reason: str) -> None:
        """Stop sending; messages not yet sent fail with ``reason``."""
        with self.lock:
            if not self.stop.is_set():
                self.stop_reason = reason
                self.stop.set()

    def unauthorized_answer(self, err: Unauthorized) -> None:
        with self.lock:
            if self.unauthorized is None:
                self.unauthorized = err
        self.halt("not sent: Braze refused the REST API key")


class _Worker:
    """Builds batches for its share of users and sends them, one at a time.

    Messages are sharded by user, so one user's messages are sent by one worker
    in order: Braze does not order separate requests.
    """

    def __init__(self, run: _Run, index: int) -> None:
        self.run = run
        self.client = run.client
        self.ledger = run.ledger
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, self.client.window))
        self.batch = TrackBatch(legacy_limits=self.client.settings.legacy_track_limits)
        self.deferred: list[Pending] = []
        self.deferred_entries = 0
        self.thread = threading.Thread(
            target=self.loop, name=f"segment-braze-sender-{index}", daemon=True
        )

    def loop(self) -> None:
        try:
            while True:
                try:
                    item = self.queue.get(timeout=self.client.linger)
                except queue.Empty:
                    self.flush()
                    continue
                if item is _END:
                    self.flush()
                    return
                self.add(item)
        except BaseException as err:  # noqa: BLE001 (re-raised by send(), never swallowed)
            # A bug here must not hang send(): record it, account for every
            # message this worker holds or will be given, and let send() re-raise.
            self.run.crash = err
            self.run.halt("not sent: internal error in the sender")
            self.drain(self.run.stop_reason)

    def drain(self, reason: str) -> None:
        self.finish_failed([*self.batch.messages, *self.deferred], reason, None)
        while (item := self.queue.get()) is not _END:
            self.finish_failed([item], reason, None)

    def add(self, message: Pending) -> None:
        if self.run.stop.is_set():
            self.finish_failed([message], self.run.stop_reason, None)
            return
        # Keep one user's order: this user's waiting user-management entries (a
        # delete, a merge) must go before this message's track objects.
        if message.has_track and any(p.user_key == message.user_key for p in self.deferred):
            self.flush()
        if message.has_track:
            if not self.batch.fits(message):
                self.flush_track()
            self.batch.add(message)
        if message.operations:
            # Sent after the message's track objects, once 50 entries wait (Braze's
            # per-request maximum) or the input pauses or ends.
            self.deferred.append(message)
            self.deferred_entries += len(message.operations)
        if self.deferred_entries >= MAX_USER_ENTRIES:
            self.flush()
        elif self.batch.full:
            self.flush_track()

    def flush(self) -> None:
        """Send everything waiting: track objects first, then their entries."""
        self.flush_track()
        deferred, self.deferred, self.deferred_entries = self.deferred, [], 0
        ready = [message for message in deferred if not message.done]
        for path, key, entries, owners in operation_batches(ready):
            self.send_operations(path, key, entries, owners)
        self.finish_delivered(deferred)

    def flush_track(self) -> None:
        batch = self.batch.messages
        self.batch = TrackBatch(legacy_limits=self.client.settings.legacy_track_limits)
        if batch:
            self.send_track(batch)
            # A message with entries still to send is finished by flush().
            self.finish_delivered([message for message in batch if not message.operations])

    def finish_delivered(self, messages: list[Pending]) -> None:
        for message in messages:
            if not message.done:
                message.done = True
                self.ledger.delivered(message.item)

    def post(self, path: str, body: bytes) -> Answer:
        try:
            return self.client._post(path, body, self.ledger, self.run.stop)
        except Unauthorized as err:
            self.run.unauthorized_answer(err)
            return Answer(
                status=err.status, reason=f"Braze refused the REST API key (HTTP {err.status})"
            )

    def send_track(self, messages: list[Pending]) -> None:
        work = [messages]
        while work:
            group = work.pop()
            body, owners = track_body(group)
            answer = self.post(TRACK_PATH, body)
            if answer.ok:
                self.accepted(group, owners, answer)
            elif answer.status == 413 and len(group) > 1:
                # Braze: payload over 4 MB; split and resend the halves.
                middle = len(group) // 2
                work.extend((group[middle:], group[:middle]))
            elif answer.status == 400 and (named := self.named_failures(owners, answer)):
                # Braze named the offending objects: only their messages fail,
                # the others were not processed and go again.
                for message, reason in named.items():
                    self.finish_failed([message], reason, answer.status)
                rest = [message for message in group if message not in named]
                if rest:
                    work.append(rest)
            else:
                self.finish_failed(group, answer.reason, answer.status)

    def named_failures(
        self, owners: dict[str, list[Pending]], answer: Answer
    ) -> dict[Pending, str]:
        named: dict[Pending, str] = {}
        errors = answer.body.get("errors") if isinstance(answer.body, Mapping) else None
        if not isinstance(errors, list):
            return named
        for error in errors:
            if not isinstance(error, Mapping):
                continue
            array, index = error.get("input_array"), error.get("index")
            if array in owners and isinstance(index, int) and 0 <= index < len(owners[array]):
                owner = owners[array][index]
                reason = f"Braze rejected {array}[{index}]: {error.get('type', 'invalid')}"
                named.setdefault(owner, reason)
        return named

    def accepted(
        self, group: list[Pending], owners: dict[str, list[Pending]], answer: Answer
    ) -> None:
        named = self.named_failures(owners, answer)
        for message, reason in named.items():
            self.finish_failed([message], reason, answer.status)
        cache = self.client.attribute_cache
        if cache is None:
            return
        rejected = set()
        errors = answer.body.get("errors") if isinstance(answer.body, Mapping) else None
        for error in errors if isinstance(errors, list) else ():
            if isinstance(error, Mapping) and error.get("input_array") == "attributes":
                rejected.add(error.get("index"))
        acknowledged = []
        index = 0
        for message in group:
            for obj in message.attribute_objects:
                if index not in rejected:
                    acknowledged.append(obj)
                index += 1
        if acknowledged:
            cache.acknowledge(acknowledged)

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
            named = _NAMED_ENTRY.match(answer.reason.removeprefix(f"HTTP {answer.status}: "))
            if answer.status == 400 and named and named["key"] == key:
                index = int(named["index"])
                if index < len(live):
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
                self.ledger.failed(message.item, message.label, reason, status)
