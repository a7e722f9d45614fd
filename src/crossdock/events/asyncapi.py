"""The AsyncAPI 3.0 document of Crossdock's events, built from the event catalog.

Served at `GET /asyncapi.json`, printed by `crossdock asyncapi`, and kept in the repository as
`docs/asyncapi.json` (a test keeps that copy equal to what this module builds).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from crossdock import __version__
from crossdock.events.catalog import CATALOG, ENVELOPE, EventSpec, Schema
from crossdock.events.envelope import SOURCE

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/cloudevents+json"
NATS_STREAM = "CROSSDOCK"

DESCRIPTION = """\
Every committed change of stock, orders, checkout holds and transfers becomes a
[CloudEvents 1.0](https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md) event in
structured JSON. Events are written to an outbox in the same database transaction as the change
they describe (an event is never lost, and never published for a change that was rolled back),
then relayed to NATS JetStream, to webhook endpoints and to the pull feed `GET /v1/events`.

- **At least once.** After a crash or a failed acknowledgement, events are delivered again. An
  event's `id` (a UUIDv7) is the same on every delivery and every transport (`Nats-Msg-Id` on
  NATS, `webhook-id` on webhooks): deduplicate on it.
- **In order per subject.** `subject` is the SKU for inventory events, the order id for order
  events, the reservation id for reservation events and the transfer id for transfer events. The
  extension attribute `sequence` increases with every event of a subject: apply an event only if
  its `sequence` is above the last one you applied for that subject, and drop stale ones. Each
  transport delivers a subject's events in order; the pull feed serves all events in commit order.
- **Retention.** Events stay in the outbox for `CROSSDOCK_EVENT_RETENTION_HOURS` (168 hours by
  default) after every registered consumer has passed them; the pull feed can be read from any
  cursor within that window. The JetStream stream `CROSSDOCK` keeps them by its own limits.
- **Versioned types.** `type` is `crossdock.<aggregate>.<what>.v1`. Within a version fields are
  only added: ignore fields you do not know. A breaking change gets a new type (`.v2`).
