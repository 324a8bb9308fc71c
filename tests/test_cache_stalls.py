"""A Redis attribute cache that stops answering: every wait is bounded, the run stops in one line.

A proxy on loopback stands between the command (or the store) and a real Redis
server, forwards a given number of requests, then goes silent with every
connection left open: what a hung or partitioned server looks like.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from commandline import KEY, cli, jsonl

from segment_braze import AttributeCache, BrazeClient, SenderError, Settings
from segment_braze._cache.stores import REDIS_TIMEOUT, RedisStore
from segment_braze._replay.cachefile import GuardedStore
from segment_braze._replay.resources import _cache_name
from segment_braze._replay.usage import FileError
from segment_braze.testing import BrazeStandIn

MESSAGES = 1500


class SilentAfter:
    """A TCP proxy to ``target`` that forwards ``requests`` client reads, then nothing."""

    def __init__(self, target: tuple[str, int], requests: int) -> None:
        self.target = target
        self.left = requests
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
                self.held += [client, upstream]
                threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self.lock:
                    self.left -= 1
                    silent = self.left < 0
                if not silent:  # else read and dropped: the server never hears it
                    upstream.sendall(data)

    @staticmethod
    def _down(upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)

    def close(self) -> None:
        """Close the proxy and every connection it holds."""
        for sock in [self.server, *self.held]:
            sock.close()


@pytest.fixture
def braze() -> Iterator[BrazeStandIn]:
    """A stand-in that accepts KEY."""
    with BrazeStandIn(api_key=KEY) as stand_in:
        yield stand_in


def _target(redis_url: str) -> tuple[str, int]:
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    return host, int(port)


def _identify(n: int) -> dict[str, object]:
    return {
        "type": "identify",
        "userId": f"user-{n}",
        "traits": {"plan": f"plan-{n}", "seats": n},
        "messageId": f"identify-{n}",
        "timestamp": "2024-05-01T12:00:00Z",
    }


class TestRedisStore:
    """The store itself waits a bounded time for a silent server."""

    def test_silent_server_times_out(self, redis_url, monkeypatch):
        """A server that never answers: the store raises after its timeout, never hangs."""
        redis = pytest.importorskip("redis")
        real = redis.Redis.from_url

        def waits_for_ever_unless_told(url: str, **options: object) -> object:
            # redis-py before 6 has no timeout unless one is given (6 and later
            # wait 5 s): only the store's own timeout may end the wait.
            options.setdefault("socket_timeout", None)
            options.setdefault("socket_connect_timeout", None)
            return real(url, **options)

        monkeypatch.setattr(redis.Redis, "from_url", waits_for_ever_unless_told)
        monkeypatch.setattr("segment_braze._cache.stores.REDIS_TIMEOUT", 0.5)
        proxy = SilentAfter(_target(redis_url), requests=0)
        store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0")
        raised: list[BaseException] = []

        def load() -> None:
            try:
                store.load(["default:external_id:u1"])
            except Exception as err:  # noqa: BLE001 (the test looks at what it was)
                raised.append(err)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        thread.join(30.0)  # a bound against a hang, not a timing
        proxy.close()
        assert not thread.is_alive(), "the store waited for ever on a silent server"
        assert raised
        assert "Timeout" in type(raised[0]).__name__ or "Timeout" in str(raised[0])

    def test_timeouts_by_default_and_from_the_url(self):
        """Without options the store waits REDIS_TIMEOUT; the URL's own options win."""
        default = RedisStore("redis://127.0.0.1:1/0")
        chosen = RedisStore("redis://127.0.0.1:1/0?socket_timeout=2.5&socket_connect_timeout=3")
        options = default._client.connection_pool.connection_kwargs
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (
            REDIS_TIMEOUT,
            REDIS_TIMEOUT,
        )
        mine = chosen._client.connection_pool.connection_kwargs
        assert (mine["socket_timeout"], mine["socket_connect_timeout"]) == (2.5, 3.0)


class TestNames:
    """A cache named in a message never shows a Redis password."""

    @pytest.mark.parametrize(
        ("spec", "shown"),
        [
            (
                "redis://someone:hunter2@cache.example:6379/0",
                "redis://someone:***@cache.example:6379/0",
            ),
            ("rediss://:hunter2@cache.example/1", "rediss://:***@cache.example/1"),
            ("redis:redis://someone:hunter2@cache.example", "redis://someone:***@cache.example"),
            ("redis://cache.example:6379/0", "redis://cache.example:6379/0"),
            ("sqlite:/var/lib/cache.sqlite", "/var/lib/cache.sqlite"),
            ("", "/var/lib/state.cache"),
        ],
    )
    def test_password_hidden(self, spec, shown):
        """The password is replaced by ***; names without one are unchanged."""
        assert _cache_name(spec, "/var/lib/state.cache") == shown


