"""BrazeClient: deliver translations to Braze and account for every message."""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import requests

from segment_braze import _json
from segment_braze._cache.cache import AttributeCache
from segment_braze._deliver.answers import release_attributes
from segment_braze._deliver.batching import (
    Bundle,
    Pending,
    attribute_keys,
    fits_alone,
    split_operations,
    user_key,
)
from segment_braze._deliver.bundles import ONE, RUN
from segment_braze._deliver.delivery import Run, RunConfig
from segment_braze._deliver.exchange import Poster, Reply, RequestsTransport
from segment_braze._deliver.lean import LeanTransport
from segment_braze._deliver.pool import BROKEN, Prepared, TranslationPool, parsed
from segment_braze._deliver.ratelimit import RateLimiter
from segment_braze._deliver.report import DeliveryReport, Ledger, message_label
from segment_braze._deliver.transport import Answer, HookRaised, RetryPolicy, post_with_retries
from segment_braze._settings import Settings
from segment_braze._translate.braze import TRACK_PATH
from segment_braze._translate.calls import translate
from segment_braze._translate.translation import Translation
from segment_braze.exceptions import InvalidMessage, SenderError

__all__ = ["BrazeClient"]

_NO_POOL: contextlib.nullcontext[None] = contextlib.nullcontext()


