"""AttributeCache: Braze receives only the attributes that changed (issue 7).

Braze bills every attribute key it receives, changed or not. These tests send
real Segment messages through ``BrazeClient`` to ``BrazeStandIn`` and check what
Braze received, on each of the three stores (one parametrised suite), plus what
is particular to a store: SQLite shared by processes, Redis shared by clients,
the in-memory LRU bound, and a store of one's own.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import pytest
import redis

from segment_braze import AttributeCache, BrazeClient, DeliveryReport, Settings, translate
from segment_braze.testing import BrazeStandIn, Fault

KEY = "test-key"
TIME = "2024-05-01T12:00:00Z"
DAY = 24 * 3600.0
THIRTY_DAYS = 30 * DAY
ALIAS = {"alias_name": "anon-1", "alias_label": "segment_anonymous_id"}
GROUP_ID = "3d2b1b6e-9c1f-4e7a-9d3b-2f1e0c4a5b6d"
STORES = ("memory", "sqlite", "redis")


def identify(user: str = "u1", **traits: Any) -> dict[str, Any]:
    """A Segment identify call for ``user`` with ``traits``."""
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": TIME}


def track(user: str = "u1") -> dict[str, Any]:
    """A Segment track call of ``Signed Up`` for ``user``."""
    return {"type": "track", "userId": user, "event": "Signed Up", "timestamp": TIME}


def settings_for(braze: BrazeStandIn, **options: Any) -> Settings:
    """Settings that send to the stand-in."""
    return Settings(
        rest_api_key=KEY, rest_endpoint=braze.url, allow_custom_endpoint=True, **options
    )


def deliver(
    braze: BrazeStandIn,
    cache: AttributeCache | None,
    *messages: Any,
    settings: Settings | None = None,
    **options: Any,
) -> DeliveryReport:
    """Send ``messages`` in one ``send()`` call through a client using ``cache``."""
    options.setdefault("backoff_initial", 0.01)
    with BrazeClient(settings or settings_for(braze), attribute_cache=cache, **options) as client:
        return client.send(list(messages))


def attributes_of(braze: BrazeStandIn, user: str = "u1") -> list[dict[str, Any]]:
    """The attributes objects Braze accepted for the external id ``user``, in order."""
    return [obj for obj in braze.accepted_attributes if obj.get("external_id") == user]


def only_keys(obj: dict[str, Any]) -> set[str]:
    """The attribute keys of an attributes object, identifier and flag left out."""
    return set(obj) - {"external_id", "user_alias", "braze_id", "_update_existing_only"}


class FakeClock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        """The time now, in seconds since the epoch."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class Caches:
    """Makes AttributeCaches over one store location (a memory store, a file, a server).

    Caches made by one factory share what they remember, as two processes share an
    SQLite file or two machines a Redis server; every cache is closed at teardown.
    """

    def __init__(self, kind: str, location: str | None) -> None:
        self.kind = kind
        self.location = location
        self._opened: list[AttributeCache] = []

    def __call__(
        self,
        *,
        namespace: str = "default",
        ttl: float = THIRTY_DAYS,
        clock: FakeClock | None = None,
    ) -> AttributeCache:
        """A new cache on the shared location; ``clock`` replaces the real one."""
        if self.kind == "memory" and self._opened:
            cache = AttributeCache(self._opened[0].store, namespace=namespace, ttl=ttl)
        else:
            if self.kind == "memory":
                cache = AttributeCache.memory(ttl=ttl, namespace=namespace)
            elif self.kind == "sqlite":
                cache = AttributeCache.sqlite(str(self.location), ttl=ttl, namespace=namespace)
            else:
                cache = AttributeCache.redis(str(self.location), ttl=ttl, namespace=namespace)
            self._opened.append(cache)
        if clock is not None:
            cache = AttributeCache(cache.store, namespace=namespace, ttl=ttl, clock=clock)
        return cache

    def close(self) -> None:
        """Close every store opened."""
        for cache in self._opened:
            cache.close()


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A Braze stand-in on loopback."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


@pytest.fixture(params=STORES)
def caches(request, tmp_path) -> Iterator[Caches]:
    """A cache factory on each store: memory, an SQLite file, a real Redis server."""
    location = None
    if request.param == "sqlite":
        location = str(tmp_path / "attributes.sqlite3")
    elif request.param == "redis":
        location = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(location)
        client.flushdb()
        client.close()
    factory = Caches(request.param, location)
    yield factory
    factory.close()


@pytest.fixture
def cache(caches: Caches) -> AttributeCache:
    """One cache on the store under test."""
    return caches()


