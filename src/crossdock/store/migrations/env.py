"""Alembic environment: the URL comes from the caller (crossdock migrate), never from a file."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection

url = context.config.get_main_option("sqlalchemy.url")
assert url, "crossdock.store.migrate sets sqlalchemy.url"
engine = create_engine(url)
if engine.dialect.name == "sqlite":
    # Python's sqlite3 commits before every DDL statement on its own: take transactions over, so
    # that all pending migrations apply at once or not at all (and with one sync to disk, not ~100).
    @event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(connection=connection, render_as_batch=sqlite, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
