"""Rate limits per API client and per route group.

Policy: every client (`client_id`) has its own budget in every route group (`group`, named like an OAuth
scope: "orders:write", "inventory:read"). The budget comes from a per-client override when the client has
one, else the group's default, else the fallback. Limits are strings in `limits`' notation ("100/second").

Algorithm: `limits`' sliding window counter. Each key keeps the hit count of the current and of the
previous fixed window; a request is admitted while `floor(previous * share + current) < limit`, where
`share` is the part of the previous window that still overlaps the sliding window. That smooths window
edges: a client cannot spend a full budget at the end of one window and another at the start of the next.

Storage: "memory://" (embedded mode, one API process) uses `ClockedMemoryStorage`, which reads an
injectable clock; any other URI ("redis://host:6379/0", "redis+unix:///run/redis.sock") goes to
`limits.storage.storage_from_string`, so N API processes share one budget per key.

Fail open: if the storage is unreachable the request is allowed (a dead Redis must not take the API
down), a warning is logged at most once per 10 s, and the storage is left alone for a second between
attempts so a hanging server does not add its timeout to every request.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.storage.base import SlidingWindowCounterSupport
from limits.strategies import SlidingWindowCounterRateLimiter

__all__ = ["ClockedMemoryStorage", "Decision", "RateLimiter", "limit_item", "parse_limits"]

log = structlog.get_logger(__name__)

_WARN_EVERY = 10.0  # seconds between two "storage unavailable" warnings
_STORAGE_PAUSE = 1.0  # seconds the storage is skipped after a failure
_REDIS_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}  # redis-py defaults: 5 s
_GROUP = re.compile(r"[A-Za-z0-9_.:*-]+")  # no "/": limits joins key parts with it


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one request, with what the client needs to pace itself."""

    allowed: bool
    limit: int  # requests per window
    remaining: int
    reset: int  # seconds until the next unit of quota is freed (0 when nothing is used)
    retry_after: int  # seconds until one more request would be admitted (>= 1); sent only when refused
    window: int  # window length in seconds

    def headers(self) -> list[tuple[bytes, bytes]]:
        """IETF draft RateLimit header fields, ASGI style (lowercase names, bytes)."""
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
            (b"ratelimit-policy", f"{self.limit};w={self.window}".encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers


def limit_item(limit: str) -> RateLimitItem:
    """One limit in `limits`' notation ("100/second", "6000 per minute"); ValueError when it is not one."""
    try:
        items = parse_many(limit)
    except ValueError:
        raise ValueError(f"bad rate limit {limit!r}: expected e.g. '100/second' or '6000/minute'") from None
    if len(items) != 1:
        raise ValueError(f"bad rate limit {limit!r}: give exactly one limit")
    if items[0].amount < 1:
        raise ValueError(f"bad rate limit {limit!r}: must allow at least 1 request")
    return items[0]


def parse_limits(text: str) -> dict[str, str]:
    """Parse "orders:write=100/second, orders:read=200/second" into {group: limit}; ValueError on a bad entry."""
    limits: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        group, sep, limit = (s.strip() for s in entry.partition("="))
        if not sep:
            raise ValueError(f"bad rate limit entry {entry!r}: expected 'group=limit', e.g. 'orders:read=200/second'")
        if not _GROUP.fullmatch(group):
            raise ValueError(f"bad rate limit entry {entry!r}: group must be a scope name like 'orders:read'")
        if group in limits:
            raise ValueError(f"bad rate limit entry {entry!r}: group {group!r} given twice")
        limit_item(limit)
        limits[group] = limit
    return limits


@dataclass(slots=True)
class _Counter:
    value: int
    expires_at: float


class ClockedMemoryStorage(Storage, SlidingWindowCounterSupport):
    """In-process counters that read time from `clock`, so tests can drive the windows.

    Windows are aligned on multiples of the window length. Expired counters are dropped lazily: every
    counter is pushed on a heap by expiry when created and popped by the next write after it expires,
    so memory stays bounded by the keys active in the last two windows, without a timer thread.
    One lock makes each operation atomic (the API calls it from the event loop and from threads).
    """

    STORAGE_SCHEME = None  # not registered: "memory://" in `storage_from_string` stays limits' own

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._expiries: list[tuple[float, str]] = []

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return ()

    def __len__(self) -> int:
        return len(self._counters)

    # Unlocked helpers: callers hold self._lock.
    def _value(self, key: str, now: float) -> int:
        counter = self._counters.get(key)
        return counter.value if counter is not None and counter.expires_at > now else 0

    def _add(self, key: str, amount: int, expires_at: float, now: float) -> int:
        counter = self._counters.get(key)
        if counter is None or counter.expires_at <= now:
            self._counters[key] = _Counter(amount, expires_at)
            heapq.heappush(self._expiries, (expires_at, key))
            return amount
        counter.value += amount
        return counter.value

    def _prune(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, key = heapq.heappop(self._expiries)
            counter = self._counters.get(key)
            if counter is not None and counter.expires_at <= now:  # else it was re-created since
                del self._counters[key]

    def _window(self, key: str, expiry: int, now: float) -> tuple[str, int, float, int, float]:
        index = int(now // expiry)
        current = f"{key}/{index}"
        previous_count = self._value(f"{key}/{index - 1}", now)
        current_count = self._value(current, now)
        ends_in = (index + 1) * expiry - now
        # Same shape as limits' storages: the previous window's TTL is the share of it still weighted,
        # the current counter lives one more window after this one ends.
        return current, previous_count, ends_in if previous_count else 0.0, current_count, ends_in + expiry

    # Storage
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._lock:
            now = self._clock()
            self._prune(now)
            return self._add(key, amount, now + expiry, now)

    def get(self, key: str) -> int:
        with self._lock:
            return self._value(key, self._clock())

    def get_expiry(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            counter = self._counters.get(key)
            return counter.expires_at if counter is not None and counter.expires_at > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._counters)
            self._counters.clear()
            self._expiries.clear()
            return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    # SlidingWindowCounterSupport
    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            now = self._clock()
            self._prune(now)
            current, previous_count, previous_ttl, current_count, current_ttl = self._window(key, expiry, now)
            if math.floor(previous_count * previous_ttl / expiry) + current_count + amount > limit:
                return False
            self._add(current, amount, now + current_ttl, now)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        with self._lock:
            return self._window(key, expiry, self._clock())[1:]

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        with self._lock:
            index = int(self._clock() // expiry)
            self._counters.pop(f"{key}/{index - 1}", None)
            self._counters.pop(f"{key}/{index}", None)


def _seconds_until_below(
    k: int, expiry: int, previous: int, previous_ttl: float, current: int, current_ttl: float
) -> float:
    """Seconds from now until the weighted count `previous * ttl / expiry + current` is below `k` (k >= 1).

    Until the current window ends (in `current_ttl - expiry` s, which is also `previous_ttl` when there
    are previous hits) only the previous weight decays: previous * (previous_ttl - d) / expiry + current < k
    solves to d > previous_ttl - (k - current) * expiry / previous. If current >= k that is not enough: the
    current hits must become the previous window and decay, current * (expiry - s) / expiry < k, i.e.
    s > expiry * (1 - k / current) after the rollover.
    """
    if current < k:
        return max(0.0, previous_ttl - (k - current) * expiry / previous) if previous else 0.0
    return max(0.0, current_ttl - expiry) + expiry * (1 - k / current)


def _decide(item: RateLimitItem, allowed: bool, window: tuple[int, float, int, float]) -> Decision:
    expiry, limit = item.get_expiry(), item.amount
    previous, previous_ttl, current, _ = window
    used = math.floor(previous * previous_ttl / expiry) + current  # what the storage compares with the limit
    reset = math.ceil(_seconds_until_below(used, expiry, *window)) if used else 0
    # The next hit is admitted once the weighted count is strictly below the limit: the first whole second
    # after that instant. The 1 ms guards float error and Redis' millisecond TTLs.
    retry_after = math.floor(_seconds_until_below(limit, expiry, *window) + 0.001) + 1
    return Decision(allowed, limit, max(0, limit - used), reset, retry_after, expiry)


class RateLimiter:
    """Admits or refuses one request of `client_id` in route `group` (see the module docstring)."""

    def __init__(
        self,
        defaults: Mapping[str, str],
        fallback: str,
        storage: str = "memory://",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`defaults` maps group -> limit, `fallback` serves groups not in it.

        `clock` drives the windows of the "memory://" storage and the warning throttle. With Redis the
        windows follow the Redis server's clock (its key TTLs), whatever `clock` says.
        """
        self._clock = clock
        self._items: dict[str, RateLimitItem] = {}
        self._defaults = {group: self._item(limit) for group, limit in defaults.items()}
        self._fallback = self._item(fallback)
        store = self._open_storage(storage, clock)
        if not isinstance(store, SlidingWindowCounterSupport):
            raise ValueError(f"rate limit storage {storage.split(':', 1)[0]!r} has no sliding window counters")
        self._strategy = SlidingWindowCounterRateLimiter(store)
        self._windows: SlidingWindowCounterSupport = store
        self._scheme = urllib.parse.urlsplit(storage).scheme  # for logs: the URI may hold a password
        self._paused_until = -math.inf
        self._next_warning = -math.inf

    @staticmethod
    def _open_storage(uri: str, clock: Callable[[], float]) -> Storage:
        scheme = urllib.parse.urlsplit(uri).scheme
        if scheme == "memory":
            return ClockedMemoryStorage(clock)
        timeouts = _REDIS_TIMEOUTS if scheme.startswith("redis") else {}
        storage = storage_from_string(uri, wrap_exceptions=True, **timeouts)
        if not isinstance(storage, Storage):  # an async+... URI
            raise ValueError(f"rate limit storage {scheme!r} is async; use the synchronous scheme")
        return storage

    def _item(self, limit: str) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = limit_item(limit)
        return item

    def check(self, client_id: str, group: str, override: str | None = None) -> Decision:
        """Decide one request; an admitted request consumes one hit. `override`: the client's own limit."""
        item = self._item(override) if override is not None else self._defaults.get(group, self._fallback)
        now = self._clock()
        if now < self._paused_until:
            return self._fail_open(item)
        try:
            allowed = self._strategy.hit(item, group, client_id)
            window = self._windows.get_sliding_window(item.key_for(group, client_id), item.get_expiry())
        except StorageError as exc:
            self._paused_until = now + _STORAGE_PAUSE
            if now >= self._next_warning:
                self._next_warning = now + _WARN_EVERY
                log.warning("rate_limit_storage_unavailable", storage=self._scheme, error=str(exc.storage_error))
            return self._fail_open(item)
        return _decide(item, allowed, window)

    @staticmethod
    def _fail_open(item: RateLimitItem) -> Decision:
        return Decision(True, item.amount, item.amount, 0, 1, item.get_expiry())