@pytest.fixture
def redis_client(redis_url) -> Iterator[Any]:
    """A client of the test Redis server, its database emptied."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


class TestUnchanged:
    """Traits Braze already has are not sent again."""

    def test_same_traits_twice_sends_nothing(self, braze, cache):
        """The second identify with the same traits sends no attributes object at all."""
        traits = {"firstName": "Ada", "email": "ada@example.com", "plan": "pro"}
        first = deliver(braze, cache, identify(**traits))
        requests_after_first = len(braze.requests)
        second = deliver(braze, cache, identify(**traits))
        assert len(attributes_of(braze)) == 1
        assert len(braze.requests) == requests_after_first
        assert (first.attributes_sent, first.attributes_saved) == (3, 0)
        assert (second.attributes_sent, second.attributes_saved) == (0, 3)
        assert second.data_points_saved == 3
        assert second.delivered == 1

    def test_events_still_sent_when_attributes_are_unchanged(self, braze, cache):
        """Only attributes are deduplicated: the events of the same batch go out."""
        deliver(braze, cache, identify(plan="pro"))
        report = deliver(braze, cache, identify(plan="pro"), track())
        assert len(attributes_of(braze)) == 1
        assert [event["name"] for event in braze.accepted_events] == ["Signed Up"]
        assert report.delivered == 2

    def test_nested_keys_count_as_data_points(self, braze, cache):
        """A saved nested object saves one data point per nested key."""
        traits = {"plan": "pro", "company": {"name": "Acme", "hq": {"city": "Berlin"}}}
        deliver(braze, cache, identify(**traits))
        report = deliver(braze, cache, identify(**traits))
        assert report.attributes_saved == 2
        assert report.data_points_saved == 3

    def test_free_keys_saved_are_no_data_points(self, braze, cache):
        """A saved subscription state counts as an attribute saved but no data point."""
        traits = {"firstName": "Ada", "email_subscribe": "subscribed"}
        deliver(braze, cache, identify(**traits))
        report = deliver(braze, cache, identify(**traits))
        assert report.attributes_saved == 2
        # Braze: subscription states are free, so leaving one out saves nothing.
        assert report.data_points_saved == 1


class TestChanged:
    """What changed is sent, and only that."""

    def test_only_changed_key_is_sent(self, braze, cache):
        """Changing one trait sends that key alone."""
        deliver(braze, cache, identify(firstName="Ada", plan="free", age=30))
        report = deliver(braze, cache, identify(firstName="Ada", plan="pro", age=30))
        assert attributes_of(braze)[-1] == {
            "external_id": "u1",
            "plan": "pro",
            "_update_existing_only": False,
        }
        assert (report.attributes_sent, report.attributes_saved) == (1, 2)
        assert braze.profiles[("external_id", "u1")]["plan"] == "pro"

    def test_users_do_not_share_values(self, braze, cache):
        """Another user's identical traits are sent in full."""
        deliver(braze, cache, identify("u1", plan="pro"))
        report = deliver(braze, cache, identify("u2", plan="pro"))
        assert attributes_of(braze, "u2") == [
            {"external_id": "u2", "plan": "pro", "_update_existing_only": False}
        ]
        assert report.attributes_saved == 0

    def test_value_changed_back_is_sent(self, braze, cache):
        """A value changed and changed back is sent each time."""
        for plan in ("free", "pro", "free"):
            deliver(braze, cache, identify(plan=plan))
        assert [obj["plan"] for obj in attributes_of(braze)] == ["free", "pro", "free"]

    @pytest.mark.parametrize(
        ("before", "in_flight"),
        [("free", "pro"), ("free", None), (["a"], {"add": ["b"]})],
        ids=["value", "null", "array add"],
    )
    def test_change_in_flight_is_not_undone(self, braze, cache, before, in_flight):
        """A value restored while its change is unacknowledged still reaches Braze."""
        deliver(braze, cache, identify(plan=before))
        # One worker and a long linger: both messages are prepared before the
        # first is sent, so the second is compared while the change is in flight.
        deliver(braze, cache, identify(plan=in_flight), identify(plan=before), workers=1, linger=5)
        assert braze.profiles[("external_id", "u1")].get("plan") == before


