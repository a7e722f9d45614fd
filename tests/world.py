"""A small world for tests: two warehouses, a store, two channels."""

from __future__ import annotations

import httpx

NODES = {
    "wh-east": {
        "type": "warehouse",
        "name": "East DC",
        "postal_code": "07001",
        "country": "US",
        "lat": 40.58,
        "lon": -74.27,
    },
    "wh-west": {
        "type": "warehouse",
        "name": "West DC",
        "postal_code": "91761",
        "country": "US",
        "lat": 34.03,
        "lon": -117.59,
    },
    "store-chi": {
        "type": "store",
        "name": "Chicago store",
        "postal_code": "60601",
        "country": "US",
        "lat": 41.88,
        "lon": -87.62,
    },
}
CHANNELS = {
    "web": {
        "type": "shopify",
        "name": "Web shop",
        "node_ids": ["wh-east", "wh-west", "store-chi"],
        "buffer": {"units": 0, "percent": 0},
    },
    "amz": {
        "type": "amazon",
        "name": "Amazon",
        "node_ids": ["wh-east", "wh-west"],
        "buffer": {"units": 2, "percent": 10},
    },
}
NYC = {"postal_code": "10001", "country": "US", "lat": 40.75, "lon": -73.99}
LA = {"postal_code": "90001", "country": "US", "lat": 33.97, "lon": -118.25}


def seed(http: httpx.Client, skus: dict[str, dict[str, int]]) -> None:
    """skus: {sku: {node_id: on_hand}}."""
    for node_id, body in NODES.items():
        http.put(f"/v1/nodes/{node_id}", json=body).raise_for_status()
    for channel_id, body in CHANNELS.items():
        http.put(f"/v1/channels/{channel_id}", json=body).raise_for_status()
    adjustments = []
    for sku, stock in skus.items():
        http.put(f"/v1/skus/{sku}", json={"name": sku, "weight_grams": 500}).raise_for_status()
        adjustments += [
            {"sku": sku, "node_id": n, "delta": q, "reason": "receipt", "reference": "seed"}
            for n, q in stock.items()
            if q
        ]
    if adjustments:
        http.post("/v1/inventory/adjustments", json={"adjustments": adjustments}).raise_for_status()


def order(external_id: str, lines: dict[str, int], channel: str = "web", ship_to: dict | None = None) -> dict:
    return {
        "channel_id": channel,
        "external_id": external_id,
        "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
        "ship_to": ship_to or NYC,
    }


def behind_warehouse(http: httpx.Client, node_id: str, api_url: str = "http://127.0.0.1:9", api_key: str = "k") -> str:
    """Puts the node behind a warehouse system (the `rest` connector at `api_url`); its webhook secret."""
    from crossdock.events.webhooks import signing

    secret = signing.new_secret()
    config = {"api_url": api_url, "api_key": api_key, "webhook_secret": secret}
    http.put(f"/v1/nodes/{node_id}", json=NODES[node_id] | {"connector": "rest", "config": config}).raise_for_status()
    return secret
