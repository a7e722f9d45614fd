"""A channel's sellable quantity of a SKU, as it should be shown there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DesiredStock:
    channel_id: str
    sku: str
    available: int
    sequence: int  # the SKU's event sequence this quantity is from: newer always wins
    changed_at: datetime