class TestOlderAcknowledgement:
    """An acknowledgement that arrives while a later value is on its way changes nothing."""

    def test_older_value_acknowledged_does_not_hide_the_latest(self, cache):
        """free, then pro, then free again: the last free is sent although free was acknowledged."""
        cache.acknowledge([{"external_id": "u1", "plan": "old"}])
        first = cache.filter_objects([{"external_id": "u1", "plan": "free"}])
        second = cache.filter_objects([{"external_id": "u1", "plan": "pro"}])
        cache.acknowledge(first.objects)  # Braze answered the first; "pro" is still on its way
        third = cache.filter_objects([{"external_id": "u1", "plan": "free"}])
        assert third.objects == [{"external_id": "u1", "plan": "free"}]
        cache.acknowledge(second.objects)
        cache.acknowledge(third.objects)
        assert cache.filter_objects([{"external_id": "u1", "plan": "free"}]).saved == 1
        assert cache.filter_objects([{"external_id": "u1", "plan": "pro"}]).objects != []

    def test_value_restored_after_an_answer_reaches_braze(self, cache):
        """free, pro, free for one user: Braze ends with free although free's answer came first."""
        answered = threading.Event()

        def on_outcome(item: Any, outcome: str, reason: str | None) -> None:
            if item.get("messageId") == "first-free":
                answered.set()

        def fillers(batch: str) -> list[dict[str, Any]]:
            # 74 other users: with the user's message they fill one request.
            return [identify(f"{batch}-{n}", plan="x") for n in range(74)]

        def messages() -> Iterator[dict[str, Any]]:
            yield {**identify(plan="free"), "messageId": "first-free"}
            yield from fillers("a")
            yield identify(plan="pro")
            yield from fillers("b")
            # Prepared once "free" is acknowledged, while "pro" is still on its way.
            assert answered.wait(timeout=30)
            yield identify(plan="free")

        with BrazeStandIn(api_key=KEY, latency=0.3) as braze:
            deliver(braze, cache, identify(plan="old"))
            with BrazeClient(
                settings_for(braze),
                attribute_cache=cache,
                on_outcome=on_outcome,
                workers=1,
                window=1000,
            ) as client:
                report = client.send(messages())
            assert report.delivered == 151
            assert [obj["plan"] for obj in attributes_of(braze)] == ["old", "free", "pro", "free"]
            assert braze.profiles[("external_id", "u1")]["plan"] == "free"

    def test_answers_out_of_order_remember_nothing(self, cache):
        """An answer that comes while another value is unanswered is not remembered."""
        first = cache.filter_objects([{"external_id": "u1", "plan": "free"}])
        second = cache.filter_objects([{"external_id": "u1", "plan": "pro"}])
        cache.acknowledge(second.objects)  # free is still unanswered here
        cache.acknowledge(first.objects)
        assert cache.filter_objects([{"external_id": "u1", "plan": "pro"}]).saved == 0

    def test_nothing_remembered_while_values_are_on_their_way(self, caches):
        """Killed with pro unanswered, the next run still sends its last free.

        free, pro, free are handed out and only the first free is answered
        before the process dies: the store must not say free, since pro may
        have reached Braze after it.
        """
        before_kill = caches()
        first = before_kill.filter_objects([{"external_id": "u1", "plan": "free"}])
        before_kill.filter_objects([{"external_id": "u1", "plan": "pro"}])
        before_kill.filter_objects([{"external_id": "u1", "plan": "free"}])
        before_kill.acknowledge(first.objects)
        next_run = caches()  # a new process: only the store is left
        again = next_run.filter_objects([{"external_id": "u1", "plan": "free"}])
        assert again.objects == [{"external_id": "u1", "plan": "free"}]

    def test_released_send_is_no_longer_on_its_way(self, cache):
        """A failed send, once released, no longer stops an acknowledged value being left out."""
        failed = cache.filter_objects([{"external_id": "u1", "plan": "enterprise"}])
        cache.release(failed.objects)
        cache.acknowledge([{"external_id": "u1", "plan": "pro"}])
        assert cache.filter_objects([{"external_id": "u1", "plan": "pro"}]).saved == 1


PLAN_B: Final = {"external_id": "u1", "plan": "B"}
PLAN_C: Final = {"external_id": "u1", "plan": "C"}


class Interleaved:
    """Wraps a store and stops one call half-way, for a test to interleave two threads.

    ``stop="load"``: the next load reads, then waits for :attr:`go`.
    ``stop="save"``: the next save waits until a load has read (it sets :attr:`go`).
    """

    def __init__(self, store: Any, stop: str) -> None:
        self.store = store
        self.stop = stop
        self.reached = threading.Event()
        self.go = threading.Event()

    def load(self, users: list[str]) -> Any:
        """The wrapped store's values, then the stop (or the release of a stopped save)."""
        found = self.store.load(users)
        if self.stop == "load":
            self._wait()
        elif self.stop == "save":
            self.go.set()
        return found

    def save(self, updates: Any, ttl: float) -> None:
        """Save, after the stop when this is the save to stop."""
        if self.stop == "save":
            self._wait()
        self.store.save(updates, ttl)

    def _wait(self) -> None:
        if self.reached.is_set():
            return  # one call stops, the others go through
        self.reached.set()
        assert self.go.wait(timeout=30)

    def close(self) -> None:
        """Close the wrapped store."""
        self.store.close()


class TestAnswersWhileFiltering:
    """An answer saved while a filter reads the store never outlives a newer value on its way.

    Each test interleaves a filter and an acknowledgement in one precise order,
    then opens the store as the next run would after a kill: Braze may hold the
    newer value, so the answered one must not be trusted.
    """

    def test_answer_saved_after_the_filter_read_the_store(self, caches):
        """B answered and saved once the filter for C has read the store: B is forgotten."""
        before_kill = caches()
        b_sent = before_kill.filter_objects([dict(PLAN_B)])
        store = before_kill.store = Interleaved(before_kill.store, stop="load")
        handed: list[Any] = []
        filtering = threading.Thread(
            target=lambda: handed.append(before_kill.filter_objects([dict(PLAN_C)]))
        )
        filtering.start()
        assert store.reached.wait(timeout=30)  # read: nothing remembered of u1 yet
        before_kill.acknowledge(b_sent.objects)  # B answered, saved meanwhile
        store.go.set()
        filtering.join(timeout=30)
        assert handed[0].objects == [PLAN_C]
        next_run = caches()
        assert next_run.filter_objects([dict(PLAN_B)]).objects == [PLAN_B]

    def test_answer_still_being_saved_when_the_filter_starts(self, caches):
        """B's save lands after the filter for C read the store: B is forgotten after it."""
        before_kill = caches()
        b_sent = before_kill.filter_objects([dict(PLAN_B)])
        store = before_kill.store = Interleaved(before_kill.store, stop="save")
        answering = threading.Thread(target=before_kill.acknowledge, args=(b_sent.objects,))
        answering.start()
        assert store.reached.wait(timeout=30)  # B settled; its save waits for the read
        handed = before_kill.filter_objects([dict(PLAN_C)])
        answering.join(timeout=30)
        assert handed.objects == [PLAN_C]
        next_run = caches()
        assert next_run.filter_objects([dict(PLAN_B)]).objects == [PLAN_B]