def _version(distribution: str = "segment-braze") -> str:
    from importlib.metadata import version  # noqa: PLC0415 (only needed once per client)

    return version(distribution)


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
        session: a ``requests.Session`` to send through (its proxies, adapters
            and hooks apply). Without one the client sends through urllib3
            directly (HTTP/1.1 keep-alive, ``workers`` connections, TLS verified),
            reading the proxy and CA-bundle environment as ``requests`` does.
        workers: worker threads, each with at most one request in flight. The
            default, 32, keeps Braze's ceiling of 1,000 requests per second
            with up to 32 ms per request (requests in flight = rate x latency);
            see ``docs/sending.md`` for choosing another.
        max_attempts: attempts per request for 5xx, connection errors, timeouts.
        backoff_initial: first retry delay in seconds (jittered, then doubling).
        backoff_max: the cap on a retry delay.
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for each read of Braze's answer.
        request_timeout: seconds for a whole request, from connecting to the
            last byte of the answer (a server trickling bytes times out too).
        track_rate_limit: ``(requests, seconds)`` for ``/users/track``, Braze's
            limit: the client keeps 1% under it (see ``docs/sending.md``).
        users_rate_limit: ``(requests, seconds)`` shared by the user-management
            endpoints.
        max_rate_limit_waits: 429 answers tolerated per request before it fails.
        max_rate_limit_wait: the longest wait after a 429 the client accepts, in
            seconds; a 429 asking for more (or with an unreadable rate-limit
            header) fails its request's messages instead of pausing every worker.
        linger: seconds a part-filled batch waits for more messages when the
            input is slow.
        window: messages queued per worker before ``send`` waits (the memory
            bound: ``workers x window`` messages, 4,000 by default, as before
            with 4 workers of 1,000).
        on_failure: called with each failed original message and the reason.
        on_outcome: called with each message and ``"delivered"``, ``"failed"``
            or ``"dropped"`` (and the reason), as its fate is decided.
        attribute_cache: leaves out attributes Braze already has (see
            ``AttributeCache``).
        seed: seeds the retry jitter (for reproducible tests).
        before_request: called with no arguments, in the worker's thread, just
            before every HTTP request (each retry too). The replay command commits
            its state here, so a kill re-sends at most one batch per worker. An
            exception it raises fails that request like a transport fault would
            stop it: it is re-raised from ``send``.
        processes: with more than 1, Segment dicts are translated and their
            objects serialised in that many child processes (started for each
            ``send``, never given the key), while this process packs, sends and
            accounts. With an ``attribute_cache`` translation stays in this
            process (the cache needs each attribute's value here). See
            ``docs/sending.md`` for choosing it.

    Raises:
        SettingsError: ``rest_api_key`` or the endpoint is missing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        workers: int = 32,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        request_timeout: float = 120.0,
        track_rate_limit: tuple[int, float] = (3000, 3.0),
        users_rate_limit: tuple[int, float] = (20000, 60.0),
        max_rate_limit_waits: int = 20,
        max_rate_limit_wait: float = 300.0,
        linger: float = 0.5,
        window: int = 125,
        on_failure: Callable[[Any, str], None] | None = None,
        on_outcome: Callable[[Any, str, str | None], None] | None = None,
        attribute_cache: AttributeCache | None = None,
        seed: int | None = None,
        before_request: Callable[[], None] | None = None,
        processes: int = 1,
    ) -> None:
        settings.require_sending()
        if workers < 1 or max_attempts < 1 or window < 1 or processes < 1:
            raise ValueError("workers, max_attempts, window and processes must be at least 1")
        if not request_timeout > 0:
            raise ValueError("request_timeout must be a positive number of seconds")
        if not max_rate_limit_wait >= 0:
            raise ValueError("max_rate_limit_wait must be a number of seconds, 0 or more")
        self.settings = settings
        self.workers = workers
        self.processes = processes
        self.policy = RetryPolicy(
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_rate_limit_waits=max_rate_limit_waits,
            max_rate_limit_wait=max_rate_limit_wait,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            request_timeout=request_timeout,
        )
        self.linger = linger
        self.window = window
        self.on_failure = on_failure
        self.on_outcome = on_outcome
        self.attribute_cache = attribute_cache
        self._before_request = before_request
        self._own_session = session is None
        transport: RequestsTransport | LeanTransport
        if session is None:
            transport = LeanTransport(maxsize=workers)
            agent = f"urllib3/{_version('urllib3')}"
        else:
            transport = RequestsTransport(session)
            agent = f"python-requests/{requests.__version__}"
        self._transport = transport
        self._limiters = {
            "track": RateLimiter.with_margin(*track_rate_limit),
            "users": RateLimiter.with_margin(*users_rate_limit),
        }
        self._rng = random.Random(seed)  # noqa: S311 (jitter, not security)
        self._rng_lock = threading.Lock()
        self._poster = Poster(
            transport,
            headers={
                "Authorization": f"Bearer {settings.rest_api_key}",
                "Content-Type": "application/json",
                "User-Agent": f"segment-braze/{_version()} {agent}",
            },
            timeout=(connect_timeout, read_timeout),
            deadline=request_timeout,
        )
        self._base = str(settings.rest_endpoint).rstrip("/")

    def __repr__(self) -> str:
        return f"BrazeClient(endpoint={self._base!r}, workers={self.workers})"

    def __enter__(self) -> BrazeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's own connections (a caller's session stays open)."""
        if self._own_session:
            self._transport.close()

    def send(
        self, messages: Iterable[Mapping[str, Any] | Translation | Prepared | str | bytes]
    ) -> DeliveryReport:
        """Translate (where needed) and deliver messages; account for each one.

        Args:
            messages: Segment message dicts, Segment messages as JSON text
                (``str`` or ``bytes``, one object each: with ``processes`` the
                parsing moves to the child processes too) and/or ``Translation``
                objects (or ``Prepared`` ones, serialised by the replay's worker
                processes); any iterable (a generator of millions is fine: it
                is streamed). Hooks get each item as it was given.

        Returns:
            The report: every message delivered, failed or dropped, exactly once.

        Raises:
            AuthenticationError: Braze refused the key (401/403). Nothing further
                is sent; every unsent message is reported failed, and the report
                so far is on the exception's ``report`` attribute.
        """
        pooled = self.processes > 1 and self.attribute_cache is None
        pool_context = (
            TranslationPool(self.settings, self.processes, self.workers) if pooled else _NO_POOL
        )
        with pool_context as pool:
            run = Run(
                RunConfig(
                    workers=self.workers,
                    window=self.window,
                    linger=self.linger,
                    legacy_limits=self.settings.legacy_track_limits,
                    on_failure=self.on_failure,
                    on_outcome=self.on_outcome,
                    attribute_cache=self.attribute_cache,
                    prepare=self._prepare,
                    post=self._post,
                    source=None if pool is None else functools.partial(self._pooled, pool),
                )
            )
            return run.execute(messages)

    # Internal helpers used by the delivery run and its workers.

    def _pooled(
        self, pool: TranslationPool, messages: Iterable[Any], run: Run
    ) -> Iterator[tuple[int, Any, Pending | None]]:
        """Prepare ``messages`` through the pool, in order (the run's ``source``)."""
        entries = run.admitted(messages)
        lost: list[tuple[int, Any]] = []
        try:
            for covered, unit in pool.translated(
                entries,
                lost=lost,
                linger=self.linger,
                broken=functools.partial(run.crashed, reason=BROKEN),
            ):
                position, item = covered[0]
                if unit[0] == RUN:
                    yield position, None, self._bundle(covered, unit, run)
                elif unit[0] == ONE:
                    yield position, item, run.prepare(item, position, self._from_pool, unit[2])
                else:  # HERE: a Translation or Prepared, prepared here
                    yield position, item, run.prepare(item, position)
        except SenderError:
            # A child died: translated() stopped the run (admitted() failed
            # every message read after that) and read the input to its end;
            # what the children held fails here.
            for position, item in lost:
                run.fail_unsent(item, message_label(item, f"#{position}"))

    def _bundle(
        self, covered: list[tuple[int, Any]], unit: tuple[Any, ...], run: Run
    ) -> Pending | None:
        """A child's run of messages of one shard as one bundle (see ``bundles``)."""
        _, shard, _, labels, keys, counts, attributes, events, purchases, sent_keys, size = unit
        try:
            items = [item for _, item in covered]
            if None in labels:  # no messageId: the position, as reports say
                labels = [
                    label or message_label(item, f"#{position}")
                    for (position, item), label in zip(covered, labels, strict=True)
                ]
            totals = (len(attributes), len(events), len(purchases))
            pending = Pending(
                item=None,
                label="",
                user_key="",
                objects={"attributes": attributes, "events": events, "purchases": purchases},
                bundle=Bundle(items=items, labels=labels, keys=keys, counts=counts),
                shard=shard,
                measured=(totals, size),
            )
        except Exception as err:  # noqa: BLE001 (a bug costs only these messages)
            reason = f"not sent: unexpected error preparing it ({type(err).__name__})"
            for position, item in covered:
                run.ledger.failed(item, message_label(item, f"#{position}"), reason, None)
            return None
        if attributes:
            run.ledger.attributes(sent=sent_keys, saved=0, data_points_saved=0)
        return pending

    def _from_pool(
        self, item: Any, position: int, ledger: Ledger, prepared: Prepared
    ) -> Pending | None:
        label = prepared.message_id or message_label(item, f"#{position}")
        if prepared.dropped is not None:
            if prepared.failed:
                ledger.failed(item, label, f"not sent: {prepared.dropped}", None)
            else:
                ledger.dropped(item, label, prepared.dropped)
            return None
        objects = prepared.objects or {"attributes": [], "events": [], "purchases": []}
        kept: list[dict[str, Any]] = []
        if prepared.attributes:
            # Handed over unserialised, for the attribute cache to see the values.
            objects = dict(objects)
            kept = self._attributes(list(prepared.attributes), ledger)
            objects["attributes"] = [_json.dumps(obj) for obj in kept]
        elif objects["attributes"] or prepared.cache_saved[0]:
            # Filtered by a cache in the worker process, when it left out keys.
            saved, points = prepared.cache_saved
            ledger.attributes(sent=prepared.attribute_keys, saved=saved, data_points_saved=points)
        after, before = split_operations(prepared.operations)
        pending = Pending(
            item=item,
            label=label,
            user_key=prepared.user_key,
            objects=objects,
            attribute_objects=prepared.cache_tokens
            or (kept if self.attribute_cache is not None else ()),
            operations=after,
            before=before,
        )
        return self._checked(pending, ledger)

    def _attributes(self, objects: list[dict[str, Any]], ledger: Ledger) -> list[dict[str, Any]]:
        """The attributes objects to send (what the cache does not know yet), counted."""
        if self.attribute_cache is not None and objects:
            try:
                result = self.attribute_cache.filter_objects(objects)
            except Exception as err:
                # A store that failed once (a Redis that stopped answering) would
                # cost every later message its timeout: the run stops instead.
                raise SenderError(
                    f"the attribute cache failed ({type(err).__name__}); every message"
                    " not delivered before it is reported failed"
                ) from err
            ledger.attributes(
                sent=result.sent, saved=result.saved, data_points_saved=result.data_points_saved
            )
            return result.objects
        if objects:
            ledger.attributes(sent=attribute_keys(objects), saved=0, data_points_saved=0)
        return objects

    def _checked(self, pending: Pending, ledger: Ledger) -> Pending | None:
        """Account for a message with nothing left to send or too big to send."""
        if not pending.has_track and not pending.operations and not pending.before:
            # Everything was already known to Braze (attribute cache): nothing
            # to send, and nothing lost.
            pending.done = True
            ledger.delivered(pending.item)
            return None
        problem = fits_alone(pending, legacy_limits=self.settings.legacy_track_limits)
        if problem is not None:
            release_attributes(self.attribute_cache, pending)
            ledger.failed(pending.item, pending.label, f"not sent: {problem}", None)
            return None
        return pending

    def _prepare(self, item: Any, position: int, ledger: Ledger) -> Pending | None:
        label = f"#{position}"
        if isinstance(item, Prepared):  # prepared in a replay's worker process
            return self._from_pool(item, position, ledger, item)
        if isinstance(item, Translation):
            translation = item
        else:
            try:
                translation = translate(parsed(item), self.settings)
            except InvalidMessage as err:
                ledger.dropped(item, message_label(item, label), f"invalid message: {err}")
                return None
        label = translation.message_id or label
        if translation.dropped is not None:
            ledger.dropped(item, label, translation.dropped)
            return None
        if not translation.object_count and not translation.operations:
            ledger.dropped(item, label, "the translation holds nothing to send")
            return None
        attribute_objects = self._attributes(
            [obj.to_json() for obj in translation.attributes], ledger
        )
        # Each object is serialised once, here: its size decides the batching,
        # and the worker joins the bytes into a body without encoding again.
        dumps = _json.dumps
        objects = {
            "attributes": [dumps(obj) for obj in attribute_objects],
            "events": [dumps(obj.to_json()) for obj in translation.events],
            "purchases": [dumps(obj.to_json()) for obj in translation.purchases],
        }
        after, before = split_operations(translation.operations)
        pending = Pending(
            item=item,
            label=label,
            user_key=user_key(translation),
            objects=objects,
            # Kept only for the cache to acknowledge: held objects cost the GC.
            attribute_objects=attribute_objects if self.attribute_cache is not None else (),
            operations=after,
            before=before,
        )
        return self._checked(pending, ledger)

    def _post(self, path: str, body: bytes, ledger: Ledger, stop: threading.Event) -> Answer:
        limiter = self._limiters["track" if path == TRACK_PATH else "users"]
        with self._rng_lock:
            rng = random.Random(self._rng.random())  # noqa: S311 (jitter)
        post: Callable[[str, bytes], Reply] = self._poster
        if self._before_request is not None:
            hook, poster = self._before_request, self._poster

            def post(url: str, body: bytes) -> Reply:
                try:
                    hook()
                except Exception as err:  # the caller's error: send() re-raises it as it is
                    raise HookRaised(err) from err
                return poster(url, body)

        return post_with_retries(
            post,
            self._base + path,
            body,
            limiter=limiter,
            policy=self.policy,
            count_request=lambda retry: ledger.request(retry=retry),
            stop=stop,
            rng=rng,
        )
