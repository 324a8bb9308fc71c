"""RateLimiter on a fake clock: nothing here really sleeps."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segment_braze._deliver.ratelimit import RateLimiter

# Float arithmetic on the fake clock may land a hair before a boundary.
EPSILON = 1e-9


class FakeTime:
    """A clock that moves only when something sleeps on it (or the test advances it)."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock."""
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(limit: int, period: float, fake: FakeTime) -> RateLimiter:
    """A limiter on the fake clock."""
    return RateLimiter(limit, period, clock=fake.clock, sleep=fake.sleep)


class TestLimit:
    """At most ``limit`` starts in any ``period`` seconds."""

    def test_burst_up_to_the_limit(self):
        """The first ``limit`` acquisitions do not wait."""
        fake = FakeTime()
        rate = limiter(3, 1.0, fake)
        for _ in range(3):
            rate.acquire()
        assert fake.sleeps == []

    def test_next_waits_for_the_oldest(self):
        """One more waits until the oldest start is a full period old."""
        fake = FakeTime()
        rate = limiter(3, 1.0, fake)
        for _ in range(3):
            rate.acquire()
            fake.now += 0.25
        rate.acquire()
        assert fake.sleeps == [pytest.approx(0.25)]
        assert fake.now == pytest.approx(101.0)

    def test_no_wait_when_slow_enough(self):
        """Requests spaced wider than the rate never wait."""
        fake = FakeTime()
        rate = limiter(2, 1.0, fake)
        for _ in range(10):
            rate.acquire()
            fake.now += 0.5
        assert fake.sleeps == []

    @given(
        limit=st.integers(1, 6),
        period=st.sampled_from([0.5, 1.0, 3.0]),
        gaps=st.lists(st.integers(0, 40).map(lambda n: n / 20), min_size=1, max_size=60),
    )
    def test_sliding_window(self, limit, period, gaps):
        """Any period holds at most ``limit`` starts, each as early as that allows."""
        fake = FakeTime()
        rate = limiter(limit, period, fake)
        starts: list[float] = []
        for gap in gaps:
            fake.now += gap
            asked = fake.now
            rate.acquire()
            starts.append(fake.now)
            # As early as allowed: when asked, or when the start `limit` back
            # is a full period old.
            earliest = asked
            if len(starts) > limit:
                earliest = max(asked, starts[-limit - 1] + period)
            assert fake.now == pytest.approx(earliest)
        assert all(
            later - first >= period - EPSILON
            for first, later in zip(starts, starts[limit:], strict=False)
        )

    @pytest.mark.parametrize(("limit", "period"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -2.0)])
    def test_invalid(self, limit, period):
        """A limit below 1 or a period not above 0 is refused."""
        with pytest.raises(ValueError, match="rate limit"):
            RateLimiter(limit, period)


class TestPause:
    """``pause_until`` holds every acquisition back (Braze answered 429)."""

    def test_pause_holds_acquisitions(self):
        """An acquisition waits until the pause ends."""
        fake = FakeTime()
        rate = limiter(100, 1.0, fake)
        rate.pause_until(fake.now + 5.0)
        rate.acquire()
        assert fake.sleeps == [pytest.approx(5.0)]
        rate.acquire()
        assert len(fake.sleeps) == 1

    def test_pause_holds_every_worker(self):
        """Every caller of the shared limiter waits out the pause."""
        fake = FakeTime()
        rate = limiter(100, 1.0, fake)
        rate.acquire()
        rate.pause_until(fake.now + 2.0)
        fake.now += 0.5
        rate.acquire()  # another worker, later
        assert fake.sleeps == [pytest.approx(1.5)]

    def test_shorter_pause_does_not_shorten(self):
        """A later, shorter pause keeps the longer one."""
        fake = FakeTime()
        rate = limiter(100, 1.0, fake)
        rate.pause_until(fake.now + 5.0)
        rate.pause_until(fake.now + 1.0)
        rate.acquire()
        assert fake.sleeps == [pytest.approx(5.0)]

    def test_past_pause_is_no_pause(self):
        """A pause that already ended holds nothing."""
        fake = FakeTime()
        rate = limiter(100, 1.0, fake)
        rate.pause_until(fake.now - 1.0)
        rate.acquire()
        assert fake.sleeps == []

    def test_pause_then_limit(self):
        """After a pause the rate limit still applies."""
        fake = FakeTime()
        rate = limiter(2, 1.0, fake)
        rate.pause_until(fake.now + 3.0)
        for _ in range(3):
            rate.acquire()
        assert fake.sleeps == [pytest.approx(3.0), pytest.approx(1.0)]


