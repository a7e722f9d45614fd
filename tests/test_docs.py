"""The reference pages at /docs: served whole from the package (no other host), every event type with a
valid example CloudEvent, and every example of the OpenAPI document valid against its schema."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from crossdock.api.app import create_app
from crossdock.api.docs import swagger_ui_document
from crossdock.config import Settings
from crossdock.events.catalog import CATALOG

OPENAPI = "urn:crossdock:openapi"
ASYNCAPI = "urn:crossdock:asyncapi"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp_path = tmp_path_factory.mktemp("docs")
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db"))) as client:
        yield client


def _urls(page: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", page, re.I)]


def _external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme or parts.netloc) or url.startswith("//")


def test_docs_page_loads_nothing_from_another_host(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    urls = _urls(r.text)
    assert urls, "the page references no asset"
    assert [u for u in urls if _external(u)] == []
    assert not re.search(r"https?://", r.text), "an absolute URL on the page"
    assert 'persistAuthorization": false' in r.text
    assert "/docs/oauth2-redirect" in r.text


def test_every_asset_of_the_docs_page_is_served(client: TestClient) -> None:
    page = client.get("/docs").text
    assets = [u for u in _urls(page) if u.startswith("/docs/static/")]
    assert {Path(u).suffix for u in assets} >= {".js", ".css"}
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].split(";")[0] == CONTENT_TYPES[Path(url).suffix], url
        assert r.content
    assert client.get("/docs/static/index.html").status_code == 404  # only what the page needs
    assert client.get("/docs/static/..%2Fdocs.py").status_code == 404
    spec_url = re.search(r"url: '([^']+)'", page)
    assert spec_url is not None
    assert client.get(spec_url[1]).status_code == 200
    redirect = client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "text/html" in redirect.headers["content-type"]


def test_swagger_ui_gets_the_openapi_document_in_its_dialect(client: TestClient) -> None:
    original = client.get("/openapi.json").json()
    shown = client.get("/docs/openapi-3.0.json").json()
    assert shown == swagger_ui_document(original)
    assert shown["openapi"].startswith("3.0.")
    assert shown["paths"].keys() == original["paths"].keys()
    assert shown["components"]["schemas"].keys() == original["components"]["schemas"].keys()
    text = json.dumps(shown)
    assert '"const"' not in text
    assert '{"type": "null"}' not in text
    order_in = shown["components"]["schemas"]["OrderIn"]
    assert order_in["example"] == original["components"]["schemas"]["OrderIn"]["examples"][0]


def test_reference_pages_are_public_and_not_in_the_api_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert not [p for p in document["paths"] if p.startswith("/docs")]
    for path in ("/docs", "/docs/events", "/openapi.json", "/asyncapi.json"):
        assert client.get(path).status_code == 200, path
    description = document["info"]["description"]
    for link in ("/docs/events", "/openapi.json", "/asyncapi.json"):
        assert f"]({link})" in description
    assert client.get("/redoc").status_code == 404


# -- the events page -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events_page(client: TestClient) -> str:
    r = client.get("/docs/events")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def _sections(page: str) -> dict[str, str]:
    found = re.findall(r'<section class="event" id="([^"]+)">(.*?)</section>', page, re.S)
    return dict(found)


def _examples(page: str) -> dict[str, Any]:
    found = re.findall(r'<pre class="example" data-type="([^"]+)"><code>(.*?)</code></pre>', page, re.S)
    return {kind: json.loads(html.unescape(text)) for kind, text in found}


def test_events_page_has_no_script_and_no_asset_from_another_host(events_page: str) -> None:
    assert "<script" not in events_page.lower()
    assert not re.search(r"""<(?:link|img|iframe)\b[^>]*(?:src|href)=["'](?:https?:)?//""", events_page, re.I)
    assert 'href="/docs"' in events_page
    assert 'href="/asyncapi.json"' in events_page


