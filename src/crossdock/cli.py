"""The `crossdock` command."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from crossdock.config import Settings

app = typer.Typer(help="Crossdock: an omnichannel logistics hub.", no_args_is_help=True, add_completion=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (CROSSDOCK_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CROSSDOCK_PORT)")] = None,
    workers: Annotated[
        int, typer.Option(help="API processes; on SQLite with 2 or more, this process becomes their one writer")
    ] = 1,
) -> None:
    """Run the API (and, in embedded mode, the workers beside it)."""
    import os
    import tempfile

    import uvicorn

    from crossdock.events.runtime import start_relay
    from crossdock.logs import configure
    from crossdock.store.database import open_database
    from crossdock.store.migrate import upgrade
    from crossdock.store.writer import WriterServer

    settings = Settings()
    configure(settings.log_format)
    upgrade(settings.database_url)  # once, before any worker starts

    def run() -> None:
        uvicorn.run(
            "crossdock.api.app:create_app",
            factory=True,
            workers=workers,
            host=host or settings.host,
            port=port or settings.port,
            access_log=False,
            log_level="warning",
        )

    if workers < 2:
        run()
        return
    with tempfile.TemporaryDirectory(prefix="crossdock-") as folder:
        # Several API processes: each writes its metrics to files here and /metrics sums them all
        # (prometheus-client's multiprocess mode). A directory given from outside is kept.
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = os.path.join(folder, "metrics")
            os.mkdir(metrics_dir)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the API processes
        if not settings.database_url.startswith("sqlite"):
            run()
            return
        db = open_database(settings.database_url)
        writer = WriterServer(db, os.path.join(folder, "writer.sock"))
        relay = start_relay(db, settings)  # beside the one writer, which wakes it on commit
        os.environ["CROSSDOCK_WRITER_SOCKET"] = writer.path  # the API processes inherit it
        try:
            run()
        finally:
            if relay:
                relay.stop()
            writer.close()
            db.close()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from crossdock.store.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    typer.echo(f"schema up to date: {settings.database_url}")


clients_app = typer.Typer(help="API clients (OAuth2 client credentials).", no_args_is_help=True)
keys_app = typer.Typer(help="The keys that sign access tokens.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="What the client is, for people")],
    scopes: Annotated[str, typer.Option(help='Space-separated, e.g. "orders:write inventory:read"')],
    channel: Annotated[str | None, typer.Option(help="Bind the client to this channel")] = None,
    rate_limit: Annotated[
        list[str] | None, typer.Option(help='Own limit for a route group, e.g. "orders:write=50/second"')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create an API client; its secret is printed this once (only its hash is stored)."""
    from crossdock.domain.errors import DomainError
    from crossdock.provisioning import create_client

    limits = dict(item.split("=", 1) for item in rate_limit or [] if "=" in item)
    if len(limits) != len(rate_limit or []):
        raise typer.BadParameter("write each --rate-limit as group=limit, e.g. orders:write=50/second")
    try:
        client, secret = create_client(Settings().database_url, name, scopes, channel, limits)
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"client_id": client.client_id, "client_secret": secret, **client.view()}))
    else:
        typer.echo(f"client_id:     {client.client_id}\nclient_secret: {secret}   (shown once: keep it safe)")


@clients_app.command("revoke")
def clients_revoke(client_id: Annotated[str, typer.Argument(help="The client to revoke")]) -> None:
    """Revoke a client: its secret and the tokens it holds are refused from now on."""
    from crossdock.domain.errors import DomainError
    from crossdock.provisioning import revoke_client

    try:
        revoke_client(Settings().database_url, client_id)
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {client_id}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """A new key signs tokens from now on; tokens signed before stay valid until they expire."""
    from crossdock.provisioning import rotate_signing_key

    settings = Settings()
    key = rotate_signing_key(settings.database_url, settings)
    typer.echo(f"signing with {key.kid} from now on")