class TestAcknowledgement:
    """The cache learns only what Braze accepted."""

    @pytest.mark.parametrize("status", [500, 400])
    def test_failed_send_does_not_suppress_the_retry(self, braze, cache, status):
        """After a refused request, the next send still carries the change."""
        deliver(braze, cache, identify(plan="free"))
        braze.inject(Fault.status(status))
        failed = deliver(braze, cache, identify(plan="pro"), max_attempts=1)
        assert [failure.status for failure in failed.failed] == [status]
        retried = deliver(braze, cache, identify(plan="pro"))
        assert attributes_of(braze)[-1]["plan"] == "pro"
        assert (retried.attributes_sent, retried.delivered) == (1, 1)
        # Once delivered, the value is left out of the next send.
        again = deliver(braze, cache, identify(plan="pro"))
        assert (again.attributes_sent, again.attributes_saved) == (0, 1)

    def test_failed_send_no_longer_counts_as_on_its_way(self, braze, caches):
        """After a failed send, a value another client delivered is left out again."""
        one, two = caches(), caches()
        braze.inject(Fault.status(500))
        failed = deliver(braze, one, identify(plan="enterprise"), max_attempts=1)
        assert [failure.status for failure in failed.failed] == [500]
        deliver(braze, two, identify(plan="pro"))
        report = deliver(braze, one, identify(plan="pro"))
        assert (report.attributes_sent, report.attributes_saved) == (0, 1)

    def test_refused_object_no_longer_counts_as_on_its_way(self, braze, caches):
        """After Braze refused an object in a 201, a value another client delivered is left out."""
        one, two = caches(), caches()
        braze.inject(Fault.partial_errors(("attributes", 0)))
        refused = deliver(
            braze, one, identify("u1", plan="enterprise"), identify("u2", plan="x"), workers=1
        )
        assert [failure.status for failure in refused.failed] == [201]
        deliver(braze, two, identify(plan="pro"))
        report = deliver(braze, one, identify(plan="pro"))
        assert (report.attributes_sent, report.attributes_saved) == (0, 1)

    def test_partially_rejected_object_is_not_remembered(self, braze, cache):
        """An attributes object Braze named in ``errors`` is sent in full next time."""
        braze.inject(Fault.partial_errors(("attributes", 0)))
        first = deliver(
            braze, cache, identify("u1", plan="pro"), identify("u2", plan="pro"), workers=1
        )
        assert [failure.status for failure in first.failed] == [201]
        assert attributes_of(braze, "u1") == []
        second = deliver(
            braze, cache, identify("u1", plan="pro"), identify("u2", plan="pro"), workers=1
        )
        assert [obj["plan"] for obj in attributes_of(braze, "u1")] == ["pro"]
        assert len(attributes_of(braze, "u2")) == 1
        assert (second.attributes_sent, second.attributes_saved) == (1, 1)

    def test_filtering_alone_remembers_nothing(self, cache):
        """Filtering without acknowledging leaves the next filter unchanged."""
        objects = [{"external_id": "u1", "plan": "pro"}]
        assert cache.filter_objects(objects).objects == objects
        assert cache.filter_objects(objects).objects == objects

    def test_acknowledging_an_identifier_alone_is_harmless(self, cache):
        """An object with no attributes can be acknowledged, and remembers nothing."""
        cache.acknowledge([{"external_id": "u1"}])
        objects = [{"external_id": "u1", "plan": "pro"}]
        assert cache.filter_objects(objects).objects == objects


class TestExpiry:
    """Remembered values are forgotten after the TTL, so Braze is corrected."""

    def test_value_sent_again_after_ttl(self, braze, caches):
        """Within the TTL the value is saved; after it, the value is sent again."""
        clock = FakeClock()
        cache = caches(ttl=3600, clock=clock)
        deliver(braze, cache, identify(plan="pro"))
        clock.advance(3599)
        assert deliver(braze, cache, identify(plan="pro")).attributes_saved == 1
        clock.advance(2)
        assert deliver(braze, cache, identify(plan="pro")).attributes_sent == 1
        clock.advance(1800)
        assert deliver(braze, cache, identify(plan="pro")).attributes_saved == 1
        assert len(attributes_of(braze)) == 2

    def test_default_ttl_is_thirty_days(self, braze, caches):
        """By default a value is remembered for 29 days, and not for 31."""
        clock = FakeClock()
        cache = caches(clock=clock)
        deliver(braze, cache, identify(plan="pro"))
        clock.advance(29 * DAY)
        assert deliver(braze, cache, identify(plan="pro")).attributes_saved == 1
        clock.advance(2 * DAY)
        assert deliver(braze, cache, identify(plan="pro")).attributes_sent == 1

    def test_constructors_default_to_thirty_days(self, cache):
        """Each constructor's TTL is 30 days unless told otherwise."""
        assert AttributeCache.memory().ttl == THIRTY_DAYS
        assert cache.ttl == THIRTY_DAYS

    @pytest.mark.parametrize("ttl", [0, -1.0])
    def test_ttl_must_be_positive(self, ttl):
        """A TTL of zero or less is refused."""
        with pytest.raises(ValueError, match="ttl"):
            AttributeCache.memory(ttl=ttl)


