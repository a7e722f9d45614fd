"""Checkout holds: stock held for a storefront checkout until it commits or expires."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from crossdock.domain.errors import InvalidTransition

MAX_TTL_SECONDS = 7 * 24 * 3600


class HoldStatus(StrEnum):
    ACTIVE = "active"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class HoldLine:
    sku: str
    node_id: str
    quantity: int


@dataclass(slots=True)
class Hold:
    reservation_id: str
    channel_id: str
    expires_at: datetime
    created_at: datetime
    lines: list[HoldLine] = field(default_factory=list)
    status: HoldStatus = HoldStatus.ACTIVE
    order_id: str | None = None
    seq: int = 0

    def close(self, status: HoldStatus, now: datetime) -> None:
        if self.status != HoldStatus.ACTIVE:
            # `state`, not `status`: in a problem answer `status` is the HTTP status
            raise InvalidTransition(f"reservation {self.reservation_id} is {self.status}", state=str(self.status))
        if status == HoldStatus.COMMITTED and now >= self.expires_at:
            raise InvalidTransition(f"reservation {self.reservation_id} expired at {self.expires_at.isoformat()}")
        self.status = status
