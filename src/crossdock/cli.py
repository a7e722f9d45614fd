"""The `crossdock` command."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from crossdock.config import Settings

app = typer.Typer(help="Crossdock: an omnichannel logistics hub.", no_args_is_help=True, add_completion=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (CROSSDOCK_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (CROSSDOCK_PORT)")] = None,
) -> None:
    """Run the API (and, in embedded mode, the workers beside it)."""
    import uvicorn

    from crossdock.api.app import create_app
    from crossdock.logs import configure

    settings = Settings()
    configure(settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,
        log_level="warning",
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from crossdock.store.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url)
    typer.echo(f"schema up to date: {settings.database_url}")


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


if __name__ == "__main__":
    app()
