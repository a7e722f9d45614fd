"""`crossdock bench auth`: what authentication and rate limiting cost per request, and whether one
client's burst leaves the others alone.

1. Overhead: the door every request passes (`Guard.admit`: bearer token, client state, scope, one
   rate-limit hit), timed in-process on the real objects over a real SQLite database, for a token
   already verified once (the common case) and for tokens seen for the first time (signature check).
2. Fairness: a real server (`crossdock serve`, one API process); client "calm" places orders at a
   steady rate while client "burst" sends ten times its own limit, each from its own paced wrk. The
   calm client's p99 with and without the burst beside it.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from starlette.requests import Request

from crossdock.api.app import guard_for
from crossdock.api.auth import Guard
from crossdock.api.ratelimit import RateLimiter
from crossdock.benchmarks import wrk
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

# Orders from one channel, paced: each connection waits `delay` ms between requests, so the rate is
# about connections x 1000 / delay. Answers are counted by kind across wrk's threads.
LUA = r"""
local n, tid, threads = 0, 0, {}
ok, limited, other = 0, 0, 0
function setup(thread) tid = tid + 1; thread:set("tid", tid); table.insert(threads, thread) end
function request()
  n = n + 1
  local body = string.format('{"channel_id":"%(channel)s","external_id":"%(run)s-%%d-%%d","lines":[{"sku":"AUTH-%%03d",'
    .. '"quantity":1}],"ship_to":{"postal_code":"10001","country":"US"}}', tid, n, n %% 100)
  return wrk.format("POST", "/v1/orders", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %(token)s"}, body)
end
function delay() return %(delay_ms)d end
function response(status, headers, body)
  if status == 200 or status == 201 then ok = ok + 1 elseif status == 429 then limited = limited + 1
  else other = other + 1 end
end
function extra()
  local o, l, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); l = l + t:get("limited"); x = x + t:get("other") end
  return string.format(',"ok":%%d,"limited":%%d,"other":%%d', o, l, x)
end
""" + wrk.DONE.replace("%", "%%")


@dataclass(frozen=True, slots=True)
class Load:
    channel: str
    token: str
    rate: int  # requests per second, roughly
    connections: int

    def script(self, work: Path, run: str) -> Path:
        path = work / f"{self.channel}-{run}.lua"
        delay = round(1000 * self.connections / self.rate)
        path.write_text(LUA % {"channel": self.channel, "token": self.token, "run": run, "delay_ms": delay})
        return path


def _phase(base_url: str, loads: list[Load], seconds: float, work: Path, run: str) -> list[dict[str, Any]]:
    """The loads at once, each from its own wrk process."""
    procs = [
        subprocess.Popen(
            wrk.command(base_url, load.script(work, run), seconds, load.connections, 1),
            stdout=subprocess.PIPE,
            text=True,
        )
        for load in loads
    ]
    return [wrk.parse(p.communicate()[0]) for p in procs]


def _latency(figures: dict[str, Any]) -> dict[str, float]:
    return {p: round(figures[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p99", "max")}


def fairness(work: Path, seconds: float, calm_rate: int, burst_limit: int) -> dict[str, Any]:
    url = f"sqlite:///{work / 'fairness.db'}"
    with ServerProcess(url, work / "server.log") as server:  # one API process: its limits are the limits
        assert server.credentials is not None
        with Crossdock(server.base_url, *server.credentials) as admin:
            admin.put_node("dc", {"type": "warehouse", "name": "DC", "postal_code": "07001", "country": "US"})
            for channel in ("calm", "burst"):
                admin.put_channel(channel, {"type": "custom", "name": channel, "node_ids": ["dc"]})
            for sku in SKUS:
                admin.put_sku(sku, {"name": sku, "weight_grams": 100})
            admin.adjust_inventory([{"sku": s, "node_id": "dc", "delta": 10**8, "reason": "receipt"} for s in SKUS])
        settings = Settings(database_url=url)
        calm_client, _ = create_client(url, "calm", "orders:write", "calm", UNLIMITED)
        burst_client, _ = create_client(
            url, "burst", "orders:write", "burst", {"orders:write": f"{burst_limit}/second"}
        )
        calm = Load("calm", mint_token(url, calm_client.client_id, settings), calm_rate, 4)
        burst = Load("burst", mint_token(url, burst_client.client_id, settings), 10 * burst_limit, 10)
        _phase(server.base_url, [calm], 3, work, "warm")
        (alone,) = _phase(server.base_url, [calm], seconds, work, "alone")
        during, flood = _phase(server.base_url, [calm, burst], seconds, work, "burst")
    return {
        "seconds": seconds,
        "burst_limit_per_s": burst_limit,
        "calm": {
            "alone_per_s": round(alone["requests"] / seconds),
            "alone_ms": _latency(alone),
            "during_burst_per_s": round(during["requests"] / seconds),
            "during_burst_ms": _latency(during),
            "not_accepted": alone["limited"] + alone["other"] + during["limited"] + during["other"],
        },
        "p99_ratio": round(during["p99_us"] / alone["p99_us"], 3),
        "burst": {
            "sent_per_s": round(flood["requests"] / seconds),
            "accepted_per_s": round(flood["ok"] / seconds, 1),
            "refused_429": flood["limited"],
            "other": flood["other"],
            "latency_ms": _latency(flood),
        },
    }


def run(seconds: float = 15, calm_rate: int = 200, burst_limit: int = 100) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crossdock-bench-") as tmp:
        work = Path(tmp)
        return {
            "overhead": overhead(work),
            "fairness": fairness(work, seconds, calm_rate, burst_limit),
        }


def summary(results: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    hot, cold = results["overhead"]["verified_token_us"], results["overhead"]["new_token_us"]
    f = results["fairness"]
    calm, burst = f["calm"], f["burst"]

    def line(p: dict[str, float]) -> str:
        return f"{p['p50']} / {p['p90']} / {p['p99']}"

    return (
        "crossdock bench auth (token, client, scope, rate limit; a burst beside a calm client)",
        [
            ("door per request, token seen before p50 / p90 / p99 (us)", line(hot)),
            ("door per request, new token p50 / p90 / p99 (us)", line(cold)),
            (f"calm client alone, {calm['alone_per_s']} orders/s p50 / p90 / p99 (ms)", line(calm["alone_ms"])),
            (
                f"calm client beside a burst of {burst['sent_per_s']}/s (limit {f['burst_limit_per_s']}/s) (ms)",
                line(calm["during_burst_ms"]),
            ),
            ("calm p99 beside the burst / alone", str(f["p99_ratio"])),
            ("calm requests not accepted", str(calm["not_accepted"])),
            (
                "burst: accepted per s, refused 429, other",
                f"{burst['accepted_per_s']}, {burst['refused_429']:,}, {burst['other']}",
            ),
            ("burst answers p50 / p90 / p99 (ms)", line(burst["latency_ms"])),
        ],
    )
