"""What the fakes share: failures a test asks for ahead of time."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Failures(Generic[T]):
    """Failures queued by a test's `fail_next`, one given to each next request, in order. Locked:
    the fake answers in its server's thread while the test queues more from its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[T] = []

    def add(self, n: int, failure: T) -> None:
        with self._lock:
            self._queue += [failure] * n

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def next(self) -> T | None:
        """The failure for this request, or None: answer it normally."""
        with self._lock:
            return self._queue.pop(0) if self._queue else None


def retry_after(seconds: float | None) -> dict[str, str]:
    """A Retry-After header when the test gave one."""
    return {"Retry-After": str(seconds)} if seconds is not None else {}