- **Webhooks** are [Standard Webhooks](https://www.standardwebhooks.com/): a signed `POST` of the
  CloudEvent to each endpoint registered at `/v1/webhook-endpoints`, retried with backoff until
  the endpoint answers 2xx; an endpoint that answers `410 Gone` is disabled.
"""

SUBJECT_PARAMETER = (
    "The event's subject (the SKU, order id, reservation id or transfer id) as one NATS token: a character other than"
    " `A-Z a-z 0-9 _ - : / @ +` is percent-encoded (`.`, which NATS reads as a token separator, becomes"
    " `%2E`: `acme.tee` -> `acme%2Etee`). Subscribe to `crossdock.inventory.>` for every inventory event,"
    " or `crossdock.inventory.*.<SKU>` for everything about one SKU."
)

HEADERS: Schema = {
    "type": "object",
    "description": "Transport headers. Webhooks carry the `webhook-*` ones, NATS carries `Nats-Msg-Id`.",
    "properties": {
        "webhook-id": {
            "type": "string",
            "description": "Webhooks: the event id, the same on every retry (Standard Webhooks)",
        },
        "webhook-timestamp": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Webhooks: when this attempt was signed, in Unix seconds. Refuse old ones.",
        },
        "webhook-signature": {
            "type": "string",
            "description": "Webhooks: space-separated `v1,<base64 HMAC-SHA256>` signatures of"
            " `{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's `whsec_` secret; more than one"
            " while a secret is being rotated",
        },
        "Nats-Msg-Id": {
            "type": "string",
            "description": "NATS: the event id; JetStream drops a duplicate within its deduplication window",
        },
    },
}

FEED_QUERY: Schema = {
    "type": "object",
    "properties": {
        "after": {"type": "string", "pattern": "^[0-9]{1,18}$", "description": "`next_cursor` of the page before"},
        "types": {"type": "string", "description": "Comma-separated event types; all when absent"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Events per page (100)"},
        "wait": {
            "type": "number",
            "minimum": 0,
            "maximum": 30,
            "description": "Seconds to wait for the next event when none is there (long poll)",
        },
    },
}


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _message(spec: EventSpec) -> dict[str, Any]:
    reserved = "" if spec.emitted else " (reserved: not emitted yet)"
    return {
        "name": spec.type,
        "title": spec.title + reserved,
        "summary": spec.description.split(". ")[0].rstrip(".") + ".",
        "description": f"{spec.description}\n\n`subject` = `data.{spec.subject}`.",
        "contentType": CONTENT_TYPE,
        "headers": _ref("components", "schemas", "DeliveryHeaders"),
        "payload": _ref("components", "schemas", spec.name),
        "tags": [{"name": spec.aggregate}],
    }


def _event_schema(spec: EventSpec) -> Schema:
    return {
        "title": spec.type,
        "allOf": [
            _ref("components", "schemas", "CloudEvent"),
            {
                "type": "object",
                "properties": {
                    "type": {"const": spec.type},
                    "source": {"const": f"{SOURCE}:{spec.aggregate}"},
                    "data": _ref("components", "schemas", f"{spec.name}_data"),
                },
            },
        ],
    }


def build() -> dict[str, Any]:
    specs = list(CATALOG.values())
    schemas: dict[str, Schema] = {"CloudEvent": ENVELOPE, "DeliveryHeaders": HEADERS}
    for spec in specs:
        schemas[spec.name] = _event_schema(spec)
        schemas[f"{spec.name}_data"] = spec.data
    schemas["EventPage"] = {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": {"oneOf": [_ref("components", "schemas", s.name) for s in specs]}},
            "next_cursor": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "Pass as `after` to read on; the same cursor again when nothing new has come",
            },
        },
    }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in specs:
        channels[spec.name] = {
            "address": f"crossdock.{spec.aggregate}.{spec.what}.{{subject}}",
            "title": spec.title,
            "description": f"`{spec.type}` on NATS JetStream, stream `{NATS_STREAM}`.",
            "servers": [_ref("servers", "nats")],
            "parameters": {"subject": _ref("components", "parameters", "subject")},
            "messages": {spec.name: _ref("components", "messages", spec.name)},
        }
        operations[f"publish_{spec.name}"] = {
            "action": "send",
            "title": f"Publish {spec.type}",
            "channel": _ref("channels", spec.name),
            "messages": [_ref("channels", spec.name, "messages", spec.name)],
        }
    channels["webhooks"] = {
        "address": None,  # the URL each endpoint was registered with
        "title": "Webhook deliveries",
        "description": "Every event, as a Standard Webhooks signed `POST` with `content-type:"
        f" {CONTENT_TYPE}` to the URL of each endpoint registered at `/v1/webhook-endpoints` whose"
        " `event_types` include its type (all types when empty). Answer 2xx to acknowledge; anything else"
        " is retried with backoff, in order per subject.",
        "servers": [_ref("servers", "api")],
        "messages": {s.name: _ref("components", "messages", s.name) for s in specs},
    }
    operations["deliver_webhooks"] = {
        "action": "send",
        "title": "Deliver events to webhook endpoints",
        "channel": _ref("channels", "webhooks"),
        "messages": [_ref("channels", "webhooks", "messages", s.name) for s in specs],
        "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
    }
    channels["feed"] = {
        "address": "/v1/events",
        "title": "Pull feed",
        "description": "Every event in commit order, a page at a time: `GET /v1/events?after=&types=&limit=&wait=`."
        " Resume from `next_cursor`; an empty page means caught up (with `wait`, the"
        " request first waits up to that many seconds for the next event).",
        "servers": [_ref("servers", "api")],
        "messages": {"event_page": _ref("components", "messages", "event_page")},
    }
    operations["serve_feed"] = {
        "action": "send",
        "title": "Answer GET /v1/events",
        "channel": _ref("channels", "feed"),
        "messages": [_ref("channels", "feed", "messages", "event_page")],
        "bindings": {"http": {"method": "GET", "query": FEED_QUERY, "bindingVersion": "0.3.0"}},
    }

    messages: dict[str, Any] = {s.name: _message(s) for s in specs}
    messages["event_page"] = {
        "name": "event_page",
        "title": "A page of the event feed",
        "contentType": "application/json",
        "payload": _ref("components", "schemas", "EventPage"),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Crossdock events",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
            "tags": [{"name": a} for a in sorted({s.aggregate for s in specs})],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": f"NATS JetStream at `CROSSDOCK_NATS_URL`: stream `{NATS_STREAM}`, subjects"
                " `crossdock.<aggregate>.<what>.<subject>`, `Nats-Msg-Id` = the event id.",
            },
            "api": {
                "host": "localhost:8000",
                "protocol": "http",
                "description": "The Crossdock HTTP API (`CROSSDOCK_HOST`, `CROSSDOCK_PORT`): the pull feed, and"
                " the webhook endpoints events are posted to (`/v1/webhook-endpoints`).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "parameters": {"subject": {"description": SUBJECT_PARAMETER}},
        },
    }


def render(document: dict[str, Any]) -> str:
    """The canonical text: pretty-printed, keys sorted, a trailing newline (as in docs/asyncapi.json)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@cache
def document_text() -> str:
    return render(build())
