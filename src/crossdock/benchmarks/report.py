"""Benchmark results: a table for people, a JSON file for comparison over time."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max, rounded to two decimals (NaN when there is nothing to measure)."""
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2) if ordered else float("nan")

    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": round(ordered[-1], 2) if ordered else float("nan")}


def save(name: str, results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def table(title: str, rows: list[tuple[str, str]], console: Console) -> None:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
