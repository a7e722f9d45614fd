"""The API reference, served by the API itself and with no asset from another host (many deployments
have no internet):

- `GET /docs`: Swagger UI over the OpenAPI document, its JavaScript and CSS served from the
  `swagger-ui-bundle` package under `/docs/static/`;
- `GET /docs/events`: every event type of the AsyncAPI document (`/asyncapi.json`) with its channel,
  the fields of its payload and an example CloudEvent, rendered on the server (Jinja2, no script).

The bundled Swagger UI (4.x) renders OpenAPI 3.0 only, and FastAPI writes 3.1: the page loads
`/docs/openapi-3.0.json`, the same document rewritten in the 3.0 dialect for display
(`swagger_ui_document`). `/openapi.json` stays the reference.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from crossdock.events.asyncapi import build

SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = "/docs/static"
# What the page needs from the bundle, and the source maps a browser's developer tools ask for.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-bundle.js.map": "application/json",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui.css.map": "application/json",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
CACHE = "public, max-age=86400"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "persistAuthorization": False,  # a token stays in the page's memory only, never in localStorage
    "displayRequestDuration": True,
    "filter": True,
    "tryItOutEnabled": False,
    "docExpansion": "list",
    "defaultModelsExpandDepth": 0,
}
# The "Authorize" dialog's OAuth2 client-credentials flow posts client id and secret to the tokenUrl of
# the document's securitySchemes (`/oauth/token`); scopes are separated by spaces (RFC 6749).
INIT_OAUTH: dict[str, Any] = {"appName": "Crossdock API reference", "scopeSeparator": " "}


def install(app: FastAPI) -> None:
    """Registers the reference pages (none of them in the OpenAPI document)."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/docs/openapi-3.0.json",
            title=f"{app.title} API reference",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            init_oauth=INIT_OAUTH,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return HTMLResponse((SWAGGER_UI / "oauth2-redirect.html").read_text(encoding="utf-8"))

    @app.get(STATIC + "/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no asset {name}")
        return FileResponse(SWAGGER_UI / name, media_type=media_type, headers={"cache-control": CACHE})

    @app.get("/docs/openapi-3.0.json", include_in_schema=False)
    async def openapi_for_swagger_ui() -> JSONResponse:
        return JSONResponse(swagger_ui_document(app.openapi()))

    @app.get("/docs/events", include_in_schema=False)
    async def events_reference() -> HTMLResponse:
        return HTMLResponse(events_page())


# -- Swagger UI's copy of the OpenAPI document ------------------------------------------------------