@app.command()
def reconcile(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Rebuild positions from the movement ledger and report drift (none is expected)."""
    from crossdock.services.queries import reconcile as run
    from crossdock.store.database import open_database
    from crossdock.store.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    db = open_database(settings.database_url, writers=1)
    try:
        drift = db.read(run)
        positions = db.read(lambda uow: len(uow.all_positions()))
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps({"positions": positions, "drift": [asdict(d) for d in drift], "ok": not drift}))
    else:
        typer.echo(f"{positions} positions checked against the ledger: {len(drift)} with drift")
        for d in drift:
            typer.echo(f"  {d.sku} @ {d.node_id}: stored {d.stored} rebuilt {d.rebuilt}")
    raise typer.Exit(1 if drift else 0)


@app.command()
def rebalance(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    propose: Annotated[
        bool, typer.Option("--propose", help="Store the transfers as proposals (and auto-approve per the settings)")
    ] = False,
    sku: Annotated[list[str] | None, typer.Option(help="Only this SKU (repeatable)")] = None,
    node: Annotated[list[str] | None, typer.Option(help="Only between these nodes (repeatable)")] = None,
    lead_time_days: Annotated[float, typer.Option(min=0)] = 3.0,
    review_days: Annotated[float, typer.Option(min=0)] = 7.0,
    shortage_cost: Annotated[float, typer.Option(min=0.01, help="Per unit of demand not met")] = 10.0,
    holding_cost: Annotated[float, typer.Option(min=0.01, help="Per unit left over")] = 0.5,
) -> None:
    """Plan transfers between nodes from the ledger's recent demand and print them (nothing is stored
    unless --propose)."""
    from functools import partial

    from crossdock.domain.errors import DomainError
    from crossdock.services.transfers import PlanRequest, TransferPolicy, plan_transfers, rebalancing, transfer_view
    from crossdock.store.database import open_database
    from crossdock.store.migrate import upgrade

    settings = Settings()
    req = PlanRequest(
        skus=tuple(sku) if sku else None,
        node_ids=tuple(node) if node else None,
        lead_time_days=lead_time_days,
        review_days=review_days,
        shortage_cost=shortage_cost,
        holding_cost=holding_cost,
    )
    policy = TransferPolicy.of(settings)
    upgrade(settings.database_url)
    db = open_database(settings.database_url, writers=1)
    try:
        if propose:
            rows = [transfer_view(t) for t in db.run(partial(plan_transfers, req=req, policy=policy))]
        else:
            _, _, found = db.read(partial(rebalancing, req=req))
            rows = [asdict(m) | {"status": "planned"} for m in found.moves]
    except DomainError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps({"transfers": rows, "stored": propose}))
        return
    gain = sum(r["benefit"] - r["cost"] for r in rows)
    typer.echo(f"{len(rows)} transfers, expected gain {gain:.2f}" + ("" if propose else " (not stored: --propose)"))
    for r in rows:
        typer.echo(
            f"  {r['sku']}: {r['quantity']} {r['from_node_id']} -> {r['to_node_id']}"
            f"  cost {r['cost']:.2f}  benefit {r['benefit']:.2f}  {r['status']}"
        )


@app.command()
def demo(
    orders: Annotated[int, typer.Option(min=1, help="Orders placed during the flash sale")] = 3000,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Concurrent HTTP clients")] = 48,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the server running until Ctrl-C and open its console in a browser")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world and the sale")] = 42,
    scenario: Annotated[
        str,
        typer.Option(
            help="overview: the whole product; flash-sale: event-driven channel sync against a 15-minute batch sync"
        ),
    ] = "overview",
) -> None:
    """The whole product on the embedded default: a synthetic world, a flash sale over HTTP, a summary."""
    if scenario == "flash-sale":
        from rich.console import Console

        from crossdock import flash_sale
        from crossdock.benchmarks import report

        console = Console()
        with console.status("flash sale...") as status:
            results = flash_sale.run(flash_sale.Params(seed=seed), step=status.update)
        title, rows = flash_sale.summary(results)
        report.table(title, rows, console)
        console.print(
            "Oversold: orders a channel took that Crossdock could not allocate when they arrived. Missed: customers"
            " turned away by a storefront showing too few while Crossdock had the stock for that channel."
        )
        clean = all(m["positions_oversold"] == 0 and m["reconciliation_ok"] for m in results["modes"].values())
        raise typer.Exit(0 if clean else 1)
    if scenario != "overview":
        raise typer.BadParameter(f"unknown scenario {scenario!r}; one of overview, flash-sale")
    from crossdock.demo import DemoOptions, run

    raise typer.Exit(run(DemoOptions(orders=orders, concurrency=concurrency, keep=keep, seed=seed)))


BENCHMARKS = ("ingest", "events", "auth", "sync", "flash-sale", "routing", "forecast", "positioning")


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help=f"Scenario: {', '.join(BENCHMARKS)}")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")] = False,
    seconds: Annotated[float, typer.Option(help="Measured load duration")] = 15,
    connections: Annotated[int, typer.Option(help="ingest: concurrent HTTP connections")] = 32,
    workers: Annotated[int, typer.Option(help="API processes of the server under test")] = 2,
    rate: Annotated[
        float | None, typer.Option(help="events: stock change events/s (1000); sync: stock changes/s (500)")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the JSON results go")] = Path("bench/results"),
    m5_submission: Annotated[
        Path | None, typer.Option(help="forecast: score this M5 submission instead of training the pipeline")
    ] = None,
    part: Annotated[str | None, typer.Option(help="forecast: only m5 or only walmart")] = None,
) -> None:
    """Run a benchmark scenario, print its figures and save them as JSON."""
    from rich.console import Console

    from crossdock import flash_sale
    from crossdock.benchmarks import auth, events, ingest, report, routing, sync
    from crossdock.benchmarks import forecast as forecasting
    from crossdock.benchmarks import positioning as positioning_bench

    if name not in BENCHMARKS:
        raise typer.BadParameter(f"unknown scenario {name!r}; one of {', '.join(BENCHMARKS)}")
    console = Console(stderr=as_json)
    scenarios = {
        "ingest": ingest,
        "events": events,
        "auth": auth,
        "sync": sync,
        "flash-sale": flash_sale,
        "forecast": forecasting,
        "positioning": positioning_bench,
    }
    scenario = scenarios.get(name, routing)
    with console.status(f"running benchmark {name}...") as status:
        if name == "flash-sale":  # its own pace: a simulated sale, not --seconds of load
            figures = flash_sale.run(step=status.update)
        elif name == "ingest":
            figures = ingest.run(seconds=seconds, connections=connections, workers=workers)
        elif name == "events":
            figures = events.run(seconds=seconds, rate=rate or 1000, workers=workers)
        elif name == "sync":
            figures = sync.run(seconds=seconds, rate=rate or 500)
        elif name == "forecast":  # in-process, on the real M5 and Walmart files
            if part not in (None, "m5", "walmart"):
                raise typer.BadParameter(f"--part must be m5 or walmart, got {part!r}")
            parts = ("m5", "walmart") if part is None else (part,)
            figures = forecasting.run(submission=m5_submission, step=status.update, parts=parts)
        elif name == "routing":  # in-process: decision latency, then policies replayed on two networks
            figures = routing.run()
        elif name == "positioning":  # in-process: three positioning policies replayed on the real M5 demand
            figures = positioning_bench.run(step=status.update)
        else:
            figures = auth.run(seconds=seconds)
    results = {"scenario": name, "machine": report.machine(), **figures}
    path = report.save(name, results, out)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    title, rows = scenario.summary(results)
    report.table(title, rows, console)
    console.print(f"results: {path}")


forecast_app = typer.Typer(help="Demand forecasts and their accuracy.", no_args_is_help=True)
app.add_typer(forecast_app, name="forecast")


@forecast_app.command("m5")
def forecast_m5(
    sales: Annotated[Path, typer.Option(help="M5 sales in the wide layout (id,item_id,...,d_1,...), .csv or .csv.gz")],
    calendar: Annotated[Path, typer.Option(help="M5 calendar.csv (must cover the 28 days after the history)")],
    out: Annotated[Path, typer.Option(help="Where the submission (id,F1..F28) goes")],
    prices: Annotated[Path | None, typer.Option(help="M5 sell prices (store_id,item_id,wm_yr_wk,sell_price)")] = None,
    train_until: Annotated[
        int | None,
        typer.Option(help="Use only the days up to d_N (later columns are never read); default: every day in the file"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print timings and notes as JSON")] = False,
) -> None:
    """Train on the sales history and write the next 28 days as an M5 submission."""
    import time

    from rich.console import Console

    from crossdock.forecasting import m5_pipeline

    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        for path in (sales, calendar, *([prices] if prices else [])):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found")
        with console.status("loading the M5 files...") as status:
            inputs = m5_pipeline.prepare_inputs(sales, calendar, prices, train_until)
            result = m5_pipeline.forecast(inputs, progress=status.update)
            m5_pipeline.write_submission(result, out)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    seconds = round(time.perf_counter() - started, 1)
    summary = {
        "out": str(out),
        "series": len(result.ids),
        "history": f"d_{inputs.sales.first_day}..d_{inputs.sales.last_day}",
        "seconds": seconds,
        "notes": result.notes,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(f"{len(result.ids):,} series, history {summary['history']}, {seconds} s: {out}")
    for note in result.notes:
        console.print(f"note: {note}")


@forecast_app.command("file")
def forecast_file(
    input_path: Annotated[
        Path, typer.Option("--input", help="Long-format history: unique_id,ds,y[,stockout][,exogenous...]")
    ],
    freq: Annotated[str, typer.Option(help="D (daily) or W (weekly)")],
    horizon: Annotated[int, typer.Option(min=1, help="Periods to forecast")],
    out: Annotated[Path, typer.Option(help="Where unique_id,ds,yhat and the quantile columns go (.csv or .parquet)")],
    future: Annotated[
        Path | None,
        typer.Option(help="Exogenous values over the horizon (unique_id,ds,<columns>), if the history has any"),
    ] = None,
) -> None:
    """Forecast any long-format history with the model each series' backtest chose, plus quantiles."""
    import pandas as pd
    from rich.console import Console

    from crossdock.forecasting import history, selection

    console = Console(stderr=True)
    try:
        if freq not in history.FREQS:
            raise ValueError(f"--freq must be D or W, got {freq!r}")
        loaded = history.load_long(input_path, freq)
        ahead = None
        if future is not None:
            ahead = pd.read_parquet(future) if future.suffix == ".parquet" else pd.read_csv(future)
            ahead["ds"] = pd.to_datetime(ahead["ds"])
            ahead["unique_id"] = ahead["unique_id"].astype(str)
        with console.status(f"backtesting and forecasting {loaded.n_series:,} series..."):
            result = selection.forecast(loaded, horizon, future=ahead)
    except (FileNotFoundError, ValueError) as exc:  # HistoryError is a ValueError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    frame = result.forecasts.drop(columns="model")
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False, date_format="%Y-%m-%d", float_format="%.4f")
    chosen = ", ".join(f"{model} {count}" for model, count in sorted(result.chosen.items(), key=lambda kv: -kv[1]))
    console.print(f"{loaded.n_series:,} series, {horizon} periods ahead: {out}")
    console.print(f"models chosen by the backtest ({result.backtest_horizon} periods x 2 origins): {chosen}")


