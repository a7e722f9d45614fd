"""Rate limits: sliding window counter per client and route group, memory and Redis storage, fail open."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from crossdock.api.ratelimit import ClockedMemoryStorage, RateLimiter, parse_limits
from crossdock.localserver import free_port

T0 = 1_800_000_000.0  # a multiple of 60 and 3600: windows start here


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: Clock, fallback: str = "5/minute", **defaults: str) -> RateLimiter:
    return RateLimiter({group.replace("_", ":"): limit for group, limit in defaults.items()}, fallback, clock=clock)


def allowed_count(rl: RateLimiter, attempts: int, client: str = "c1", group: str = "orders:write") -> int:
    return sum(rl.check(client, group).allowed for _ in range(attempts))


def test_allows_exactly_the_limit_then_refuses_with_headers() -> None:
    clock = Clock(T0 + 10)
    rl = limiter(clock)
    remaining = [rl.check("c1", "orders:write").remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]

    refused = rl.check("c1", "orders:write")
    assert not refused.allowed
    # 5 hits in the window [T0, T0+60): they count fully until T0+60, then decay, so the sixth fits just after.
    assert (refused.limit, refused.remaining, refused.reset, refused.retry_after) == (5, 0, 50, 51)
    assert refused.headers() == [
        (b"ratelimit-limit", b"5"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"50"),
        (b"ratelimit-policy", b"5;w=60"),
        (b"retry-after", b"51"),
    ]


def test_allowed_decision_headers_have_no_retry_after() -> None:
    decision = limiter(Clock(), "100/second").check("c1", "orders:read")
    assert decision.allowed
    assert decision.headers() == [
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"99"),
        (b"ratelimit-reset", b"1"),
        (b"ratelimit-policy", b"100;w=1"),
    ]


def test_refused_hits_are_not_counted() -> None:
    clock = Clock()
    rl = limiter(clock, "2/minute")
    assert allowed_count(rl, 50) == 2
    clock.advance(60 + 30)  # previous window weighs 1/2: 2 * 0.5 = 1 used, so exactly 1 more
    assert allowed_count(rl, 50) == 1


@pytest.mark.parametrize(
    ("limit", "hits", "expected_retry_after"),
    [
        # 5 hits at T0+10, all in the current window: free again just after it ends (50 s later).
        ("5/minute", [(10.0, 5)], 51),
        # 10 hits in window 0, then at T0+75 the previous window weighs 45/60: 7.5 -> 7, so 3 more fit.
        # Its weight must fall below 7/10 (42 s left): in 3 s, exactly, which is still refused.
        ("10/minute", [(1.0, 10), (75.0, 3)], 4),
        ("100/second", [(0.3, 100)], 1),
        ("3/hour", [(0.0, 3), (3600.0 + 600.0, 1)], 601),
    ],
)
def test_allowed_at_retry_after_and_refused_before(
    limit: str, hits: list[tuple[float, int]], expected_retry_after: int
) -> None:
    clock = Clock()
    rl = limiter(clock, limit)
    for at, count in hits:
        clock.now = T0 + at
        assert allowed_count(rl, count) == count
    refused = rl.check("c1", "orders:write")
    assert not refused.allowed
    assert refused.retry_after == expected_retry_after

    start = clock.now
    clock.now = start + refused.retry_after - 1  # the tightest "before": the threshold lies in between
    assert not rl.check("c1", "orders:write").allowed
    clock.now = start + refused.retry_after
    assert rl.check("c1", "orders:write").allowed


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=20),
    window=st.sampled_from(["second", "minute", "hour"]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=1.5), min_size=1, max_size=80),
)
def test_retry_after_is_exact_for_any_traffic(amount: int, window: str, gaps: list[float]) -> None:
    clock = Clock(T0 + 0.123)
    rl = limiter(clock, f"{amount}/{window}")
    seconds = {"second": 1, "minute": 60, "hour": 3600}[window]
    for gap in gaps:  # traffic with random spacing, in units of the window
        clock.advance(gap * seconds / 10)
        decision = rl.check("c1", "orders:write")
        if decision.allowed:
            continue
        start, wait = clock.now, decision.retry_after
        assert wait >= 1
        if wait >= 2:
            clock.now = start + wait - 1.01
            assert not rl.check("c1", "orders:write").allowed
        clock.now = start + wait
        assert rl.check("c1", "orders:write").allowed


def test_sliding_window_smooths_the_window_edge() -> None:
    clock = Clock()
    rl = limiter(clock, "10/minute")
    clock.advance(59)
    assert allowed_count(rl, 10) == 10
    clock.advance(1)  # a fixed window would allow 10 more right now
    assert allowed_count(rl, 20) == 0
    clock.advance(30)  # middle of the next window: half of the previous 10 still count
    assert allowed_count(rl, 20) == 5
    clock.advance(60)  # the 5 spent at T0+90 now weigh 5 * 30/60
    assert allowed_count(rl, 20) == 8


def test_clients_and_groups_are_isolated() -> None:
    clock = Clock()
    rl = limiter(clock, "3/minute", orders_read="4/minute")
    assert allowed_count(rl, 10, "c1", "orders:write") == 3
    assert allowed_count(rl, 10, "c2", "orders:write") == 3
    assert allowed_count(rl, 10, "c1", "orders:read") == 4
    assert allowed_count(rl, 10, "c1", "inventory:read") == 3  # the fallback, its own budget
    decision = rl.check("c1", "orders:read")
    assert (decision.allowed, decision.limit) == (False, 4)


def test_per_client_override() -> None:
    clock = Clock()
    rl = limiter(clock, "10/minute", orders_write="3/minute")
    assert sum(rl.check("big", "orders:write", "7/minute").allowed for _ in range(20)) == 7
    assert sum(rl.check("small", "orders:write", "1/minute").allowed for _ in range(20)) == 1
    assert allowed_count(rl, 20, "regular", "orders:write") == 3
    decision = rl.check("big", "orders:write", "7/minute")
    assert (decision.limit, decision.headers()[3]) == (7, (b"ratelimit-policy", b"7;w=60"))


def test_parse_limits_accepts_good_strings() -> None:
    assert parse_limits("orders:write=100/second, orders:read=200/second") == {
        "orders:write": "100/second",
        "orders:read": "200/second",
    }
    assert parse_limits(" inventory:read = 6000 per minute ,") == {"inventory:read": "6000 per minute"}
    assert parse_limits("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("orders:write", "expected 'group=limit'"),
        ("orders:write=100/fortnight", "bad rate limit '100/fortnight'"),
        ("orders:write=lots", "bad rate limit 'lots'"),
        ("=100/second", "group must be a scope name"),
        ("orders/write=100/second", "group must be a scope name"),
        ("orders:read=1/second, orders:read=2/second", "given twice"),
        ("orders:write=0/second", "at least 1"),
        ("orders:write=1/second;50/minute", "exactly one limit"),
    ],
)
def test_parse_limits_refuses_bad_entries(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_limits(text)


def test_bad_limits_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="bad rate limit"):
        RateLimiter({"orders:write": "100/sec0nd"}, "1/second")
    with pytest.raises(ValueError, match="bad rate limit"):
        RateLimiter({}, "whatever")


def test_threads_hammering_one_key_get_exactly_the_limit() -> None:
    rl = limiter(Clock(T0 + 30), "50/minute")
    threads, rounds, attempts = 8, 400, 12
    barrier = threading.Barrier(threads)

    def hammer() -> int:
        allowed = 0
        for r in range(rounds):  # every round all threads race on a fresh key, right at its limit
            barrier.wait()
            allowed += sum(rl.check(f"client-{r}", "orders:write").allowed for _ in range(attempts))
        return allowed

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the threads interleave inside check() as often as possible
    try:
        with ThreadPoolExecutor(threads) as pool:
            counts = [f.result() for f in [pool.submit(hammer) for _ in range(threads)]]
    finally:
        sys.setswitchinterval(switch)
    assert sum(counts) == 50 * rounds
    assert all(counts)  # really concurrent, not one thread taking everything


def test_memory_storage_drops_expired_counters() -> None:
    clock = Clock()
    storage = ClockedMemoryStorage(clock)
    for i in range(1000):
        assert storage.acquire_sliding_window_entry(f"client-{i}", 5, 60)
    assert len(storage) == 1000
    clock.advance(60)  # still needed: they are the previous window now
    assert storage.acquire_sliding_window_entry("client-0", 5, 60)
    assert len(storage) == 1001
    clock.advance(60)
    assert storage.acquire_sliding_window_entry("client-0", 5, 60)
    assert len(storage) == 2  # client-0's last two windows


def test_fails_open_when_the_storage_is_down() -> None:
    clock = Clock()
    rl = RateLimiter({}, "1/minute", storage=f"redis://127.0.0.1:{free_port()}/0", clock=clock)
    with capture_logs() as logs:
        decisions = [rl.check("c1", "orders:write") for _ in range(3)]
        clock.advance(5)  # the storage is tried again (and fails), but the warning is not repeated
        decisions.append(rl.check("c1", "orders:write"))
        clock.advance(5)
        decisions.append(rl.check("c1", "orders:write"))
    assert all(d.allowed for d in decisions)
    assert decisions[0].headers()[0] == (b"ratelimit-limit", b"1")
    warnings = [entry for entry in logs if entry["event"] == "rate_limit_storage_unavailable"]
    assert len(warnings) == 2
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["storage"] == "redis"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_limits_hold_across_api_processes(redis_url: str) -> None:
    first = RateLimiter({"orders:write": "6/hour"}, "1/hour", storage=redis_url)
    second = RateLimiter({"orders:write": "6/hour"}, "1/hour", storage=redis_url)
    decisions = [(first if i % 2 else second).check("c1", "orders:write") for i in range(10)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False] * 4
    assert [d.remaining for d in decisions[:6]] == [5, 4, 3, 2, 1, 0]
    refused = decisions[-1]
    assert refused.headers()[3] == (b"ratelimit-policy", b"6;w=3600")
    assert 3590 <= refused.retry_after <= 3601  # the window started with the first hit, on Redis' clock
    assert second.check("c2", "orders:write").allowed
    assert first.check("c1", "orders:read").allowed
    assert not second.check("c1", "orders:read").allowed