class TestThreads:
    """One limiter shared by all worker threads counts every acquisition."""

    def test_shared_by_threads(self):
        """Eight threads take exactly ``limit`` starts before anyone has to wait."""
        fake = FakeTime()
        rate = limiter(400, 1.0, fake)

        def worker() -> None:
            for _ in range(50):
                rate.acquire()

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert fake.sleeps == []
        rate.acquire()
        assert fake.sleeps == [pytest.approx(1.0)]


class TestStop:
    """A stopped send does not sit out a pause: ``acquire(stop=...)`` gives up."""

    def test_set_stop_gives_up_without_counting(self):
        """With the stop already set, acquire returns False and counts nothing."""
        fake = FakeTime()
        rate = limiter(1, 1.0, fake)
        stop = threading.Event()
        stop.set()
        assert rate.acquire(stop=stop) is False
        assert rate.acquire() is True
        assert fake.sleeps == []

    def test_stop_ends_a_long_pause(self):
        """A real wait on an hour's pause ends as soon as the stop is set."""
        rate = RateLimiter(100, 1.0)  # the real clock, and waits on the stop
        rate.pause_for(3600.0)
        stop = threading.Event()
        results: list[bool] = []
        waiter = threading.Thread(target=lambda: results.append(rate.acquire(stop=stop)))
        waiter.start()
        stop.set()
        waiter.join(10.0)  # a guard against a hang, not a timing assertion
        assert not waiter.is_alive()
        assert results == [False]


class TestMargin:
    """``with_margin`` keeps arrivals at or under 99% of Braze's limit in any window."""

    def test_keeps_one_percent_under(self):
        """3,000 per 3 s becomes 2,970 per 3.03 s."""
        rate = RateLimiter.with_margin(3000, 3.0)
        assert (rate.limit, rate.period) == (2970, pytest.approx(3.03))

    def test_paced_not_bursting(self):
        """Starts are spaced period/limit apart after a burst of a quarter of the margin."""
        fake = FakeTime()
        rate = RateLimiter.with_margin(3000, 3.0, clock=fake.clock, sleep=fake.sleep)
        for _ in range(100):
            rate.acquire()
        # 7.5 ms of burst at 1.02 ms a start, then one start per interval.
        assert 8 <= 100 - len(fake.sleeps) <= 9
        assert fake.now - 100.0 == pytest.approx(100 * 3.03 / 2970 - 0.0075, abs=0.0011)

    def test_small_limit_keeps_one(self):
        """A limit of one still allows one request per (longer) period."""
        assert RateLimiter.with_margin(1, 1.0).limit == 1

    @pytest.mark.parametrize(("limit", "period"), [(0, 1.0), (5, 0.0)])
    def test_invalid(self, limit, period):
        """A limit below 1 or a period that is not positive is refused."""
        with pytest.raises(ValueError, match="rate limit"):
            RateLimiter.with_margin(limit, period)

    @given(
        limit=st.integers(100, 400),
        delays=st.lists(st.floats(0.0, 0.005), min_size=50, max_size=50),
        gaps=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=20),
    )
    def test_arrivals_stay_under(self, limit, delays, gaps):
        """Starts delayed by up to 0.5% of the period never put > 99% in a window of arrivals."""
        period = 1.0
        fake = FakeTime()
        rate = RateLimiter.with_margin(limit, period, clock=fake.clock, sleep=fake.sleep)
        arrivals = []
        for n in range(3 * limit):
            rate.acquire()
            arrivals.append(fake.now + delays[n % len(delays)])
            fake.now += gaps[n % len(gaps)] * period / limit
        arrivals.sort()
        most = 0
        start = 0
        for end, arrival in enumerate(arrivals):
            while arrival - arrivals[start] >= period - EPSILON:
                start += 1
            most = max(most, end - start + 1)
        assert most <= limit * 99 // 100
