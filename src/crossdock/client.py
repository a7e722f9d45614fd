"""A Python client for the Crossdock API.

    with Crossdock("http://127.0.0.1:8000", client_id, client_secret) as crossdock:
        crossdock.put_sku("TEE-BLK-M", {"name": "Classic tee, black, M"})
        order = crossdock.create_order({"channel_id": "web", "external_id": "#1042", ...})

`Crossdock` answers with the API's own response models (`crossdock.api.*_schemas`) where the API
documents one, else with plain dicts. It retries what is safe to retry: every POST carries an
`Idempotency-Key` made once per call and sent again on each retry, so a repeated write is answered
from the server's record instead of being applied twice. Failures raise `ApiError`.

`ClientCredentials` alone, for any httpx client:

    auth = ClientCredentials(client_id, client_secret)
    with httpx.Client(base_url="http://127.0.0.1:8000", auth=auth) as http:
        http.get("/v1/inventory/TEE-BLK-M")

It gets a token from `POST /oauth/token` when it needs one, renews it before it expires, and once
more if the server refuses it (a revoked key, a restart with new keys). One instance may be shared by
many clients, sync and async, so that they share one token.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from crossdock.api.client_schemas import ClientCreatedOut, ClientIn, ClientListOut, ClientOut, TokenOut
from crossdock.api.schemas import (
    AdjustmentIn,
    ChannelIn,
    ChannelInventoryOut,
    CommitIn,
    EventPageOut,
    InventoryOut,
    NodeIn,
    OrderIn,
    OrderOut,
    ReservationIn,
    ReservationOut,
    ShipmentIn,
    SkuIn,
)
from crossdock.api.transfer_schemas import PlanIn, PlanOut, TransferListOut, TransferOut
from crossdock.api.webhook_schemas import (
    AttemptListOut,
    AttemptOut,
    EndpointIn,
    EndpointListOut,
    EndpointOut,
    EndpointPatch,
    MessageListOut,
    RecoverIn,
    RecoverOut,
    RotateIn,
)

TOKEN_PATH = "/oauth/token"
RENEW_BEFORE_SECONDS = 30


class AuthError(Exception):
    """The token endpoint refused the client's credentials."""


class ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials as an httpx auth flow (sync and async clients alike)."""

    requires_response_body = True  # the flow reads the token response

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        token_path: str = TOKEN_PATH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.token_path = token_path
        self.clock = clock
        # client_secret_basic: both parts form-urlencoded before they are joined (RFC 6749 section 2.3.1)
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        self._basic = "Basic " + base64.b64encode(pair).decode()
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._afetching: asyncio.Lock | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._current() is None:
            with self._fetching:  # one thread asks for the token; the others wait and share it
                if self._current() is None:
                    response = yield self._token_request(request)
                    response.read()
                    self._store(response)
        yield from super().sync_auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._current() is None:
            self._afetching = self._afetching or asyncio.Lock()
            async with self._afetching:  # the same for coroutines
                if self._current() is None:
                    response = yield self._token_request(request)
                    await response.aread()
                    self._store(response)
        flow = super().async_auth_flow(request)
        outgoing = await anext(flow)
        while True:
            answer = yield outgoing
            try:
                outgoing = await flow.asend(answer)
            except StopAsyncIteration:
                return

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        if token is None:
            token = self._store((yield self._token_request(request)))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and "invalid_token" in response.headers.get("www-authenticate", ""):
            token = self._store((yield self._token_request(request)))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _current(self) -> str | None:
        with self._lock:
            return self._token if self._token is not None and self.clock() < self._renew_at else None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        form = {"grant_type": "client_credentials"} | ({"scope": self.scope} if self.scope else {})
        return httpx.Request(
            "POST",
            request.url.join(self.token_path),
            data=form,
            headers={"Authorization": self._basic},
        )

    def _store(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            raise AuthError(f"token request refused ({response.status_code}): {response.text[:300]}")
        body = response.json()
        with self._lock:
            self._token = str(body["access_token"])
            self._renew_at = self.clock() + max(0.0, float(body["expires_in"]) - RENEW_BEFORE_SECONDS)
            return self._token


# -- the typed client -------------------------------------------------------------------------------

PROBLEM_TYPE_BASE = "https://crossdock.dev/problems/"
RETRY_WAIT_CAP = 30.0  # seconds: a Retry-After longer than this is shortened to it
BACKOFF_SECONDS = 0.25  # the first pause after a connection error, doubled per attempt
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Json = dict[str, Any]
Body = BaseModel | Mapping[str, Any]


class ApiError(Exception):
    """The API answered with an error (an RFC 9457 problem); retries, if any, are spent."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        self.problem: Json = body if isinstance(body, dict) else {"detail": response.text[:300]}
        self.status = response.status_code
        self.type = str(self.problem.get("type", "about:blank"))
        self.title = str(self.problem.get("title", response.reason_phrase))
        self.detail = str(self.problem.get("detail", ""))
        self.request_id = response.headers.get("request-id")
        self.retry_after = _retry_after(response)
        request = response.request
        super().__init__(
            f"{request.method} {request.url.path} -> {self.status} {self.title}: {self.detail}"
            f" (type {self.type}, Request-Id {self.request_id})"
        )

    @property
    def kind(self) -> str:
        """The problem type without its base: "not-found", "insufficient-stock", "rate-limited"..."""
        return self.type.removeprefix(PROBLEM_TYPE_BASE)

    @property
    def retryable(self) -> bool:
        # 409 idempotency-key-in-flight: our own earlier attempt (timed out on our side) is still running.
        return self.status in (429, 503) or self.kind == "idempotency-key-in-flight"


