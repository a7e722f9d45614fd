"""A transfer: stock of one SKU moved from one node to another, and the states it goes through.

    proposed --approve--> approved --ship--> shipped --receive--> received
       |                     |
       +--reject/expire      +--cancel--> cancelled
       +--cancel

A proposal holds nothing: rejecting it, letting it expire or cancelling it changes no stock.
Approval holds the units at the source (reserved: they cannot be sold twice) and shows them as
inbound at the destination; shipping takes them off the source's shelf; receipt puts what arrived on
the destination's shelf. What was shipped but did not arrive is written off the destination's
inbound (`transfer_short`), so the ledger says where it went missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crossdock.domain.errors import InvalidRequest, InvalidTransition


class TransferStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    SHIPPED = "shipped"
    RECEIVED = "received"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# What each action may start from.
_FROM: dict[str, tuple[TransferStatus, ...]] = {
    "approve": (TransferStatus.PROPOSED,),
    "reject": (TransferStatus.PROPOSED,),
    "expire": (TransferStatus.PROPOSED,),
    "cancel": (TransferStatus.PROPOSED, TransferStatus.APPROVED),
    "ship": (TransferStatus.APPROVED,),
    "receive": (TransferStatus.SHIPPED,),
}


@dataclass(slots=True)
class Transfer:
    transfer_id: str
    sku: str
    from_node_id: str
    to_node_id: str
    quantity: int  # units proposed and, once approved, held at the source
    cost: float  # the move's estimated cost
    benefit: float  # the expected saving in lost sales and holding over the planning horizon
    status: TransferStatus
    created_at: datetime
    expires_at: datetime  # a proposal not approved by then expires
    shipped: int = 0
    received: int = 0
    seq: int = 0  # the transfer's event sequence
    plan_id: str = ""
    note: str = ""  # why it was rejected, cancelled or expired; who approved it ("auto")

    def check(self, action: str, now: datetime | None = None) -> None:
        """Raises InvalidTransition unless `action` is allowed now."""
        if self.status not in _FROM[action]:
            raise InvalidTransition(
                f"transfer {self.transfer_id} is {self.status}: cannot {action}",
                transfer_id=self.transfer_id,
                status=str(self.status),
            )
        if action == "approve" and now is not None and now >= self.expires_at:
            raise InvalidTransition(
                f"transfer {self.transfer_id} expired at {self.expires_at.isoformat()}: cannot approve",
                transfer_id=self.transfer_id,
                status=str(TransferStatus.EXPIRED),
            )

    def ship_quantity(self, quantity: int | None) -> int:
        shipped = self.quantity if quantity is None else quantity
        if not 0 < shipped <= self.quantity:
            raise InvalidRequest(f"ship between 1 and the {self.quantity} units approved, not {shipped}")
        return shipped

    def receive_quantity(self, quantity: int | None) -> int:
        received = self.shipped if quantity is None else quantity
        if not 0 <= received <= self.shipped:
            raise InvalidRequest(
                f"receive between 0 and the {self.shipped} units shipped, not {received}"
                " (more than was shipped is a stock adjustment)"
            )
        return received