# (traits, the attribute key Braze must receive every time)
NEVER_DEDUPLICATED = {
    "increment": ({"logins": {"inc": 1}}, "logins"),
    "array add": ({"tags": {"add": ["vip"]}}, "tags"),
    "array remove": ({"tags": {"remove": ["vip"]}}, "tags"),
    "nested $add": ({"pets": {"$add": [{"id": 1, "name": "Rex"}]}}, "pets"),
    "nested $remove": (
        {"pets": {"$remove": [{"$identifier_key": "id", "$identifier_value": 1}]}},
        "pets",
    ),
    "nested $update": (
        {
            "pets": {
                "$update": [
                    {
                        "$identifier_key": "id",
                        "$identifier_value": 1,
                        "$new_object": {"name": "Max"},
                    }
                ]
            }
        },
        "pets",
    ),
    "subscription groups": (
        {
            "subscription_groups": [
                {"subscription_group_id": GROUP_ID, "subscription_state": "subscribed"}
            ]
        },
        "subscription_groups",
    ),
    "custom null": ({"plan": None}, "plan"),
    "standard null": ({"home_city": None}, "home_city"),
}


class TestNeverDeduplicated:
    """Operations, push tokens, subscription groups, nulls and new values always pass."""

    @pytest.mark.parametrize(
        ("traits", "key"), NEVER_DEDUPLICATED.values(), ids=NEVER_DEDUPLICATED.keys()
    )
    def test_sent_every_time(self, braze, cache, traits, key):
        """The same value sent twice reaches Braze twice."""
        deliver(braze, cache, identify(**traits))
        report = deliver(braze, cache, identify(**traits))
        sent = attributes_of(braze)
        assert len(sent) == 2
        assert sent[1][key] == sent[0][key]
        assert report.attributes_saved == 0

    def test_push_token_sent_every_time(self, braze, cache):
        """A push token from ``context.device.token`` is imported on every identify."""
        message = {
            **identify(plan="pro"),
            "context": {"device": {"token": "push-token-1", "id": "device-0001"}},
        }
        settings = settings_for(braze, app_id="app-1")
        deliver(braze, cache, message, settings=settings)
        deliver(braze, cache, message, settings=settings)
        token = {"app_id": "app-1", "token": "push-token-1", "device_id": "device-0001"}
        assert [obj.get("push_tokens") for obj in attributes_of(braze)] == [[token], [token]]
        assert "plan" not in attributes_of(braze)[1]

    def test_first_seen_value_is_sent(self, braze, cache):
        """A trait the cache has no value for is sent beside unchanged ones left out."""
        deliver(braze, cache, identify(plan="pro"))
        deliver(braze, cache, identify(plan="pro", seats=5))
        assert only_keys(attributes_of(braze)[-1]) == {"seats"}

    def test_operation_forgets_the_value(self, braze, cache):
        """After an array ``add``, the earlier whole value is sent again."""
        deliver(braze, cache, identify(tags=["a"]))
        deliver(braze, cache, identify(tags={"add": ["b"]}))
        assert braze.profiles[("external_id", "u1")]["tags"] == ["a", "b"]
        deliver(braze, cache, identify(tags=["a"]))
        assert braze.profiles[("external_id", "u1")]["tags"] == ["a"]

    def test_null_forgets_the_value(self, braze, cache):
        """After a null unset the attribute, the earlier value is sent again."""
        for plan in ("pro", None, "pro"):
            deliver(braze, cache, identify(plan=plan))
        assert [obj["plan"] for obj in attributes_of(braze)] == ["pro", None, "pro"]
        assert braze.profiles[("external_id", "u1")]["plan"] == "pro"


# (first traits, equal traits spelled otherwise)
SAME_AFTER_NORMALISATION = {
    "birthday": ({"birthday": "1990-05-17"}, {"birthday": "May 17, 1990"}),
    "birthday as dob": ({"birthday": "1990-05-17"}, {"dob": "1990-05-17T00:00:00Z"}),
    "country": ({"address": {"country": "Germany"}}, {"address": {"country": "DE"}}),
    "gender": ({"gender": "female"}, {"gender": "F"}),
    "language": ({"language": "en-US"}, {"language": "en"}),
}