class NotFoundError(ApiError):
    """404: no such order, SKU, reservation, endpoint or client (or not one this client may see)."""


class ConflictError(ApiError):
    """409: not enough stock, a state that does not allow the change, a failed compare-and-set."""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):  # absent, or an HTTP date: the server sends seconds
        return None


def api_error(response: httpx.Response) -> ApiError:
    return {404: NotFoundError, 409: ConflictError}.get(response.status_code, ApiError)(response)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API operation: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: Mapping[str, str | int | float] | None = None


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _json(response: httpx.Response) -> Json:
    body: Json = response.json()
    return body


def _body(body: Body | None) -> Any:
    """An input model as the server's JSON (only the fields set: defaults stay the server's), a dict as is."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_unset=True)
    return None if body is None else dict(body)


def _query(**params: str | int | float | None) -> dict[str, str | int | float]:
    return {k: v for k, v in params.items() if v is not None and v != ""}


class Crossdock:
    """The Crossdock API, typed, over one `httpx.Client`.

    Retries: connection errors, 429 and 503 (after Retry-After, at most `RETRY_WAIT_CAP` seconds)
    and 409 idempotency-key-in-flight, up to `retries` times. Every call is safe to repeat: reads
    and PUTs by nature, POSTs and DELETEs because they carry the call's `Idempotency-Key`.

    `http`: a client of your own (proxies, transports, event hooks); its base URL is set to
    `base_url`, and it is not closed by `close()`.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout: float = 30,
        retries: int = 3,
        http: httpx.Client | None = None,
    ) -> None:
        self.auth = ClientCredentials(client_id, client_secret, scope=scope)  # replace to share one token
        self.retries = retries
        self.sleep: Callable[[float], None] = time.sleep
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._http.base_url = httpx.URL(base_url)

    def __enter__(self) -> Crossdock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def send(self, call: Call[T]) -> T:
        """Runs one operation with the retry policy above; the public methods are all built on it."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if call.method in ("POST", "DELETE") else {}
        for attempt in itertools.count():
            try:
                response = self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=headers, auth=self.auth
                )
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
                self.sleep(_backoff(attempt))
                continue
            if response.is_success:
                return call.parse(response)
            error = api_error(response)
            if attempt >= self.retries or not error.retryable:
                raise error
            self.sleep(min(RETRY_WAIT_CAP, error.retry_after if error.retry_after is not None else _backoff(attempt)))
        raise AssertionError("unreachable")

    # -- catalog ----------------------------------------------------------------------------------

    def put_node(self, node_id: str, node: NodeIn | Mapping[str, Any]) -> Json:
        return self.send(Call("PUT", f"/v1/nodes/{node_id}", _json, _body(node)))

    def put_channel(self, channel_id: str, channel: ChannelIn | Mapping[str, Any]) -> Json:
        return self.send(Call("PUT", f"/v1/channels/{channel_id}", _json, _body(channel)))

    def put_sku(self, sku: str, item: SkuIn | Mapping[str, Any]) -> Json:
        return self.send(Call("PUT", f"/v1/skus/{sku}", _json, _body(item)))

    # -- inventory --------------------------------------------------------------------------------

    def adjust_inventory(self, adjustments: Sequence[AdjustmentIn | Mapping[str, Any]]) -> Json:
        """All or nothing; answers `{"positions": [...]}`, the positions after the change."""
        body = {"adjustments": [_body(a) for a in adjustments]}
        return self.send(Call("POST", "/v1/inventory/adjustments", _json, body))

    def get_inventory(self, sku: str) -> InventoryOut:
        return self.send(Call("GET", f"/v1/inventory/{sku}", _model(InventoryOut)))

    def channel_inventory(self, channel_id: str, after: str = "", limit: int = 500) -> ChannelInventoryOut:
        params = _query(after=after, limit=limit)
        return self.send(Call("GET", f"/v1/channels/{channel_id}/inventory", _model(ChannelInventoryOut), None, params))

    # -- orders -----------------------------------------------------------------------------------

    def channel_sync(self, channel_id: str) -> Json:
        """How the sync of sellable quantities out to the channel stands (lag, waiting, refused...)."""
        return self.send(Call("GET", f"/v1/channels/{channel_id}/sync", _json))

    def create_order(self, order: OrderIn | Mapping[str, Any]) -> OrderOut:
        """Idempotent on (channel_id, external_id) besides the Idempotency-Key."""
        return self.send(Call("POST", "/v1/orders", _model(OrderOut), _body(order)))

    def get_order(self, order_id: str) -> OrderOut:
        return self.send(Call("GET", f"/v1/orders/{order_id}", _model(OrderOut)))

    def list_orders(
        self, channel_id: str | None = None, status: str | None = None, after: str = "", limit: int = 100
    ) -> Json:
        """One page: `{"orders": [...], "next": cursor or None}`, oldest first."""
        params = _query(channel_id=channel_id, status=status, after=after, limit=limit)
        return self.send(Call("GET", "/v1/orders", _json, None, params))

    def iter_orders(self, channel_id: str | None = None, status: str | None = None, page: int = 100) -> Iterator[Json]:
        """Every order, page after page."""
        after: str | None = ""
        while after is not None:
            found = self.list_orders(channel_id, status, after, page)
            yield from found["orders"]
            after = found["next"]

    def cancel_order(self, order_id: str, reason: str = "") -> OrderOut:
        return self.send(Call("POST", f"/v1/orders/{order_id}/cancel", _model(OrderOut), {"reason": reason}))

    def ship_order(self, order_id: str, shipment: ShipmentIn | Mapping[str, Any]) -> OrderOut:
        return self.send(Call("POST", f"/v1/orders/{order_id}/shipments", _model(OrderOut), _body(shipment)))

    # -- checkout holds ---------------------------------------------------------------------------

    def reserve(self, reservation: ReservationIn | Mapping[str, Any]) -> ReservationOut:
        """Holds every line or nothing: `ConflictError` (insufficient-stock) when stock is short."""
        return self.send(Call("POST", "/v1/reservations", _model(ReservationOut), _body(reservation)))

    def get_reservation(self, reservation_id: str) -> ReservationOut:
        return self.send(Call("GET", f"/v1/reservations/{reservation_id}", _model(ReservationOut)))

    def commit_reservation(self, reservation_id: str, commit: CommitIn | Mapping[str, Any]) -> OrderOut:
        path = f"/v1/reservations/{reservation_id}/commit"
        return self.send(Call("POST", path, _model(OrderOut), _body(commit)))

    def release_reservation(self, reservation_id: str) -> ReservationOut:
        return self.send(Call("POST", f"/v1/reservations/{reservation_id}/release", _model(ReservationOut)))

    # -- transfers --------------------------------------------------------------------------------

    def plan_transfers(self, plan: PlanIn | Mapping[str, Any] | None = None) -> PlanOut:
        """Proposes transfers between nodes (those within the auto-approval thresholds come back approved)."""
        return self.send(Call("POST", "/v1/transfers/plan", _model(PlanOut), _body(plan) or {}))

    def list_transfers(
        self, status: str | None = None, sku: str | None = None, after: str = "", limit: int = 100
    ) -> TransferListOut:
        params = _query(status=status, sku=sku, after=after, limit=limit)
        return self.send(Call("GET", "/v1/transfers", _model(TransferListOut), None, params))

    def get_transfer(self, transfer_id: str) -> TransferOut:
        return self.send(Call("GET", f"/v1/transfers/{transfer_id}", _model(TransferOut)))

    def act_on_transfer(
        self, transfer_id: str, action: str, *, quantity: int | None = None, note: str = ""
    ) -> TransferOut:
        """`action`: approve, reject, cancel, ship or receive (`quantity`: units shipped or received,
        default all)."""
        body: dict[str, Any] = {"note": note} | ({"quantity": quantity} if quantity is not None else {})
        return self.send(Call("POST", f"/v1/transfers/{transfer_id}/{action}", _model(TransferOut), body))

    # -- events and webhooks ----------------------------------------------------------------------

    def events(
        self, after: str = "0", limit: int = 100, types: Sequence[str] | None = None, wait: float = 0
    ) -> EventPageOut:
        """One page of the feed after a cursor; empty when caught up (after waiting `wait` seconds)."""
        params = _query(after=after, limit=limit, types=",".join(types) if types else None, wait=wait or None)
        return self.send(Call("GET", "/v1/events", _model(EventPageOut), None, params))

    def create_webhook_endpoint(self, endpoint: EndpointIn | Mapping[str, Any]) -> EndpointOut:
        """The answer holds the signing secret, shown this once."""
        return self.send(Call("POST", "/v1/webhook-endpoints", _model(EndpointOut), _body(endpoint)))

    def list_webhook_endpoints(self, after: str = "", limit: int = 100) -> EndpointListOut:
        params = _query(after=after, limit=limit)
        return self.send(Call("GET", "/v1/webhook-endpoints", _model(EndpointListOut), None, params))

    def get_webhook_endpoint(self, endpoint_id: str) -> EndpointOut:
        return self.send(Call("GET", f"/v1/webhook-endpoints/{endpoint_id}", _model(EndpointOut)))

    def update_webhook_endpoint(self, endpoint_id: str, changes: EndpointPatch | Mapping[str, Any]) -> EndpointOut:
        return self.send(Call("PATCH", f"/v1/webhook-endpoints/{endpoint_id}", _model(EndpointOut), _body(changes)))

    def delete_webhook_endpoint(self, endpoint_id: str) -> Json:
        return self.send(Call("DELETE", f"/v1/webhook-endpoints/{endpoint_id}", _json))

    def rotate_webhook_secret(
        self, endpoint_id: str, rotation: RotateIn | Mapping[str, Any] | None = None
    ) -> EndpointOut:
        path = f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret"
        return self.send(Call("POST", path, _model(EndpointOut), _body(rotation)))

    def recover_webhook_messages(self, endpoint_id: str, window: RecoverIn | Mapping[str, Any]) -> RecoverOut:
        path = f"/v1/webhook-endpoints/{endpoint_id}/recover"
        return self.send(Call("POST", path, _model(RecoverOut), _body(window)))

    def test_webhook_endpoint(self, endpoint_id: str) -> AttemptOut:
        return self.send(Call("POST", f"/v1/webhook-endpoints/{endpoint_id}/test", _model(AttemptOut)))

    def webhook_attempts(self, endpoint_id: str, after: str = "", limit: int = 100) -> AttemptListOut:
        path, params = f"/v1/webhook-endpoints/{endpoint_id}/attempts", _query(after=after, limit=limit)
        return self.send(Call("GET", path, _model(AttemptListOut), None, params))

    def webhook_messages(
        self, endpoint_id: str, status: str | None = None, after: str = "", limit: int = 100
    ) -> MessageListOut:
        path, params = f"/v1/webhook-endpoints/{endpoint_id}/messages", _query(status=status, after=after, limit=limit)
        return self.send(Call("GET", path, _model(MessageListOut), None, params))

    # -- administration ---------------------------------------------------------------------------

    def create_client(self, client: ClientIn | Mapping[str, Any]) -> ClientCreatedOut:
        """The answer holds the new client's secret, shown this once."""
        return self.send(Call("POST", "/v1/clients", _model(ClientCreatedOut), _body(client)))

    def list_clients(self, after: str = "", limit: int = 100) -> ClientListOut:
        params = _query(after=after, limit=limit)
        return self.send(Call("GET", "/v1/clients", _model(ClientListOut), None, params))

    def revoke_client(self, client_id: str) -> ClientOut:
        return self.send(Call("POST", f"/v1/clients/{client_id}/revoke", _model(ClientOut)))

    def audit(
        self,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        order: str = "newest",
        after: str = "",
        limit: int = 100,
    ) -> Json:
        """One page of the audit log: `{"entries": [...], "next": cursor or None}`."""
        params = _query(
            object_type=object_type,
            object_id=object_id,
            actor=actor,
            since=since,
            until=until,
            order=order,
            after=after,
            limit=limit,
        )
        return self.send(Call("GET", "/v1/audit", _json, None, params))

    def reconciliation(self) -> Json:
        """Positions rebuilt from the movement ledger against the stored ones: `{"ok": bool, ...}`."""
        return self.send(Call("GET", "/v1/admin/reconciliation", _json))

    def issue_token(self) -> TokenOut:
        """A bearer token of this client, for a tool that cannot run the OAuth flow itself (wrk, curl).
        The client keeps using it too."""
        response = self._http.send(self.auth._token_request(httpx.Request("POST", self._http.base_url)))
        self.auth._store(response)  # AuthError when refused
        return TokenOut.model_validate_json(response.content)


def _backoff(attempt: int) -> float:
    """Exponential with full jitter, so that clients cut off together do not come back together."""
    return random.uniform(0, min(RETRY_WAIT_CAP, BACKOFF_SECONDS * 2**attempt))
