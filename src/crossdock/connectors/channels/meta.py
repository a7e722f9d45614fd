"""Meta (Facebook and Instagram shops): a catalog Crossdock keeps quantities right in, nothing more.
Meta retired its commerce order API in 2026, so no orders come from Meta: `verify` and `parse`
refuse every webhook with that reason.

Config: `catalog_id`, `access_token`, optional `api_version` (Graph API, default below) and
`api_url`. A SKU is the catalog item's `retailer_id`.

- Push: `POST /{version}/{catalog_id}/items_batch` (item_type PRODUCT_ITEM, UPDATE requests with
  `inventory`; `allow_upsert` false so an unknown SKU is refused instead of created as an empty
  product). The answer's `validation_status` names refused items; its `handles` are then checked
  once with `GET /{catalog_id}/check_batch_request_status` for errors found while processing. A
  batch still in progress comes back as a pending feed, checked again later (`settle`) until it is
  finished (its per-item errors refuse those SKUs) or ended otherwise (its SKUs are pushed again).
- Read: `GET /{version}/{catalog_id}/products?fields=retailer_id,inventory&filter=...`, paged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from crossdock.connectors.common import SequenceGate, raise_for_status, request, retry_after
from crossdock.connectors.sdk import (
    FEED_DONE,
    FEED_FAILED,
    FEED_PENDING,
    ChannelError,
    FeedOutcome,
    Inbound,
    PayloadError,
    PendingFeed,
    PushResult,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
    config_text,
)
from crossdock.domain.catalog import Channel

API_URL = "https://graph.facebook.com"
API_VERSION = "v23.0"
RETIRED = "Meta sends no order webhooks: its commerce order API was retired in 2026"
RATE_LIMIT_CODES = {4, 17, 32, 613, 80014}  # Graph API throttling (80014: catalog batch calls)
PERMANENT_CODES = {10, 102, 190, 200}  # permissions, session and token errors
READ_CHUNK = 100  # retailer ids per products filter
WORKING = frozenset({"in_progress", "started", "not_started", "pending"})  # a batch not finished yet

JSON = dict[str, Any]


def raise_graph_error(response: httpx.Response) -> None:
    """The ChannelError for a Graph error (with a failing status, or in a 200): Graph's error code
    says more than the status (a throttle comes as a 400), so it is asked first."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    message = f"{error.get('message', response.text[:200])} (code {code})"
    what = f"Meta answered {response.status_code}: {message}"
    if code in RATE_LIMIT_CODES:
        raise ChannelError(what, retry_after=retry_after(response))
    if code in PERMANENT_CODES:
        raise ChannelError(what, permanent=True)
    if error.get("is_transient"):
        raise ChannelError(what)
    raise_for_status(response, "Meta", message)
    raise ChannelError(what, permanent=True)  # an error in a 200 answer: the request itself is wrong