class TestComparison:
    """Values are compared deeply and after normalisation."""

    def test_nested_key_order_does_not_matter(self, braze, cache):
        """The same nested object with its keys in another order is not sent again."""
        deliver(braze, cache, identify(company={"name": "Acme", "hq": {"city": "Berlin", "n": 1}}))
        report = deliver(
            braze, cache, identify(company={"hq": {"n": 1, "city": "Berlin"}, "name": "Acme"})
        )
        assert len(attributes_of(braze)) == 1
        assert report.attributes_saved == 1

    def test_nested_change_is_sent(self, braze, cache):
        """A change deep inside a nested object sends the object."""
        deliver(braze, cache, identify(company={"name": "Acme", "hq": {"city": "Berlin"}}))
        deliver(braze, cache, identify(company={"name": "Acme", "hq": {"city": "Paris"}}))
        assert attributes_of(braze)[-1]["company"] == {"name": "Acme", "hq": {"city": "Paris"}}

    def test_array_order_matters(self, braze, cache):
        """An array with its items in another order is another value."""
        deliver(braze, cache, identify(tags=["a", "b"]))
        deliver(braze, cache, identify(tags=["b", "a"]))
        assert attributes_of(braze)[-1]["tags"] == ["b", "a"]

    @pytest.mark.parametrize(
        ("first", "second"), SAME_AFTER_NORMALISATION.values(), ids=SAME_AFTER_NORMALISATION.keys()
    )
    def test_normalised_values_compared(self, braze, cache, first, second):
        """Two spellings of one value are one value: the second is not sent."""
        deliver(braze, cache, identify(**first))
        report = deliver(braze, cache, identify(**second))
        assert len(attributes_of(braze)) == 1
        assert report.attributes_saved == 1


