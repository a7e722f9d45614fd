"""One attempt: a signed POST of a CloudEvent to an endpoint, and what came of it.

2xx is success. Redirects are not followed (a 3xx is a failure: the receiver must give its final
URL), 410 Gone asks for the endpoint to be switched off, anything else or no answer is a failure.

Requests go over HTTP/1.1 keep-alive connections of httpx's transport (httpcore), one request per
connection at a time, the idle ones kept for the next. Not through an `httpx.AsyncClient`: its
connection pool costs grow with the requests in flight (measured here, 32 at once: 375 requests/s
through one client, 3,500/s over these connections), and an endpoint has up to 32 in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpcore
import httpx

from crossdock import __version__
from crossdock.domain.webhooks import LONGEST_RETRY_AFTER
from crossdock.events.tracecontext import from_payload
from crossdock.events.webhooks import signing
from crossdock.events.webhooks.addresses import AddressPolicy, Refused, Target

CONTENT_TYPE = b"application/cloudevents+json"
USER_AGENT = f"Crossdock-Webhooks/{__version__}".encode()
EXCERPT_BYTES = 1024
DRAIN_BYTES = 64 * 1024  # an answer up to this size is read through, so the connection can be kept
PIN_SECONDS = 30.0  # how long a checked address is used before the name is resolved again
KEEP_IDLE = 32  # idle connections kept per endpoint
KEEPALIVE_SECONDS = 30.0
FAILURES = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
    ssl.SSLError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    at: datetime
    ok: bool
    response_code: int | None
    duration_ms: float
    excerpt: str
    error: str | None
    retry_after: timedelta | None = None
    gone: bool = False  # 410: the receiver wants no more

    @property
    def status(self) -> str:
        return "succeeded" if self.ok else "failed"


class Sender:
    """Sends one endpoint's webhooks."""

    def __init__(self, url: str, policy: AddressPolicy, timeout: float) -> None:
        self.url = url
        self.policy = policy
        self.timeout = timeout
        self._target: Target | None = None
        self._pinned_until = 0.0
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        self._ssl: ssl.SSLContext | None = None

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()

    async def _checked_target(self) -> Target:
        now = time.monotonic()
        if self._target is None or now >= self._pinned_until:
            self._target = await self.policy.check(self.url)
            self._pinned_until = now + PIN_SECONDS
        return self._target

    async def _connection(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the one most likely still open
            if conn.can_handle_request(origin) and not conn.has_expired() and not conn.is_closed():
                return conn
            await conn.aclose()
        if origin.scheme == b"https" and self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return httpcore.AsyncHTTPConnection(origin, ssl_context=self._ssl, keepalive_expiry=KEEPALIVE_SECONDS)

    async def send(self, msg_id: str, body: bytes, secrets: list[str], at: datetime) -> Outcome:
        started = time.perf_counter()

        def failed(
            error: str, code: int | None = None, excerpt: str = "", wait: timedelta | None = None, gone: bool = False
        ) -> Outcome:
            return Outcome(at, False, code, (time.perf_counter() - started) * 1000, excerpt, error, wait, gone)

        try:
            target = await self._checked_target()
        except Refused as exc:
            return failed(f"refused: {exc}")
        url = target.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin = httpcore.Origin(url.raw_scheme, str(target.address).encode(), port)
        headers = [
            (k.encode(), v.encode()) for k, v in signing.headers(secrets, msg_id, int(at.timestamp()), body).items()
        ]
        headers += [
            (b"host", url.netloc),
            (b"content-type", CONTENT_TYPE),
            (b"content-length", str(len(body)).encode()),
            (b"user-agent", USER_AGENT),
        ]
        headers += [(k.encode(), v.encode()) for k, v in from_payload(body).items()]
        extensions: dict[str, object] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)}
        if url.scheme == "https":  # TLS speaks to the name (SNI, certificate) while connecting to the address
            extensions["sni_hostname"] = target.hostname
        request = httpcore.Request(
            b"POST",
            httpcore.URL(scheme=url.raw_scheme, host=origin.host, port=origin.port, target=url.raw_path),
            headers=headers,
            content=body,
            extensions=extensions,
        )
        conn = await self._connection(origin)
        keep = False
        try:
            async with asyncio.timeout(self.timeout):
                response = await conn.handle_async_request(request)
                try:
                    excerpt, complete = await _excerpt(response)
                finally:
                    await response.aclose()
            keep = complete
        except (TimeoutError, httpcore.TimeoutException):
            self._target = None  # resolve again: the receiver may have moved
            return failed(f"no answer within {self.timeout:g} s")
        except FAILURES as exc:
            self._target = None
            return failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        finally:
            if keep and len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
            else:
                with contextlib.suppress(Exception):
                    await conn.aclose()
        code = response.status
        if 200 <= code < 300:
            return Outcome(at, True, code, (time.perf_counter() - started) * 1000, excerpt, None)
        answer = httpx.Headers(response.headers)
        wait = retry_after(answer.get("retry-after"))
        if code == 410:
            return failed("410 Gone: the endpoint is switched off", code, excerpt, wait, gone=True)
        if 300 <= code < 400:
            return failed(f"redirect {code} to {answer.get('location', 'nowhere')} not followed", code, excerpt, wait)
        return failed(f"answered {code}", code, excerpt, wait)


async def _excerpt(response: httpcore.Response) -> tuple[str, bool]:
    """The start of the answer, and whether all of it was read (else the connection is not reused)."""
    head = bytearray()
    async for chunk in response.aiter_stream():
        head += chunk
        if len(head) > DRAIN_BYTES:
            return head[:EXCERPT_BYTES].decode("utf-8", errors="replace"), False
    return head[:EXCERPT_BYTES].decode("utf-8", errors="replace"), True


def retry_after(value: str | None) -> timedelta | None:
    """The wait a Retry-After header asks for: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(timedelta(seconds=int(value[:12])), LONGEST_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # The date is the receiver's wall clock, so it is measured against ours.
    return min(max(when - datetime.now(UTC), timedelta(0)), LONGEST_RETRY_AFTER)