@forecast_app.command("run")
def forecast_run(
    history_days: Annotated[int, typer.Option(min=14, help="Days of the ledger's demand history to learn from")] = 365,
    horizon: Annotated[int, typer.Option(min=1, max=366, help="Days ahead to forecast")] = 28,
    sku: Annotated[list[str] | None, typer.Option(help="Only this SKU (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Forecast demand per SKU and node from the configured database's ledger and store it (what
    `GET /v1/forecasts/{sku}` shows and transfer plans use); the server also does this by itself every
    CROSSDOCK_FORECAST_SECONDS."""
    from rich.console import Console

    from crossdock.services.forecasts import ForecastSettings, run_forecast, run_view
    from crossdock.store.database import open_database
    from crossdock.store.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    db = open_database(settings.database_url, writers=1)
    console = Console(stderr=as_json)
    try:
        with console.status("forecasting demand per SKU and node..."):
            run = run_forecast(db, ForecastSettings(history_days, horizon), sku or None)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps({"run": run_view(run)}))
    elif run.series == 0:
        console.print(f"nothing sold in the last {history_days} days: no forecast made")
    else:
        view = run_view(run)
        console.print(f"forecast {view['run_id']}: {run.series} series, {horizon} days ahead, in {view['seconds']} s")
        for model, n in sorted(run.summary["models"].items(), key=lambda kv: -kv[1]):
            rmsse = run.summary["backtest_rmsse"].get(model)
            console.print(f"  {model}: {n} series" + (f" (backtest RMSSE {rmsse})" if rmsse is not None else ""))


@forecast_app.command("score")
def forecast_score(
    m5_dir: Annotated[Path, typer.Option("--m5-dir", help="Folder with the M5 sales, calendar and sell prices")],
    submission: Annotated[Path, typer.Option(help="M5 submission: .csv, .csv.gz or a .zip holding one csv")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Score an M5 submission: WRMSSE on d_1942..d_1969, scales and weights from d_1..d_1941 only."""
    from rich.console import Console
    from rich.table import Table

    from crossdock.forecasting import m5
    from crossdock.forecasting.metrics import LEVELS

    console = Console(stderr=as_json)
    try:
        if not submission.is_file():
            raise FileNotFoundError(f"{submission} not found")
        with console.status("loading the M5 data..."):
            prepared = m5.prepare(m5_dir)
        score = m5.score_submission(prepared, submission)
    except (FileNotFoundError, ValueError) as exc:  # M5FormatError is a ValueError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        levels = {lv.name: {"description": lv.description, "wrmsse": score.per_level[lv.name]} for lv in LEVELS}
        result = {"submission": str(submission), "wrmsse": score.total, "levels": levels, "notes": prepared.notes}
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"M5 accuracy: {submission.name}", title_justify="left")
    table.add_column("level", style="bold")
    table.add_column("series")
    table.add_column("count", justify="right")
    table.add_column("WRMSSE", justify="right")
    for level, grouping in zip(LEVELS, prepared.evaluation.hierarchy.groupings, strict=True):
        table.add_row(level.name, level.description, str(len(grouping.labels)), f"{score.per_level[level.name]:.5f}")
    series = str(prepared.evaluation.hierarchy.n_series)
    table.add_row("all", "mean of the 12 levels", series, f"{score.total:.5f}", style="bold")
    console.print(table)
    for note in prepared.notes:
        console.print(f"note: {note}")


@app.command()
def asyncapi(
    out: Annotated[Path | None, typer.Option(help="Write the document to this file instead of printing it")] = None,
) -> None:
    """Print (or write) the AsyncAPI 3.0 document of Crossdock's events."""
    from crossdock.events.asyncapi import document_text

    if out is None:
        typer.echo(document_text(), nl=False)
    else:
        out.write_text(document_text(), encoding="utf-8")


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write the document to this file instead of printing it")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Compare with the snapshot (--out, default docs/openapi.json) instead")
    ] = False,
) -> None:
    """Print (or write) the OpenAPI document; --check fails on breaking changes or a stale snapshot."""
    from crossdock.api.compat import SNAPSHOT, breaking_changes, current_document, render

    document = current_document()
    text = render(document)
    if check:
        path = out or SNAPSHOT
        snapshot = json.loads(path.read_text(encoding="utf-8"))
        if changes := breaking_changes(snapshot, document):
            typer.echo(f"breaking changes against {path}:", err=True)
            for change in changes:
                typer.echo(f"  - {change}", err=True)
            raise typer.Exit(1)
        if render(snapshot) != text:
            typer.echo(f"{path} is out of date (additive changes): run `crossdock openapi --out {path}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} matches the API")
    elif out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    app()
