"""For webhook tests: a real HTTP receiver that records what it is sent and answers as told, a fake
clock, and the API served over a real socket on a database and relay that share that clock."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import uvicorn
from standardwebhooks.webhooks import Webhook

from crossdock.api.app import create_app
from crossdock.client import ClientCredentials
from crossdock.config import Settings
from crossdock.events.relay import Relay
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.events.webhooks.dispatcher import WebhookDispatcher
from crossdock.provisioning import create_client
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from tests.conftest import free_port

T = TypeVar("T")
LOOPBACK = "127.0.0.0/8"


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> int:
        return int(self.headers["webhook-timestamp"])

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"thanks"
    delay: float = 0.0  # seconds to wait before answering


class Receiver:
    """A real HTTP/1.1 server (keep-alive, a thread per connection) taking webhooks."""

    def __init__(
        self,
        answer: Callable[[Delivery], Answer] | None = None,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        name: str | None = None,
    ) -> None:
        """`tls`: serve HTTPS with this context; `name`: the host name in the URL (else `host`)."""
        self.answer = answer or (lambda d: Answer())
        self.deliveries: list[Delivery] = []
        self.answers: list[Answer] = []
        self.release = threading.Event()  # ends every delay early (at the end of a test)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                delivery = Delivery({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with receiver._lock:
                    answer = receiver.answer(delivery)
                    receiver.deliveries.append(delivery)
                    receiver.answers.append(answer)
                if answer.delay:
                    receiver.release.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the sender gave up waiting
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.server_names: list[str | None] = []  # TLS SNI of each handshake
        if tls is not None:
            tls.sni_callback = lambda sock, server_name, ctx: self.server_names.append(server_name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{name or host}:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def answered(self) -> list[tuple[Delivery, Answer]]:
        with self._lock:
            return list(zip(self.deliveries, self.answers, strict=True))

    def wait(self, done: Callable[[list[Delivery]], bool], timeout: float = 15.0) -> list[Delivery]:
        """What was received, once `done` says it is enough."""
        return until(self.received, done, timeout)


def eventually(check: Callable[[], T | None], timeout: float = 15.0, every: float = 0.01) -> T:
    """Polls `check` until it gives something other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {timeout} s (last: {value!r})")
        time.sleep(every)


def until(get: Callable[[], T], ok: Callable[[T], bool], timeout: float = 15.0) -> T:
    """`get()` once `ok` says yes to it (polled)."""

    def check() -> T | None:
        value = get()
        return value if ok(value) else None

    return eventually(check, timeout)


def assert_signed(delivery: Delivery, secret: str) -> None:
    """The Standard Webhooks reference library accepts the delivery's signature for this secret.
    A fake clock far from now is beyond its replay window: then the signature is compared directly."""
    webhook = Webhook(secret)
    if abs(delivery.timestamp - time.time()) < 240:
        webhook.verify(delivery.body, delivery.headers)
        return
    expected = webhook.sign(delivery.id, datetime.fromtimestamp(delivery.timestamp, UTC), delivery.body.decode())
    assert expected in delivery.signatures, (expected, delivery.signatures)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, when: datetime) -> None:
        with self._lock:
            self.now = when


class AppServer:
    """An app on a real socket, in a thread (like conftest's LiveServer, for an app built here)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        eventually(lambda: self.server.started or not self.thread.is_alive(), timeout=30)
        assert self.server.started, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Hub:
    """The API, its database and the relay (delivering webhooks), all on one fake clock."""

    clock: FakeClock
    db: Database
    relay: Relay
    http: httpx.Client

    def set_clock(self, when: datetime) -> None:
        """Moves the clock and wakes the relay, as a commit would."""
        self.clock.set(when)
        self.relay.wake()

    def advance(self, by: timedelta) -> None:
        self.set_clock(self.clock() + by)


@contextlib.contextmanager
def hub(database_url: str, *, timeout: float = 0.3, deliver_to: str = LOOPBACK) -> Iterator[Hub]:
    """`deliver_to`: the networks the dispatcher may reach (the API always allows loopback)."""
    upgrade(database_url)
    clock = FakeClock()
    db = open_database(database_url, clock=clock)
    dispatcher = WebhookDispatcher(timeout=timeout, policy=AddressPolicy.from_setting(deliver_to))
    relay = Relay(db, [dispatcher], clock=clock).start()
    settings = Settings(
        database_url=database_url,
        webhook_allow_private=LOOPBACK,
        webhook_timeout_seconds=timeout,
        hold_sweep_seconds=3600,
    )
    client, secret = create_client(database_url, "tests", "admin")
    auth = ClientCredentials(client.client_id, secret)
    try:
        with (
            AppServer(create_app(settings, db=db)) as server,
            httpx.Client(base_url=server.base_url, auth=auth) as http,
        ):
            yield Hub(clock, db, relay, http)
    finally:
        relay.stop()
        db.close()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