def test_events_page_lists_every_event_type(events_page: str) -> None:
    sections = _sections(events_page)
    assert set(sections) == set(CATALOG)
    for type_, spec in CATALOG.items():
        section = sections[type_]
        assert html.escape(spec.title, quote=True) in section
        assert f"crossdock.{spec.aggregate}.{spec.what}.{{subject}}" in section  # the NATS subject
        for field in spec.data["properties"]:
            assert f"<code>{field}</code>" in section, (type_, field)


def test_every_event_example_is_a_valid_cloudevent_of_its_type(client: TestClient, events_page: str) -> None:
    asyncapi = client.get("/asyncapi.json").json()
    registry: Registry[Any] = Registry().with_resource(ASYNCAPI, Resource(asyncapi, DRAFT7))
    examples = _examples(events_page)
    assert set(examples) == set(CATALOG)
    for type_, event in examples.items():
        spec = CATALOG[type_]
        for attribute in ("specversion", "id", "source", "type"):  # required by CloudEvents 1.0
            assert isinstance(event.get(attribute), str)
            assert event[attribute]
        assert event["specversion"] == "1.0"
        assert event["type"] == type_
        assert event["subject"] == event["data"][spec.subject]
        message = HTTPMessage({"content-type": "application/cloudevents+json"}, json.dumps(event).encode())
        parsed = from_http(message, JSONFormat())
        assert parsed.get_specversion() == "1.0"
        assert (parsed.get_id(), parsed.get_type(), parsed.get_subject()) == (event["id"], type_, event["subject"])
        assert parsed.get_source() == f"urn:crossdock:{spec.aggregate}"
        assert parsed.get_extension("sequence") == event["sequence"]
        assert parsed.get_data() == event["data"]
        schema = {"$ref": f"{ASYNCAPI}#/components/schemas/{spec.name}"}
        errors = list(Draft7Validator(schema, registry=registry, format_checker=FormatChecker()).iter_errors(event))
        assert not errors, (type_, [e.message for e in errors])


# -- examples of the OpenAPI document -----------------------------------------------------------------


def _pointer(path: tuple[str, ...]) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)


def _examples_in(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(the path of the schema an example is for, the example) for every example of the document."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _examples_in(item, (*path, str(i)))
        return
    if not isinstance(node, dict):
        return
    in_schema = "schema" in path or path[:2] == ("components", "schemas")
    examples = node.get("examples")
    if in_schema and isinstance(examples, list):  # a schema's examples
        for value in examples:
            yield path, value
    if not in_schema and "schema" in node:  # a media type's or a parameter's
        if "example" in node:
            yield (*path, "schema"), node["example"]
        if isinstance(examples, dict):
            for example in examples.values():
                if "value" in example:
                    yield (*path, "schema"), example["value"]
    for key, value in node.items():
        if key not in ("examples", "example"):
            yield from _examples_in(value, (*path, key))


def test_every_openapi_example_is_valid_against_its_schema(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    registry: Registry[Any] = Registry().with_resource(OPENAPI, Resource(document, DRAFT202012))
    found = list(_examples_in(document))
    schemas = {path[2] for path, _ in found if path[:2] == ("components", "schemas")}
    assert {"OrderIn", "ReservationIn", "AdjustmentsIn", "EndpointIn", "OrderOut", "InventoryOut"} <= schemas
    for path, value in found:
        schema = {"$ref": f"{OPENAPI}#/{_pointer(path)}"}
        validator = Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (_pointer(path), value, errors)


def test_main_request_bodies_carry_an_example(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    order = schemas["OrderIn"]["examples"][0]
    assert order["channel_id"] == "shopify-us"
    assert order["lines"][0]["sku"] == "TEE-BLK-M"
    assert order["ship_to"]["postal_code"]
    for name in ("OrderIn", "ReservationIn", "AdjustmentsIn", "EndpointIn", "ShipmentIn", "CommitIn"):
        assert schemas[name].get("examples"), name