class MetaConnector:
    kind: ClassVar[str] = "meta"
    # items_batch takes up to 5,000 requests; Meta recommends under 3,000 for performance
    max_batch: ClassVar[int] = 3000

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        raw_api = channel.config.get("api_url")
        self.api_url = (raw_api if isinstance(raw_api, str) and raw_api else API_URL).rstrip("/")
        raw_version = channel.config.get("api_version")
        self.version = raw_version if isinstance(raw_version, str) and raw_version else API_VERSION
        self._gate = SequenceGate()

    def verify(self, webhook: RawWebhook) -> None:
        raise SignatureError(RETIRED)

    def parse(self, webhook: RawWebhook) -> Inbound:
        raise PayloadError(RETIRED)

    def _catalog_url(self, edge: str) -> str:
        return f"{self.api_url}/{self.version}/{config_text(self.channel, 'catalog_id')}/{edge}"

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        batch = self._gate.fresh(updates)
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        pending: list[PendingFeed] = []
        for start in range(0, len(batch), self.max_batch):
            part = batch[start : start + self.max_batch]
            refused, working = await self._push_part(part)
            rejected.update(refused)
            taken = [u for u in part if u.sku not in refused]
            self._gate.pushed(taken)
            if working:
                pending += [PendingFeed(handle, tuple(taken)) for handle in working]
            else:
                accepted += [u.sku for u in taken]
        return PushResult(accepted=tuple(accepted), rejected=rejected, pending=tuple(pending))

    async def settle(self, feeds: Sequence[PendingFeed]) -> list[FeedOutcome]:
        outcomes: list[FeedOutcome] = []
        for feed in feeds:
            status, refused = await self._batch_status(feed.feed_id)
            if status == "finished":
                wanted = {u.sku for u in feed.updates}
                outcomes.append(FeedOutcome(feed.feed_id, FEED_DONE, {k: v for k, v in refused.items() if k in wanted}))
            elif status in WORKING:
                outcomes.append(FeedOutcome(feed.feed_id, FEED_PENDING))
            else:
                outcomes.append(FeedOutcome(feed.feed_id, FEED_FAILED, error=f"Meta batch ended {status!r}"))
        return outcomes

    async def _batch_status(self, handle: str) -> tuple[str, dict[str, str]]:
        """A batch's status (finished, in_progress, ...) and the items refused while processing it."""
        checked = await self._call("GET", self._catalog_url("check_batch_request_status"), params={"handle": handle})
        status = "finished"
        refused: dict[str, str] = {}
        for result in checked.get("data") or []:
            if result.get("status") != "finished":
                status = str(result.get("status"))
            for error in result.get("errors") or []:
                if error.get("id"):
                    refused[str(error["id"])] = str(error.get("message", "refused by Meta"))
        return status, refused

    async def _push_part(self, part: Sequence[QuantityUpdate]) -> tuple[dict[str, str], list[str]]:
        """Sends one items_batch call; returns the SKUs Meta refused, with why, and the handles of
        the batches still being processed."""
        body = {
            # in the body, not the URL: a token in a URL ends up in access logs
            "access_token": config_text(self.channel, "access_token"),
            "item_type": "PRODUCT_ITEM",
            "allow_upsert": False,
            "requests": [{"method": "UPDATE", "data": {"id": u.sku, "inventory": max(0, u.available)}} for u in part],
        }
        answer = await self._call("POST", self._catalog_url("items_batch"), json=body)
        refused: dict[str, str] = {}
        for status in answer.get("validation_status") or []:
            problems = [e.get("message", "") for e in status.get("errors") or []]
            if problems and status.get("retailer_id"):
                refused[str(status["retailer_id"])] = "; ".join(problems)
        working: list[str] = []
        for handle in answer.get("handles") or []:
            status, late = await self._batch_status(str(handle))
            refused.update(late)
            if status != "finished":
                working.append(str(handle))
        return refused, working

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(skus))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), READ_CHUNK):
            params: dict[str, str | int] = {
                "fields": "retailer_id,inventory",
                "filter": json.dumps({"retailer_id": {"is_any": wanted[start : start + READ_CHUNK]}}),
                "limit": READ_CHUNK,
            }
            while True:
                page = await self._call("GET", self._catalog_url("products"), params=params)
                for product in page.get("data") or []:
                    if product.get("retailer_id") in wanted and isinstance(product.get("inventory"), int):
                        found[product["retailer_id"]] = product["inventory"]
                paging = page.get("paging") or {}
                after = (paging.get("cursors") or {}).get("after")
                # follow the cursor, not paging.next: the next URL is Meta's to choose, our host is ours
                if not paging.get("next") or not after:
                    break
                params = {**params, "after": after}
        return found

    async def _call(self, method: str, url: str, **kwargs: Any) -> JSON:
        headers = {"Authorization": f"Bearer {config_text(self.channel, 'access_token')}"}
        response = await request(self.http, "Meta", method, url, headers=headers, **kwargs)
        if response.is_error:
            raise_graph_error(response)
        try:
            answer = response.json()
        except ValueError:
            raise ChannelError("Meta answered with something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ChannelError("Meta answered with JSON that is not an object")
        if "error" in answer:  # Graph sometimes reports an error with a 200
            raise_graph_error(response)
        return answer
