"""The AsyncAPI document: current in the repository, valid AsyncAPI 3.0, and built from the catalog.

No validator of the official AsyncAPI JSON Schema is on PyPI (it ships on npm and as a Go module),
so the document is checked with the `asyncapi3` object model (field names, types, required fields,
extension names) and, below, with the rules a schema cannot express: every `$ref` resolves, every
operation's channel and messages exist, and channel addresses name exactly their parameters.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
from typer.testing import CliRunner

from crossdock import __version__
from crossdock.cli import app
from crossdock.domain.events import EVENT_TYPES
from crossdock.events.asyncapi import build, document_text
from crossdock.events.catalog import CATALOG

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
WEBHOOK_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}


def refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    """Every (place, `$ref` value) in a document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield where, node["$ref"]
        for key, value in node.items():
            yield from refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{where}/{i}")


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and token in node, f"{ref} does not resolve (at {token!r})"
        node = node[token]
    return node


def follow(document: dict[str, Any], ref: str) -> Any:
    """What a chain of references ends at (an operation's message refers to its channel's, which
    refers to a component)."""
    node = resolve(document, ref)
    while isinstance(node, dict) and set(node) == {"$ref"}:
        node = resolve(document, node["$ref"])
    return node


def test_the_repository_copy_is_the_generated_document() -> None:
    assert DOCS.read_text(encoding="utf-8") == document_text(), "run `crossdock asyncapi --out docs/asyncapi.json`"


def test_the_command_prints_and_writes_the_document(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["asyncapi"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == document_text()
    target = tmp_path / "asyncapi.json"
    written = runner.invoke(app, ["asyncapi", "--out", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == document_text()


def test_the_document_is_valid_asyncapi_3() -> None:
    document = build()
    with warnings.catch_warnings():  # the package's models shadow a BaseModel attribute, harmlessly
        warnings.simplefilter("ignore", UserWarning)
        from asyncapi3 import AsyncAPI3

        AsyncAPI3.model_validate(document)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Crossdock events"
    assert document["info"]["version"] == __version__
    for word in ("at least once", "sequence", "retention", "id"):
        assert word in document["info"]["description"].lower(), word

    for where, ref in refs(document):
        assert resolve(document, ref) is not None, where

    channels, operations = document["channels"], document["operations"]
    for name, channel in channels.items():
        address = channel.get("address")
        named = set(re.findall(r"{([^}]+)}", address or ""))
        assert named == set(channel.get("parameters", {})), f"{name}: address {address} and parameters differ"
        for server in channel.get("servers", []):
            assert server["$ref"].startswith("#/servers/"), name
    for name, op in operations.items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        channel_name = channel_ref.removeprefix("#/channels/")
        assert channel_name in channels, name
        assert op["messages"], f"{name} sends nothing"
        for message in op["messages"]:
            # An operation's messages must be messages of its channel.
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), f"{name}: {message['$ref']}"
            resolve(document, message["$ref"])

    for schema in document["components"]["schemas"].values():
        jsonschema.Draft7Validator.check_schema(schema)


def test_every_event_type_has_its_channel_message_and_schema() -> None:
    document = build()
    messages, channels = document["components"]["messages"], document["channels"]
    webhook_messages = {
        follow(document, m["$ref"])["name"] for m in document["operations"]["deliver_webhooks"]["messages"]
    }
    assert webhook_messages == EVENT_TYPES
    for event_type, spec in CATALOG.items():
        _, aggregate, what, version = event_type.split(".")
        assert version == "v1" and (aggregate, what) == (spec.aggregate, spec.what)
        channel = channels[spec.name]
        assert channel["address"] == f"crossdock.{aggregate}.{what}.{{subject}}"
        assert channel["servers"] == [{"$ref": "#/servers/nats"}]
        message = resolve(document, channel["messages"][spec.name]["$ref"])
        assert message is messages[spec.name]
        assert message["name"] == event_type and message["title"]
        assert message["contentType"] == "application/cloudevents+json"
        headers = resolve(document, message["headers"]["$ref"])["properties"]
        assert WEBHOOK_HEADERS | {"Nats-Msg-Id"} <= set(headers)
        payload = resolve(document, message["payload"]["$ref"])
        assert payload["allOf"][1]["properties"]["type"] == {"const": event_type}
        assert resolve(document, payload["allOf"][1]["properties"]["data"]["$ref"]) == spec.data
        assert f"publish_{spec.name}" in document["operations"]
    assert document["servers"]["nats"]["protocol"] == "nats"
    assert document["servers"]["api"]["protocol"] == "http"
    assert channels["feed"]["address"] == "/v1/events"


def test_the_catalog_describes_each_type_once_and_marks_reserved_ones() -> None:
    assert set(CATALOG) == EVENT_TYPES
    for spec in CATALOG.values():
        jsonschema.Draft7Validator.check_schema(spec.data)
        assert spec.subject in spec.data["required"], spec.type
        assert spec.description.endswith("."), spec.type
    reserved = [s.type for s in CATALOG.values() if not s.emitted]
    assert reserved == []  # the last reserved type, transfer.recommended, is emitted by rebalancing plans