class FailingStore:
    """A store whose every call fails, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def load(self, users: list[str]) -> dict[str, dict[str, tuple[str, float]]]:
        """Fail, as a Redis that stopped answering."""
        self.calls += 1
        raise TimeoutError("Timeout reading from 127.0.0.1:6379")

    def save(self, updates: dict[str, dict[str, tuple[str, float]]], ttl: float) -> None:
        """Fail, as load."""
        self.calls += 1
        raise TimeoutError("Timeout reading from 127.0.0.1:6379")

    def close(self) -> None:
        """Nothing to close."""


class TestGuardedStore:
    """The command's store: the first failure is the run's one line, and the last call."""

    def test_first_failure_is_kept_and_the_store_not_asked_again(self):
        """A failed load is a FileError; later loads and saves fail at once, untried."""
        failing = FailingStore()
        guarded = GuardedStore(failing, "redis://cache.example:6379/0")
        with pytest.raises(FileError, match="cannot use the attribute cache") as first:
            guarded.load(["u1"])
        assert "TimeoutError: Timeout reading" in str(first.value)
        with pytest.raises(FileError) as second:
            guarded.load(["u2"])
        guarded.save({"u3": {"plan": ("d", 1.0)}}, 60.0)
        assert second.value is first.value
        assert failing.calls == 1
        with pytest.raises(FileError) as checked:
            guarded.check()
        assert checked.value is first.value


def _send_stopped(cache: AttributeCache, braze: BrazeStandIn, count: int) -> SenderError:
    """Send ``count`` identifies through ``cache``; the SenderError that stopped it."""
    settings = Settings(rest_endpoint=braze.url, rest_api_key=KEY, allow_custom_endpoint=True)
    raised: list[BaseException] = []

    def send() -> None:
        with BrazeClient(settings, workers=2, attribute_cache=cache) as client:
            try:
                client.send([_identify(n) for n in range(count)])
            except Exception as err:  # noqa: BLE001 (the test looks at what it was)
                raised.append(err)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    thread.join(60.0)  # a bound against a hang, not a timing
    assert not thread.is_alive(), "send() waited on the cache message after message"
    [error] = raised
    assert isinstance(error, SenderError), repr(error)
    return error


class TestBrazeClient:
    """``BrazeClient`` with a cache whose store fails: the send stops at the first failure."""

    def test_failing_store_stops_the_send(self, braze):
        """SenderError naming the cache; the store asked once; every message accounted."""
        failing = FailingStore()
        error = _send_stopped(AttributeCache(failing), braze, 200)
        assert str(error).startswith("the attribute cache failed (TimeoutError)")
        assert isinstance(error.__cause__, SenderError)
        assert isinstance(error.__cause__.__cause__, TimeoutError)
        assert failing.calls == 1
        report = error.report
        assert report.total == 200
        assert report.delivered == 0
        assert {failure.reason for failure in report.failed} == {
            "not sent: the attribute cache failed (TimeoutError)"
        }
        assert braze.requests == []

    def test_silent_redis_stops_the_send(self, braze, redis_url):
        """A Redis gone silent mid-send costs one timeout, not one per message."""
        proxy = SilentAfter(_target(redis_url), requests=60)
        url = f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=0.5"
        namespace = f"stalls-{uuid.uuid4()}"  # Redis outlives the test
        try:
            # 400 messages at 0.5 s each would be 200 s: the bound above fails.
            error = _send_stopped(AttributeCache.redis(url, namespace=namespace), braze, 400)
        finally:
            proxy.close()
        assert str(error).startswith("the attribute cache failed (TimeoutError)")
        report = error.report
        assert report.total == 400
        assert report.delivered + len(report.failed) == 400
        # The message whose look-up failed, and those read after it, name the
        # cache; those already waiting for a request were stopped with them.
        reasons = {failure.reason for failure in report.failed}
        assert "not sent: the attribute cache failed (TimeoutError)" in reasons
        assert reasons <= {
            "not sent: the attribute cache failed (TimeoutError)",
            "not sent: sending stopped",
        }


class TestCommand:
    """``segment-braze send --dedup redis:...`` when Redis stops answering mid-run."""

    def test_stops_in_one_line_and_the_next_run_goes_on(self, tmp_path, braze, redis_url):
        """One line naming the cache, exit 2; a rerun delivers everyone."""
        archive = tmp_path / "identify.jsonl"
        archive.write_text(jsonl([_identify(n) for n in range(MESSAGES)]))
        proxy = SilentAfter(_target(redis_url), requests=600)
        url = f"redis://127.0.0.1:{proxy.port}/0?socket_timeout=0.5"
        namespace = f"stalls-{uuid.uuid4()}"  # Redis outlives the test
        common = ("--workers", "1", "--processes", "1", "--dedup-namespace", namespace)
        try:
            result = cli("send", archive, "--dedup", url, *common, braze=braze, timeout=120)
        finally:
            proxy.close()
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, result.stderr
        assert f"cannot use the attribute cache {url}: TimeoutError" in errors[0]
        # At most the message whose look-up failed; the run stops before the next.
        unprepared = [line for line in result.stderr.splitlines() if "not be prepared" in line]
        assert len(unprepared) <= 1, result.stderr
        delivered = {obj["external_id"] for obj in braze.accepted_attributes}
        assert 0 < len(delivered) < MESSAGES

        again = cli("send", archive, "--dedup", redis_url, *common, braze=braze, timeout=120)
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout) if again.stdout.startswith("{") else None
        assert summary is None or summary.get("failed", 0) == 0
        delivered = {obj["external_id"] for obj in braze.accepted_attributes}
        assert delivered == {f"user-{n}" for n in range(MESSAGES)}
