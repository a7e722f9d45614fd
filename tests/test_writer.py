"""The writer process's protocol: jobs cross to the writer and outcomes (or errors) come back."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from crossdock.domain.catalog import Sku
from crossdock.domain.errors import UnknownReference
from crossdock.domain.order import ShipTo
from crossdock.services import catalog, orders
from crossdock.services.ports import UnitOfWork
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade
from crossdock.store.writer import RemoteDatabase, WriterServer


def _unpicklable(uow: UnitOfWork) -> Callable[[], None]:
    return lambda: None


def test_jobs_go_to_the_writer_and_outcomes_come_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crossdock.db'}"
    upgrade(url)
    db = open_database(url)
    server = WriterServer(db, str(tmp_path / "writer.sock"))
    remote = RemoteDatabase(url, server.path)
    try:
        assert remote.run(partial(catalog.put_sku, sku=Sku("MUG", "Mug", 350))) is True
        assert remote.read(lambda uow: uow.get_sku("MUG")) == Sku("MUG", "Mug", 350)  # read here, written there

        cmd = orders.NewOrder("nowhere", "X-1", [("MUG", 1)], ShipTo("10001", "US"))
        with pytest.raises(UnknownReference) as refused:
            remote.run(partial(orders.ingest_order, cmd=cmd))
        assert refused.value.extra == {"channel_id": "nowhere"}

        with pytest.raises(RuntimeError, match="could not be sent"):
            remote.run(_unpicklable)
        assert remote.run(partial(catalog.put_sku, sku=Sku("MUG", "Mug", 400))) is False  # the line still works
    finally:
        remote.close()
        server.close()
        db.close()
