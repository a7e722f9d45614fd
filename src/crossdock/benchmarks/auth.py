"""`crossdock bench auth`: what authentication and rate limiting cost per request, and whether one
client's burst leaves the others alone.

1. Overhead: the door every request passes (`Guard.admit`: bearer token, client state, scope, one
   rate-limit hit), timed in-process on the real objects over a real SQLite database, for a token
   already verified once (the common case) and for tokens seen for the first time (signature check).
2. Fairness: a real server (`serve --workers 2`); client "calm" places orders at a steady rate while
   client "burst" sends ten times its own limit. Both run open-loop in their own processes, latency
   counted from each request's scheduled time. The calm client's p99 with and without the burst.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request

from crossdock.api.app import guard_for
from crossdock.api.auth import Guard
from crossdock.api.ratelimit import RateLimiter
from crossdock.benchmarks.report import percentiles
from crossdock.client import Crossdock
from crossdock.config import Settings
from crossdock.domain.clients import SCOPES, ApiClient
from crossdock.localserver import ServerProcess
from crossdock.provisioning import create_client, mint_token
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade

SKUS = [f"AUTH-{i:03d}" for i in range(100)]
UNLIMITED = {scope: "1000000/second" for scope in SCOPES}


def overhead(work: Path, calls: int = 20_000, fresh: int = 2_000) -> dict[str, Any]:
    url = f"sqlite:///{work / 'overhead.db'}"
    upgrade(url)
    client, _ = create_client(url, "bench", "orders:write")
    db = open_database(url, writers=1)
    try:
        return asyncio.run(_overhead(db, client, calls, fresh))
    finally:
        db.close()


async def _overhead(db: Database, client: ApiClient, calls: int, fresh: int) -> dict[str, Any]:
    guard = await guard_for(db, Settings(), RateLimiter({}, "1000000/second"))
    issue = partial(guard.tokens.issue, client, client.scopes)
    return {
        "verified_token_us": await _time_admit(guard, [issue()] * calls),
        "new_token_us": await _time_admit(guard, [issue() for _ in range(fresh)]),
    }


async def _time_admit(guard: Guard, tokens: list[str]) -> dict[str, float]:
    await guard.admit(_request(tokens[-1]), "orders:write")  # the client cache warm, as in a server
    took: list[float] = []
    for token in tokens:
        request = _request(token)
        started = time.perf_counter_ns()
        await guard.admit(request, "orders:write")
        took.append((time.perf_counter_ns() - started) / 1000)
    return percentiles(took)


def _request(token: str) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "method": "POST", "path": "/v1/orders", "headers": headers, "query_string": b""})


# -- fairness --------------------------------------------------------------------------------------


def _open_loop(base_url: str, token: str, channel: str, rate: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_drive(base_url, token, channel, rate, seconds)))


async def _drive(base_url: str, token: str, channel: str, rate: float, seconds: float) -> list[tuple[int, float]]:
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as http:
        start = time.perf_counter() + 0.2
        count = int(rate * seconds)

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body = {
                "channel_id": channel,
                "external_id": f"{channel}-{i}",
                "lines": [{"sku": SKUS[i % len(SKUS)], "quantity": 1}],
                "ship_to": {"postal_code": "10001", "country": "US"},
            }
            try:
                status = (await http.post("/v1/orders", json=body)).status_code
            except httpx.HTTPError:
                status = 0
            results.append((status, (time.perf_counter() - due) * 1000))

        await asyncio.gather(*(one(i) for i in range(count)))
    return results


def _phase(server: ServerProcess, loads: list[tuple[str, str, float]], seconds: float) -> list[list[tuple[int, float]]]:
    ctx = multiprocessing.get_context("spawn")
    queues = [ctx.Queue() for _ in loads]
    procs = [
        ctx.Process(target=_open_loop, args=(server.base_url, token, channel, rate, seconds, q))
        for (token, channel, rate), q in zip(loads, queues, strict=True)
    ]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 120) for q in queues]
    for p in procs:
        p.join()
    return results


def fairness(work: Path, seconds: float, calm_rate: float, burst_limit: int) -> dict[str, Any]:
    url = f"sqlite:///{work / 'fairness.db'}"
    with ServerProcess(url, work / "server.log", workers=2) as server:
        assert server.credentials is not None
        with Crossdock(server.base_url, *server.credentials) as admin:
            admin.put_node("dc", {"type": "warehouse", "name": "DC", "postal_code": "07001", "country": "US"})
            for channel in ("calm", "burst"):
                admin.put_channel(channel, {"type": "custom", "name": channel, "node_ids": ["dc"]})
            for sku in SKUS:
                admin.put_sku(sku, {"name": sku, "weight_grams": 100})
            adjustments = [{"sku": s, "node_id": "dc", "delta": 1_000_000, "reason": "receipt"} for s in SKUS]
            admin.adjust_inventory(adjustments)
        settings = Settings(database_url=url)
        calm, _ = create_client(url, "calm", "orders:write", "calm", UNLIMITED)
        burst, _ = create_client(url, "burst", "orders:write", "burst", {"orders:write": f"{burst_limit}/second"})
        calm_token = mint_token(url, calm.client_id, settings)
        burst_token = mint_token(url, burst.client_id, settings)
        (alone,) = _phase(server, [(calm_token, "calm", calm_rate)], seconds)
        during, flood = _phase(
            server, [(calm_token, "calm", calm_rate), (burst_token, "burst", 10 * burst_limit)], seconds
        )
    # The calm client's external ids repeat in the second phase: those orders are answered 200.
    calm_alone, calm_during = (percentiles([ms for s, ms in r if s in (200, 201)]) for r in (alone, during))
    accepted = [ms for s, ms in flood if s in (200, 201)]
    refused = [ms for s, ms in flood if s == 429]
    return {
        "seconds": seconds,
        "calm_rate": calm_rate,
        "burst_limit": burst_limit,
        "burst_rate": 10 * burst_limit,
        "calm_alone_ms": calm_alone,
        "calm_during_burst_ms": calm_during,
        "calm_errors": sum(1 for s, _ in alone + during if s not in (200, 201)),
        "p99_ratio": round(calm_during["p99"] / calm_alone["p99"], 3) if calm_alone["p99"] else None,
        "burst_accepted_per_s": round(len(accepted) / seconds, 1),
        "burst_refused_429": len(refused),
        "burst_refused_ms": percentiles(refused),
        "burst_other": sum(1 for s, _ in flood if s not in (200, 201, 429)),
    }


def run(seconds: float = 15, calm_rate: float = 200, burst_limit: int = 100) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crossdock-bench-") as tmp:
        work = Path(tmp)
        return {
            "overhead": overhead(work),
            "fairness": fairness(work, seconds, calm_rate, burst_limit),
        }


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    hot, cold = results["overhead"]["verified_token_us"], results["overhead"]["new_token_us"]
    f = results["fairness"]

    def line(p: dict[str, float]) -> str:
        return f"{p['p50']} / {p['p90']} / {p['p99']}"

    return (
        "crossdock bench auth (token, client, scope, rate limit; a burst beside a calm client)",
        [
            ("door per request, token seen before p50 / p90 / p99 (us)", line(hot)),
            ("door per request, new token p50 / p90 / p99 (us)", line(cold)),
            (f"calm client alone, {f['calm_rate']:.0f} orders/s p50 / p90 / p99 (ms)", line(f["calm_alone_ms"])),
            (
                f"calm client during a burst of {f['burst_rate']}/s (limit {f['burst_limit']}/s) (ms)",
                line(f["calm_during_burst_ms"]),
            ),
            ("calm p99 during / alone", str(f["p99_ratio"])),
            ("burst: accepted per s, refused 429", f"{f['burst_accepted_per_s']}, {f['burst_refused_429']:,}"),
            ("burst: 429 answer p50 / p90 / p99 (ms)", line(f["burst_refused_ms"])),
        ],
    )
