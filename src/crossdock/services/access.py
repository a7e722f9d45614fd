"""Object-level authorisation (OWASP API1): a caller acting for one channel reaches only that
channel's orders and checkout holds. `acting_for` is that channel, or None for a caller that acts
for every channel. Naming another channel outright is refused (403); an order or hold of another
channel is "not found" like an id that does not exist, so its existence does not leak."""

from __future__ import annotations

from crossdock.domain.errors import Forbidden, NotFound
from crossdock.services.ports import UnitOfWork


def check_channel(acting_for: str | None, channel_id: str) -> None:
    if acting_for is not None and channel_id != acting_for:
        raise Forbidden(f"this client acts for channel {acting_for!r} only, not {channel_id!r}")


def check_order(uow: UnitOfWork, acting_for: str | None, order_id: str) -> None:
    if acting_for is None:
        return
    order = uow.get_order(order_id)
    if order is None or order.channel_id != acting_for:
        raise NotFound(f"no order {order_id}")


def check_hold(uow: UnitOfWork, acting_for: str | None, reservation_id: str) -> None:
    if acting_for is None:
        return
    hold = uow.get_hold(reservation_id)
    if hold is None or hold.channel_id != acting_for:
        raise NotFound(f"no reservation {reservation_id}")