class TestStoredDigests:
    """Values remembered by earlier versions are still recognised."""

    TRAITS: Final = {
        "nick": 'Zoë ☃ "q" \\ / \t\u2028 😀',
        "visits": 42,
        "big": 2**70,
        "score": 0.1,
        "ratio": 0.1 + 0.2,
        "huge": 1e16,
        "vip": True,
        "off": False,
        "company": {"name": "Acme", "size": 12},
    }

    @staticmethod
    def stored_digest(value: Any) -> str:
        """The digest as every version wrote it: BLAKE2b-96 of sorted, compact JSON."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def test_values_in_a_store_written_before_are_left_out(self, braze, cache):
        """A digest stored by an earlier version matches the same value today."""
        cache.store.save(
            {
                "default:external_id:u1": {
                    name: (self.stored_digest(value), time.time())
                    for name, value in self.TRAITS.items()
                }
            },
            THIRTY_DAYS,
        )
        report = deliver(braze, cache, identify(**self.TRAITS), track())
        assert attributes_of(braze) == []
        assert report.attributes_saved == len(self.TRAITS)


class TestAliasProfiles:
    """An object that creates an alias profile is sent even when nothing changed."""

    def test_alias_object_kept_without_its_unchanged_traits(self, braze, cache):
        """The anonymous user's second identify still sends the profile-creating object."""
        settings = settings_for(braze, anonymous_users="alias")
        message = {"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "pro"}}
        deliver(braze, cache, message, settings=settings)
        report = deliver(braze, cache, message, settings=settings)
        assert braze.accepted_attributes == [
            {"user_alias": ALIAS, "plan": "pro", "_update_existing_only": False},
            {"user_alias": ALIAS, "_update_existing_only": False},
        ]
        assert (report.attributes_sent, report.attributes_saved) == (0, 1)


class TestTranslationAPI:
    """``apply`` and ``acknowledge_translation`` work on translations directly."""

    def test_apply_then_acknowledge(self, cache):
        """Applied and acknowledged values are left out of the next translation."""
        first = cache.apply(translate(identify(firstName="Ada", plan="free")))
        assert first.attributes[0].attributes == {"first_name": "Ada", "plan": "free"}
        cache.acknowledge_translation(first)
        second = cache.apply(translate(identify(firstName="Ada", plan="pro")))
        assert second.attributes[0].attributes == {"plan": "pro"}
        cache.acknowledge_translation(second)
        third = cache.apply(translate(identify(firstName="Ada", plan="pro")))
        assert third.attributes == ()
        assert third.requests() == []

    def test_release_translation_after_a_failed_send(self, cache):
        """A translation released after a failure no longer counts as on its way."""
        cache.release_translation(cache.apply(translate(identify(plan="enterprise"))))
        cache.acknowledge_translation(translate(identify(plan="pro")))
        assert cache.apply(translate(identify(plan="pro"))).attributes == ()

    def test_apply_without_acknowledge_keeps_everything(self, cache):
        """Applying twice with no acknowledgement sends the values both times."""
        translation = translate(identify(plan="pro"))
        assert cache.apply(translation) == translation
        assert cache.apply(translation) == translation

    def test_apply_keeps_events_and_operations(self, cache):
        """Only attributes are removed: the alias merge and the message id stay."""
        message = {**identify(plan="pro"), "anonymousId": "anon-1", "messageId": "m-1"}
        translation = translate(message, Settings(anonymous_users="alias"))
        cache.acknowledge_translation(translation)
        applied = cache.apply(translation)
        assert applied.attributes == ()
        assert applied.operations == translation.operations
        assert applied.message_id == "m-1"

    def test_apply_keeps_alias_profile_object(self, cache):
        """An unchanged alias object is kept, its attributes emptied."""
        message = {"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "pro"}}
        translation = translate(message, Settings(anonymous_users="alias"))
        cache.acknowledge_translation(translation)
        applied = cache.apply(translation)
        assert [obj.to_json() for obj in applied.attributes] == [
            {"user_alias": ALIAS, "_update_existing_only": False}
        ]


class TestNamespaces:
    """Caches with different namespaces in one store keep apart."""

    def test_namespaces_do_not_share_values(self, braze, caches):
        """A value one app group acknowledged is unknown to another in the same store."""
        app_a, app_b = caches(namespace="app-a"), caches(namespace="app-b")
        deliver(braze, app_a, identify(plan="pro"))
        assert deliver(braze, app_b, identify(plan="pro")).attributes_saved == 0
        assert deliver(braze, caches(namespace="app-a"), identify(plan="pro")).attributes_saved == 1
        assert len(attributes_of(braze)) == 2


class TestSharedStores:
    """Caches on one store location share what Braze acknowledged."""

    def test_second_cache_sees_what_the_first_acknowledged(self, braze, caches):
        """A cache opened afterwards on the same store saves what another sent."""
        deliver(braze, caches(), identify(plan="pro", seats=5))
        report = deliver(braze, caches(), identify(plan="pro", seats=5))
        assert (report.attributes_sent, report.attributes_saved) == (0, 2)
        assert len(attributes_of(braze)) == 1


_PROCESS_SCRIPT = """
import json
import sys

from segment_braze import AttributeCache, BrazeClient, Settings

url, path, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
settings = Settings(rest_api_key="test-key", rest_endpoint=url, allow_custom_endpoint=True)
messages = [
    {"type": "identify", "userId": f"u{n}", "traits": {"plan": "pro", "seats": n}}
    for n in range(first, first + count)
]
with AttributeCache.sqlite(path) as cache, BrazeClient(settings, attribute_cache=cache) as client:
    report = client.send(messages)
print(json.dumps({"sent": report.attributes_sent, "saved": report.attributes_saved,
                  "delivered": report.delivered, "failed": len(report.failed)}))
"""


class TestSQLiteOpening:
    """Opening one new SQLite file from several places at once."""

    def test_simultaneous_openings_of_a_new_file_all_succeed(self, tmp_path):
        """Four caches opening the same new file together never fail with "database is locked"."""
        failures = []
        for round_ in range(200):
            path = str(tmp_path / f"cache{round_}.sqlite3")
            together = threading.Barrier(4)

            def open_one(path: str = path, together: threading.Barrier = together) -> None:
                together.wait(timeout=30)
                try:
                    AttributeCache.sqlite(path).close()
                except sqlite3.Error as err:
                    failures.append(str(err))

            threads = [threading.Thread(target=open_one) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert failures == []


class TestSQLiteProcesses:
    """Several processes on one machine share one SQLite file."""

    @pytest.fixture
    def script(self, tmp_path):
        """A small sender script: identify users ``first .. first+count-1``."""
        path = tmp_path / "sender.py"
        path.write_text(textwrap.dedent(_PROCESS_SCRIPT))
        return path

    @pytest.fixture(autouse=True)
    def _reap(self):
        """Kill and wait for every sender still running when a test ends (a failed one)."""
        self.started: list[subprocess.Popen[str]] = []
        yield
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)

    def start(self, script, braze, database, first, count):
        """Start the sender script in a new Python process, warnings as errors."""
        command = [sys.executable, "-W", "error", str(script), braze.url, str(database)]
        process = subprocess.Popen(
            [*command, str(first), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        return process

    def result(self, process):
        """The sender's report, after it exited cleanly."""
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        return json.loads(stdout)

    def test_second_process_saves_what_the_first_sent(self, braze, tmp_path, script):
        """Process B sees the values process A sent and acknowledged, and leaves them out."""
        database = tmp_path / "shared.sqlite3"
        first = self.result(self.start(script, braze, database, 0, 3))
        second = self.result(self.start(script, braze, database, 0, 3))
        assert first == {"sent": 6, "saved": 0, "delivered": 3, "failed": 0}
        assert second == {"sent": 0, "saved": 6, "delivered": 3, "failed": 0}
        assert len(braze.accepted_attributes) == 3

    def test_processes_write_concurrently(self, braze, tmp_path, script):
        """Two processes acknowledging at once lose nothing and fail nothing."""
        database = tmp_path / "shared.sqlite3"
        running = [self.start(script, braze, database, first, 300) for first in (0, 300)]
        results = [self.result(process) for process in running]
        assert [r["failed"] for r in results] == [0, 0]
        assert [r["sent"] for r in results] == [600, 600]
        with AttributeCache.sqlite(str(database)) as cache:
            objects = [{"external_id": f"u{n}", "plan": "pro", "seats": n} for n in range(600)]
            result = cache.filter_objects(objects)
        assert (result.objects, result.saved) == ([], 1200)


class TestRedisStore:
    """Redis: one cache shared by several clients, namespaced, expired by Redis."""

    def test_two_clients_share_one_server(self, braze, redis_url, redis_client):
        """A second client on another connection leaves out what the first sent."""
        with (
            AttributeCache.redis(redis_url, namespace="app") as one,
            AttributeCache.redis(redis_url, namespace="app") as two,
        ):
            deliver(braze, one, identify(plan="pro"))
            report = deliver(braze, two, identify(plan="pro"))
        assert (report.attributes_sent, report.attributes_saved) == (0, 1)
        assert len(attributes_of(braze)) == 1

    def test_keys_are_namespaced_and_expire(self, braze, redis_url, redis_client):
        """Each user is one key under the namespace, with Redis's own expiry set."""
        with AttributeCache.redis(redis_url, namespace="app-group-1", ttl=DAY) as cache:
            deliver(braze, cache, identify(plan="pro"))
        keys = redis_client.keys("*")
        assert keys == [b"segment_braze:app-group-1:external_id:u1"]
        assert 0 < redis_client.ttl(keys[0]) <= DAY

    def test_hash_holds_only_attributes(self, braze, redis_url, redis_client):
        """A user's hash has one compact field per attribute, and nothing else."""
        with AttributeCache.redis(redis_url) as cache:
            deliver(braze, cache, identify(firstName="Ada", plan="pro"))
        fields = redis_client.hgetall("segment_braze:default:external_id:u1")
        assert set(fields) == {b"first_name", b"plan"}
        assert all(len(value) < 40 for value in fields.values())


class TestMemoryStore:
    """The in-memory store is bounded: least recently used users go first."""

    def test_least_recently_used_user_is_forgotten(self, braze):
        """With room for two users, a third evicts the one used longest ago."""
        cache = AttributeCache.memory(max_users=2)
        deliver(braze, cache, identify("u1", plan="pro"), identify("u2", plan="pro"))
        deliver(braze, cache, identify("u1", plan="pro"))  # u1 is now the most recent
        deliver(braze, cache, identify("u3", plan="pro"))  # evicts u2
        assert deliver(braze, cache, identify("u2", plan="pro")).attributes_sent == 1
        assert deliver(braze, cache, identify("u3", plan="pro")).attributes_saved == 1
        assert [len(attributes_of(braze, user)) for user in ("u1", "u2", "u3")] == [1, 2, 1]

    def test_max_users_must_be_positive(self):
        """A bound below one user is refused."""
        with pytest.raises(ValueError, match="max_users"):
            AttributeCache.memory(max_users=0)


class DictStore:
    """A store of one's own: a plain dict, as a user might plug in."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, tuple[str, float]]] = {}
        self.closed = False

    def load(self, users: list[str]) -> dict[str, dict[str, tuple[str, float]]]:
        """What is remembered for ``users``."""
        return {user: dict(self.users[user]) for user in users if user in self.users}

    def save(self, updates: dict[str, dict[str, tuple[str, float]]], ttl: float) -> None:
        """Merge ``updates`` (expiry is left to the cache)."""
        del ttl
        for user, values in updates.items():
            self.users.setdefault(user, {}).update(values)

    def close(self) -> None:
        """Mark the store closed."""
        self.closed = True


class TestCustomStore:
    """Any object with load, save and close is a store."""

    def test_dict_store_works_with_the_client(self, braze):
        """A dict-backed store deduplicates like the built-in ones, and is closed."""
        store = DictStore()
        with AttributeCache(store, namespace="app") as cache:
            deliver(braze, cache, identify(firstName="Ada", plan="free"))
            report = deliver(braze, cache, identify(firstName="Ada", plan="pro"))
        assert (report.attributes_sent, report.attributes_saved) == (1, 1)
        assert only_keys(attributes_of(braze)[-1]) == {"plan"}
        assert set(store.users) == {"app:external_id:u1"}
        assert store.closed


class TestMergeObjectsFlag:
    """_merge_objects is a flag, not an attribute: never counted, never remembered."""

    def test_flag_is_not_an_attribute(self, braze, cache):
        """An unchanged nested object is left out, and the flag alone never goes."""
        settings = settings_for(braze, merge_nested_objects=True)
        first = deliver(braze, cache, identify(company={"name": "Acme"}), settings=settings)
        assert first.attributes_sent == 1
        second = deliver(braze, cache, identify(company={"name": "Acme"}), settings=settings)
        assert (second.attributes_sent, second.attributes_saved) == (0, 1)
        assert len(attributes_of(braze)) == 1
        assert attributes_of(braze)[0]["_merge_objects"] is True

    def test_deep_merge_reaches_braze(self, braze, cache):
        """A changed nested object is sent with the flag, and Braze keeps the other keys."""
        settings = settings_for(braze, merge_nested_objects=True)
        deliver(braze, cache, identify(company={"name": "Acme", "size": 10}), settings=settings)
        deliver(braze, cache, identify(company={"size": 20}), settings=settings)
        profile = braze.profiles[("external_id", "u1")]
        assert profile["company"] == {"name": "Acme", "size": 20}


class TestLookupIdentifiers:
    """Objects identified by email or phone pass whole: the cache remembers nothing of them."""

    def test_sent_whole_every_time(self, braze, cache):
        """The same traits for an email user reach Braze twice, the email as identifier."""
        settings = settings_for(braze, fallback_identifiers=("email",))
        message = {
            "type": "identify",
            "anonymousId": "a-1",
            "traits": {"email": "Jane@Example.com", "plan": "pro"},
        }
        first = deliver(braze, cache, message, settings=settings)
        second = deliver(braze, cache, message, settings=settings)
        assert (
            braze.accepted_attributes
            == [{"email": "jane@example.com", "plan": "pro", "_update_existing_only": False}] * 2
        )
        assert (first.attributes_sent, second.attributes_sent, second.attributes_saved) == (1, 1, 0)
