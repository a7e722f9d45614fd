"""The OpenAPI snapshot and the breaking-change check (docs/versioning.md)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from starlette.responses import Response
from typer.testing import CliRunner

from crossdock.api.app import create_app
from crossdock.api.compat import breaking_changes, current_document, render
from crossdock.api.deprecation import deprecated
from crossdock.api.writes import json_response
from crossdock.cli import app as cli
from crossdock.config import Settings
from crossdock.domain.errors import NotFound

SNAPSHOT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return current_document()


def changed(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)


def test_committed_snapshot_is_compatible_and_current(document: dict[str, Any]) -> None:
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    changes = breaking_changes(snapshot, document)
    assert not changes, "breaking changes against docs/openapi.json (see docs/versioning.md):\n" + "\n".join(
        f"  - {c}" for c in changes
    )
    assert SNAPSHOT.read_text(encoding="utf-8") == render(document), (
        "the API changed compatibly but docs/openapi.json is stale: run `crossdock openapi --out docs/openapi.json`"
    )


def test_identical_documents_have_no_breaking_change(document: dict[str, Any]) -> None:
    assert breaking_changes(document, changed(document)) == []


def test_removed_response_field_is_breaking(document: dict[str, Any]) -> None:
    new = changed(document)
    del new["components"]["schemas"]["InventoryOut"]["properties"]["channels"]
    changes = breaking_changes(document, new)
    assert "GET /v1/inventory/{sku} 200 response: field `channels` removed" in changes


def test_removed_endpoint_and_operation_are_breaking(document: dict[str, Any]) -> None:
    new = changed(document)
    del new["paths"]["/v1/nodes"]
    del new["paths"]["/v1/orders/{order_id}"]["get"]
    changes = breaking_changes(document, new)
    assert "/v1/nodes: path removed" in changes
    assert "GET /v1/orders/{order_id}: operation removed" in changes


def test_additions_are_not_breaking(document: dict[str, Any]) -> None:
    new = changed(document)
    new["paths"]["/v1/widgets"] = {"get": {"responses": {"200": {"description": "OK"}}}}
    new["components"]["schemas"]["InventoryOut"]["properties"]["updated_at"] = {"type": "string"}
    new["components"]["schemas"]["SkuIn"]["properties"]["color"] = {"type": "string"}
    orders = new["paths"]["/v1/orders"]["get"]
    orders["parameters"].append({"name": "since", "in": "query", "required": False, "schema": {"type": "string"}})
    assert breaking_changes(document, new) == []


def test_narrowed_requests_are_breaking(document: dict[str, Any]) -> None:
    new = changed(document)
    schemas = new["components"]["schemas"]
    schemas["SkuIn"]["required"].append("weight_grams")  # an optional field became required
    schemas["SkuIn"]["properties"]["barcode"] = {"type": "string"}
    schemas["SkuIn"]["required"].append("barcode")  # a new required field
    schemas["NodeIn"]["properties"]["type"]["enum"].remove("3pl")
    schemas["NodeIn"]["properties"]["name"]["maxLength"] = 50
    schemas["SkuIn"]["properties"]["name"]["type"] = "integer"
    orders = new["paths"]["/v1/orders"]["get"]
    orders["parameters"].append({"name": "since", "in": "query", "required": True, "schema": {"type": "string"}})
    changes = "\n".join(breaking_changes(document, new))
    for expected in (
        "PUT /v1/skus/{sku} request: field `weight_grams` is now required",
        "PUT /v1/skus/{sku} request: field `barcode` is new and required",
        "PUT /v1/nodes/{node_id} request.type: enum value(s) ['3pl'] removed",
        "PUT /v1/nodes/{node_id} request.name: maxLength narrowed to 50",
        "PUT /v1/skus/{sku} request.name: type changed from string to integer",
        "GET /v1/orders: query parameter `since` is new and required",
    ):
        assert expected in changes


def test_removed_success_status_and_changed_response_type_are_breaking(document: dict[str, Any]) -> None:
    new = changed(document)
    del new["paths"]["/v1/orders"]["post"]["responses"]["200"]
    new["components"]["schemas"]["NodePositionOut"]["properties"]["on_hand"]["type"] = "string"
    changes = breaking_changes(document, new)
    assert "POST /v1/orders: success status 200 removed" in changes
    assert "GET /v1/inventory/{sku} 200 response.nodes[].on_hand: type changed from integer to string" in changes


def test_cli_check(tmp_path: Path, document: dict[str, Any]) -> None:
    runner = CliRunner()
    snapshot = tmp_path / "openapi.json"
    assert runner.invoke(cli, ["openapi", "--out", str(snapshot)]).exit_code == 0
    assert snapshot.read_text(encoding="utf-8") == render(document)
    assert runner.invoke(cli, ["openapi", "--out", str(snapshot), "--check"]).exit_code == 0

    older = changed(document)
    del older["paths"]["/v1/nodes"]  # the app has gained an endpoint since this snapshot: additive
    snapshot.write_text(render(older), encoding="utf-8")
    result = runner.invoke(cli, ["openapi", "--out", str(snapshot), "--check"])
    assert result.exit_code == 1 and "out of date" in result.output

    newer = changed(document)
    newer["paths"]["/v1/gone"] = {"get": {"responses": {"200": {"description": "OK"}}}}
    snapshot.write_text(render(newer), encoding="utf-8")
    result = runner.invoke(cli, ["openapi", "--out", str(snapshot), "--check"])
    assert result.exit_code == 1 and "/v1/gone: path removed" in result.output


def test_deprecated_route_carries_headers_and_is_marked(tmp_path: Path) -> None:
    since = datetime(2026, 12, 1, tzinfo=UTC)
    sunset = datetime(2027, 12, 1, tzinfo=UTC)
    router = APIRouter()

    @router.get("/v1/old-thing/{key}", **deprecated(since=since, sunset=sunset, link="https://crossdock.dev/changes"))
    async def old_thing(request: Request, key: str) -> Response:
        if key == "missing":
            raise NotFound("no such thing")
        return json_response({"key": key})

    @router.get("/v1/new-thing")
    async def new_thing() -> Response:
        return json_response({})

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'crossdock.db'}", relay=False))
    app.include_router(router)
    operations = app.openapi()["paths"]
    assert operations["/v1/old-thing/{key}"]["get"]["deprecated"] is True
    assert operations["/v1/old-thing/{key}"]["get"]["x-sunset"] == "2027-12-01T00:00:00+00:00"
    assert "deprecated" not in operations["/v1/new-thing"]["get"]

    with TestClient(app) as http:
        for path, status in (("/v1/old-thing/a", 200), ("/v1/old-thing/missing", 404)):
            r = http.get(path)
            assert r.status_code == status
            assert r.headers["deprecation"] == f"@{int(since.timestamp())}"
            assert r.headers["sunset"] == "Wed, 01 Dec 2027 00:00:00 GMT"
            assert r.headers["link"] == '<https://crossdock.dev/changes>; rel="deprecation sunset"; type="text/html"'
        fresh = http.get("/v1/new-thing")
        assert "deprecation" not in fresh.headers and "sunset" not in fresh.headers
