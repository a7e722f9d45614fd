"""Time-ordered identifiers (UUIDv7, RFC 9562): sortable, unique across processes.

Within one process ids are strictly increasing (a counter fills the sub-millisecond bits), so the
order of ids is the order of arrival: backorders are served first-in-first-out by id.
"""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, counter)
# Uniqueness comes from time and the counter; the random bits only separate processes. A seeded
# generator avoids a getrandom() call per id; reseeded after fork so that children differ.
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def uuid7_int() -> int:
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
        else:
            counter = 0
        _last = (ms, counter)
    rand = _random.getrandbits(62)
    return (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand


def uuid7_str() -> str:
    """The canonical 8-4-4-4-12 text, without building a UUID object (this is on the hot path)."""
    h = f"{uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid7_int():032x}"
