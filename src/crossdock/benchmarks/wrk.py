"""Load from `wrk` (Debian's package): far more requests per core than a Python client. Its Lua
script must print one line `WRKJSON {...}` from `done()`; that line is the result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# A `done()` that reports the summary and latency percentiles (in microseconds) as one JSON line.
DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"p999_us":%d,"max_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,'
    .. '"errors_timeout":%d%s}\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    extra and extra() or ""))
end
"""


def command(url: str, script: Path, seconds: float, connections: int, threads: int) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s", "-s", str(script), url]


def parse(output: str) -> dict[str, Any]:
    line = next(ln for ln in output.splitlines() if ln.startswith("WRKJSON "))
    figures: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return figures


def run(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        command(url, script, seconds, connections, threads), capture_output=True, text=True, check=True
    )
    return parse(out.stdout)
