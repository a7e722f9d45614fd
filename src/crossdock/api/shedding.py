"""Load shedding: under a spike, refuse early and cheaply rather than slow everyone down.

Per API process, writes in flight are bounded, and a write that would wait in the write queue past
`queue_seconds` is refused by the writer before it runs (so a refused write never happened). Stock
and order writes come first: reads and reports are refused as soon as writes are under pressure.
Every refusal is a 503 problem with `Retry-After`, nothing applied.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from crossdock.domain.errors import Overloaded

PRESSURE_SECONDS = 1.0  # after a write was refused, reads give way for this long


class LoadShedder:
    def __init__(self, max_writes: int, max_reads: int, queue_seconds: float) -> None:
        self.max_writes = max_writes
        self.max_reads = max_reads
        self.queue_seconds = queue_seconds
        self.writes = 0
        self.reads = 0
        self.refused = 0
        self._refused_at = float("-inf")

    @contextlib.contextmanager
    def writing(self) -> Iterator[float]:
        """A write slot; yields the deadline (time.time()) by which the job must start."""
        if self.writes >= self.max_writes:
            self._refuse()
            raise Overloaded(f"{self.writes} writes in flight: not applied, try again")
        self.writes += 1
        try:
            yield time.time() + self.queue_seconds
        except Overloaded:
            self._refuse()  # the writer found the deadline passed
            raise
        finally:
            self.writes -= 1

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        if self.reads >= self.max_reads or self.under_pressure():
            self.refused += 1
            raise Overloaded("busy with writes: reads wait, try again")
        self.reads += 1
        try:
            yield
        finally:
            self.reads -= 1

    def under_pressure(self) -> bool:
        return self.writes >= self.max_writes // 2 or time.monotonic() - self._refused_at < PRESSURE_SECONDS

    def _refuse(self) -> None:
        self.refused += 1
        self._refused_at = time.monotonic()