def swagger_ui_document(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document in the 3.0 dialect, for display by Swagger UI 4: `examples` lists
    become `example`, null in `type` or `anyOf` becomes `nullable`, `const` a one-value `enum`,
    numeric exclusive bounds boolean ones."""
    out: dict[str, Any] = _to_oas30(copy.deepcopy(document))
    out["openapi"] = "3.0.3"
    return out


def _to_oas30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_oas30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _to_oas30(value) for key, value in node.items()}
    examples = node.get("examples")
    if isinstance(examples, list):  # a schema's (a media type's or parameter's are a map)
        del node["examples"]
        if examples and "example" not in node:
            node["example"] = examples[0]
    types = node.get("type")
    if isinstance(types, list):
        rest = [t for t in types if t != "null"]
        if len(rest) < len(types):
            node["nullable"] = True
        node["type"] = rest[0] if len(rest) == 1 else rest
        if len(rest) > 1:
            del node["type"]
            node["anyOf"] = [{"type": t} for t in rest]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value = node.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[bound] = value
            node[exclusive] = True
    for key in ("anyOf", "oneOf"):
        choices = node.get(key)
        if not isinstance(choices, list) or {"type": "null"} not in choices:
            continue
        rest = [c for c in choices if c != {"type": "null"}]
        del node[key]
        node["nullable"] = True
        if len(rest) != 1:
            node[key] = rest
        elif "$ref" in rest[0]:
            node["allOf"] = rest  # a $ref's siblings are ignored in 3.0
        else:
            node = rest[0] | {k: v for k, v in node.items() if k not in rest[0]}
    return node


# -- the events page ----------------------------------------------------------------------------------

EXAMPLE_STRINGS = {
    "id": "0195f3a2-c4b8-7d21-a9e5-c04b1d3f6a70",
    "sku": "TEE-BLK-M",
    "node_id": "dc-reno",
    "from_node_id": "dc-columbus",
    "to_node_id": "dc-reno",
    "channel_id": "shopify-us",
    "order_id": "ord_0195f3a2c4b87d21a9e5c04b1d3f6a70",
    "reservation_id": "res_0195f3a1e20a7c4f8b61d9a3e5c27f14",
    "transfer_id": "tr_0195f3a3b7e07a19b2c4d6e8f0a1b3c5",
    "plan_id": "plan_0195f3a3b7d97c02a4e6f8091b3d5f70",
    "external_id": "#1042",
    "postal_code": "94107",
    "country": "US",
    "carrier": "ups",
    "service": "ground",
    "tracking_number": "1Z999AA10123456784",
    "reference": "ord_0195f3a2c4b87d21a9e5c04b1d3f6a70",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
EXAMPLE_NUMBERS: dict[str, int | float] = {
    "sequence": 7,
    "quantity": 2,
    "allocated": 2,
    "on_hand": 25,
    "reserved": 12,
    "safety_stock": 5,
    "inbound": 200,
    "available": 8,  # on_hand - reserved - safety_stock - damaged
    "threshold": 10,
    "before": 145,
    "after": 143,
    "lat": 37.7697,
    "lon": -122.3933,
    "cost": 7.85,
    "benefit": 21.4,
}
EXAMPLE_TIME = "2025-03-14T16:02:11.284Z"
OMITTED = {"tracestate"}  # optional attributes an example is clearer without
_SUBJECT = re.compile(r"`subject` = `data\.(\w+)`")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: _merge(a[k], v) if k in a else v for k, v in b.items()}}
    return b


def example(document: dict[str, Any], schema: dict[str, Any], name: str = "") -> Any:
    """A realistic value for a schema of the document: every property, known names filled in."""
    schema = _resolve(document, schema)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "allOf" in schema:
        value: Any = None
        for part in schema["allOf"]:
            value = _merge(value, example(document, part, name)) if value is not None else example(document, part, name)
        return value
    types = schema.get("type", "object")
    kind = next((t for t in types if t != "null"), "null") if isinstance(types, list) else types
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: example(document, sub, key) for key, sub in properties.items() if key not in OMITTED}
    if kind == "array":
        return [example(document, schema.get("items", {}), name) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind == "string":
        if schema.get("format") == "date-time":
            return EXAMPLE_TIME
        return EXAMPLE_STRINGS.get(name, "customer changed their mind" if name == "reason" else name or "text")
    if kind in ("integer", "number"):
        number = EXAMPLE_NUMBERS.get(name, 0 if kind == "integer" else 1.5)
        number = max(number, schema.get("minimum", number))
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return True
    return None


def _type_text(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return f"const {json.dumps(schema['const'])}"
    types = schema.get("type", "object" if "properties" in schema else "any")
    text = " | ".join(types) if isinstance(types, list) else str(types)
    if text == "array" and isinstance(schema.get("items"), dict):
        text = f"array of {_type_text(schema['items'])}"
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + ", ".join(f"`{v}`" for v in schema["enum"])
    return text


def fields(document: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """The fields of an object schema, nested ones as `a.b` and `a[].b`."""
    schema = _resolve(document, schema)
    required = set(schema.get("required", []))
    rows: list[dict[str, Any]] = []
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(document, sub)
        name = prefix + key
        rows.append(
            {
                "name": name,
                "type": _type_text(sub),
                "required": key in required,
                "description": sub.get("description", ""),
            }
        )
        items = _resolve(document, sub.get("items", {})) if isinstance(sub.get("items"), dict) else {}
        if "properties" in sub:
            rows += fields(document, sub, name + ".")
        elif "properties" in items:
            rows += fields(document, items, name + "[].")
    return rows


def events(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event type of the AsyncAPI document: its channel, payload fields and an example event."""
    out = []
    for channel in document["channels"].values():
        if "subject" not in channel.get("parameters", {}):
            continue  # the webhook and feed channels carry every type
        for ref in channel["messages"].values():
            message = _resolve(document, ref)
            payload = _resolve(document, message["payload"])
            envelope = example(document, payload)
            data_schema: dict[str, Any] = {}
            for part in payload.get("allOf", [payload]):
                data_schema = _resolve(document, part).get("properties", {}).get("data", data_schema)
            found = _SUBJECT.search(message.get("description", ""))
            if found and isinstance(envelope.get("data"), dict) and found[1] in envelope["data"]:
                envelope["subject"] = envelope["data"][found[1]]
            out.append(
                {
                    "type": message["name"],
                    "title": message.get("title", ""),
                    "description": message.get("description", ""),
                    "channel": channel["address"],
                    "channel_description": channel.get("description", ""),
                    "fields": fields(document, data_schema),
                    "example": json.dumps(envelope, indent=2, ensure_ascii=False),
                }
            )
    return out


def _inline(text: str) -> Markup:
    """The Markdown of the document's descriptions that they use: `code`, **bold**, [links](url)."""
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    html = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', html)
    return Markup(html)


def _markdown(text: str) -> Markup:
    """Paragraphs and `- ` lists, on top of `_inline`."""
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.startswith("- "):
            items = [" ".join(item.split()) for item in re.split(r"(?m)^- ", block) if item.strip()]
            blocks.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(block.split()))}</p>")
    return Markup("\n".join(blocks))


@cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["inline"] = _inline
    env.filters["markdown"] = _markdown
    return env


@cache
def events_page() -> str:
    document = build()  # what `/asyncapi.json` serves, in the catalog's order
    return (
        _environment()
        .get_template("events.html")
        .render(
            info=document["info"],
            asyncapi_version=document["asyncapi"],
            envelope=fields(document, document["components"]["schemas"]["CloudEvent"]),
            events=events(document),
        )
    )
