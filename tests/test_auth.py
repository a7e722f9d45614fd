"""Authentication and authorisation over HTTP: the token endpoint, RFC 8725 token checks (each one
proven by a token that fails only that check), scopes, channel-bound clients, revocation, key
rotation, per-client idempotency keys and rate limits."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crossdock.api.tokens import KEY_ACTIVATION_SECONDS
from crossdock.client import ClientCredentials
from crossdock.services.clients import signing_keys
from crossdock.store.database import open_database
from tests.conftest import LiveServer
from tests.world import order, seed

PROBLEM = "application/problem+json"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(f"sqlite:///{tmp_path / 'auth.db'}") as server:
        yield server


@pytest.fixture
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client() as c:
        seed(c, {"TEE": {"wh-east": 20}})
        yield c


def new_client(admin: httpx.Client, scopes: list[str], **extra: Any) -> tuple[str, str]:
    r = admin.post("/v1/clients", json={"name": "partner", "scopes": scopes, **extra})
    assert r.status_code == 201, r.text
    return r.json()["client_id"], r.json()["client_secret"]


def as_client(live: LiveServer, credentials: tuple[str, str]) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, timeout=30, auth=ClientCredentials(*credentials))


def token_for(live: LiveServer, credentials: tuple[str, str], **form: str) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=credentials,
    )


def bearer(live: LiveServer, token: str, path: str = "/v1/inventory/TEE") -> httpx.Response:
    return httpx.get(f"{live.base_url}{path}", headers={"Authorization": f"Bearer {token}"})


def assert_refused(r: httpx.Response, status: int, kind: str, detail_part: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith("/" + kind)
    assert detail_part in body["detail"]


# -- tokens ---------------------------------------------------------------------------------------


def test_every_api_route_needs_a_token(live: LiveServer, admin: httpx.Client) -> None:
    with live.anonymous() as anon:
        for method, path in [
            ("GET", "/v1/inventory/TEE"),
            ("POST", "/v1/orders"),
            ("POST", "/v1/reservations"),
            ("GET", "/v1/events"),
            ("GET", "/v1/audit"),
            ("GET", "/v1/clients"),
            ("GET", "/v1/webhook-endpoints"),
        ]:
            r = anon.request(method, path, json={})
            assert_refused(r, 401, "unauthorized", "bearer token")
            assert r.headers["www-authenticate"].startswith("Bearer")
        # Public: health, documents, keys.
        for path in ["/healthz", "/openapi.json", "/asyncapi.json", "/.well-known/jwks.json", "/docs"]:
            assert anon.get(path).status_code == 200, path


def test_the_token_endpoint_takes_basic_or_post_credentials_never_both(live: LiveServer, admin: httpx.Client) -> None:
    creds = new_client(admin, ["inventory:read"])
    basic = token_for(live, creds)
    assert basic.status_code == 200, basic.text
    assert basic.headers["cache-control"] == "no-store"
    body = basic.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["scope"] == "inventory:read"
    assert bearer(live, body["access_token"]).status_code == 200

    post = httpx.post(
        f"{live.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds[0], "client_secret": creds[1]},
    )
    assert post.status_code == 200, post.text

    both = httpx.post(
        f"{live.base_url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds[0], "client_secret": creds[1]},
        auth=creds,
    )
    assert_refused(both, 400, "invalid-token-request")
    assert both.json()["error"] == "invalid_request"

    wrong = token_for(live, (creds[0], creds[1] + "x"))
    assert_refused(wrong, 401, "invalid-client")
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")

    grant = token_for(live, creds, grant_type="password")
    assert grant.json()["error"] == "unsupported_grant_type"


def test_a_token_carries_only_the_scopes_asked_for(live: LiveServer, admin: httpx.Client) -> None:
    creds = new_client(admin, ["inventory:read", "orders:write"])
    narrow = token_for(live, creds, scope="inventory:read")
    assert narrow.json()["scope"] == "inventory:read"
    token = narrow.json()["access_token"]
    r = httpx.post(
        f"{live.base_url}/v1/orders",
        json=order("o-narrow", {"TEE": 1}),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_refused(r, 403, "forbidden", "orders:write")
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]

    more = token_for(live, creds, scope="inventory:read admin")
    assert_refused(more, 400, "invalid-token-request")
    assert more.json()["error"] == "invalid_scope"


def test_tokens_verify_with_the_published_keys(live: LiveServer, admin: httpx.Client) -> None:
    """An outside verifier (PyJWT) checks our token against /.well-known/jwks.json."""
    token = token_for(live, new_client(admin, ["inventory:read"])).json()["access_token"]
    jwks = httpx.get(f"{live.base_url}/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert "d" not in jwk  # never the private part
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="crossdock-api", issuer="crossdock")
    assert claims["scope"] == "inventory:read" and claims["exp"] - claims["iat"] == 900


# -- RFC 8725: each forged token fails exactly one check ---------------------------------------------


def server_key(live: LiveServer) -> tuple[str, ec.EllipticCurvePrivateKey, str]:
    db = open_database(live.database_url, writers=1)
    try:
        key = db.read(signing_keys)[0]
    finally:
        db.close()
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key.kid, private, public_pem


def claims_for(client_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "crossdock",
        "aud": "crossdock-api",
        "sub": client_id,
        "client_id": client_id,
        "scope": "inventory:read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "tok_test",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_tokens_are_refused(live: LiveServer, admin: httpx.Client) -> None:
    client_id, _ = new_client(admin, ["inventory:read"])
    kid, private, public_pem = server_key(live)
    headers = {"kid": kid, "typ": "at+jwt"}

    def signed(**changes: Any) -> str:
        return jwt.encode(claims_for(client_id, **changes), private, algorithm="ES256", headers=headers)

    # The control: the same construction with nothing changed is accepted.
    assert bearer(live, signed()).status_code == 200

    import orjson

    unsigned = ".".join(
        [
            b64(orjson.dumps({"alg": "none", "typ": "at+jwt", "kid": kid})),
            b64(orjson.dumps(claims_for(client_id))),
            "",
        ]
    )
    assert_refused(bearer(live, unsigned), 401, "unauthorized", "algorithm")

    # HS256 with the public key as the HMAC secret (the classic algorithm confusion).
    hs_header = b64(orjson.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}))
    hs_payload = b64(orjson.dumps(claims_for(client_id)))
    import hashlib
    import hmac

    mac = hmac.new(public_pem.encode(), f"{hs_header}.{hs_payload}".encode(), hashlib.sha256).digest()
    assert_refused(bearer(live, f"{hs_header}.{hs_payload}.{b64(mac)}"), 401, "unauthorized", "algorithm")

    assert_refused(bearer(live, signed(aud="someone-else")), 401, "unauthorized", "audience")
    assert_refused(bearer(live, signed(iss="https://evil.example")), 401, "unauthorized", "issuer")
    past = int(time.time()) - 3600
    assert_refused(bearer(live, signed(iat=past - 900, nbf=past - 900, exp=past)), 401, "unauthorized", "expired")
    future = int(time.time()) + 3600
    assert_refused(bearer(live, signed(nbf=future)), 401, "unauthorized", "not valid yet")
    assert_refused(bearer(live, signed(exp=None)), 401, "unauthorized", "'exp'")
    typ_jwt = jwt.encode(claims_for(client_id), private, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})
    assert_refused(bearer(live, typ_jwt), 401, "unauthorized", "typ")

    # Right kid, another key: the signature does not verify.
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims_for(client_id), other, algorithm="ES256", headers=headers)
    assert_refused(bearer(live, forged), 401, "unauthorized", "signature")
    # Unknown kid.
    unknown = jwt.encode(claims_for(client_id), other, algorithm="ES256", headers={"kid": "nope", "typ": "at+jwt"})
    assert_refused(bearer(live, unknown), 401, "unauthorized", "key")
    # A scope the token does not carry, though the signature is good: 403, not 401.
    assert_refused(bearer(live, signed(), "/v1/audit"), 403, "forbidden", "admin")


# -- clients ---------------------------------------------------------------------------------------


def test_a_revoked_client_is_refused_at_once(live: LiveServer, admin: httpx.Client) -> None:
    creds = new_client(admin, ["inventory:read"])
    token = token_for(live, creds).json()["access_token"]
    assert bearer(live, token).status_code == 200
    revoked = admin.post(f"/v1/clients/{creds[0]}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_refused(bearer(live, token), 401, "unauthorized", "revoked")
    assert_refused(token_for(live, creds), 401, "invalid-client")
    assert_refused(admin.post(f"/v1/clients/{creds[0]}/revoke"), 409, "invalid-state")
    assert_refused(admin.post(f"/v1/clients/{live.auth.client_id}/revoke"), 409, "invalid-state", "itself")


def test_client_secrets_are_shown_once_and_audited_without_them(live: LiveServer, admin: httpx.Client) -> None:
    client_id, secret = new_client(admin, ["orders:read"], rate_limits={"orders:read": "5/second"})
    shown = admin.get(f"/v1/clients/{client_id}").json()
    assert "client_secret" not in shown and shown["rate_limits"] == {"orders:read": "5/second"}
    assert client_id in [c["client_id"] for c in admin.get("/v1/clients").json()["clients"]]
    entries = admin.get("/v1/audit", params={"object_type": "client", "object_id": client_id}).json()["entries"]
    assert [e["action"] for e in entries] == ["client.created"]
    assert secret not in str(entries)
    assert entries[0]["actor"] == live.auth.client_id  # who did it: the authenticated admin


def test_client_definitions_are_checked(admin: httpx.Client) -> None:
    def create(**body: Any) -> httpx.Response:
        return admin.post("/v1/clients", json={"name": "x", "scopes": ["orders:read"], **body})

    assert_refused(create(scopes=["orders:delete"]), 422, "invalid-request", "unknown scope")
    assert_refused(create(scopes=[]), 422, "validation-error")
    assert_refused(create(channel_id="web", scopes=["orders:read", "events:read"]), 422, "invalid-request", "every")
    assert_refused(create(channel_id="nowhere"), 422, "unknown-reference")
    assert_refused(create(rate_limits={"orders:read": "lots"}), 422, "validation-error")


def test_the_audit_actor_is_the_authenticated_client(live: LiveServer, admin: httpx.Client) -> None:
    creds = new_client(admin, ["inventory:write"])
    with as_client(live, creds) as partner:
        r = partner.post(
            "/v1/inventory/adjustments",
            json={"adjustments": [{"sku": "TEE", "node_id": "wh-east", "delta": 1, "reason": "cycle_count"}]},
        )
        assert r.status_code == 200, r.text
    entries = admin.get("/v1/audit", params={"object_type": "position", "actor": creds[0]}).json()["entries"]
    assert len(entries) == 1 and entries[0]["after"]["on_hand"] == 21


# -- object-level authorisation --------------------------------------------------------------------


def test_a_channel_bound_client_sees_and_changes_only_its_channel(live: LiveServer, admin: httpx.Client) -> None:
    theirs = admin.post("/v1/orders", json=order("amz-1", {"TEE": 1}, channel="amz")).json()["order_id"]
    creds = new_client(admin, ["orders:read", "orders:write", "inventory:read"], channel_id="web")
    with as_client(live, creds) as web:
        mine = web.post("/v1/orders", json=order("web-1", {"TEE": 1}))
        assert mine.status_code == 201, mine.text
        assert_refused(web.post("/v1/orders", json=order("amz-2", {"TEE": 1}, channel="amz")), 403, "forbidden")
        assert_refused(web.get(f"/v1/orders/{theirs}"), 404, "not-found")
        assert_refused(web.post(f"/v1/orders/{theirs}/cancel"), 404, "not-found")
        ship = {
            "node_id": "wh-east",
            "lines": [{"sku": "TEE", "quantity": 1}],
            "carrier": "ups",
            "tracking_number": "1",
        }
        assert_refused(web.post(f"/v1/orders/{theirs}/shipments", json=ship), 404, "not-found")
        assert [o["channel_id"] for o in web.get("/v1/orders").json()["orders"]] == ["web"]
        assert_refused(web.get("/v1/orders", params={"channel_id": "amz"}), 403, "forbidden")
        assert_refused(web.get("/v1/channels/amz/inventory"), 403, "forbidden")
        assert [c["channel_id"] for c in web.get("/v1/inventory/TEE").json()["channels"]] == ["web"]
        hold = admin.post("/v1/reservations", json={"channel_id": "amz", "lines": [{"sku": "TEE", "quantity": 1}]})
        held = hold.json()["reservation_id"]
        assert_refused(web.get(f"/v1/reservations/{held}"), 404, "not-found")
        assert_refused(web.post(f"/v1/reservations/{held}/release"), 404, "not-found")
        refused_hold = web.post(
            "/v1/reservations", json={"channel_id": "amz", "lines": [{"sku": "TEE", "quantity": 1}]}
        )
        assert_refused(refused_hold, 403, "forbidden")
    # Nothing of the other channel changed.
    assert admin.get(f"/v1/orders/{theirs}").json()["status"] == "allocated"
    assert admin.get(f"/v1/reservations/{held}").json()["status"] == "active"


# -- key rotation ----------------------------------------------------------------------------------


def test_key_rotation_keeps_old_tokens_valid(live: LiveServer, admin: httpx.Client) -> None:
    creds = new_client(admin, ["inventory:read"])
    old = token_for(live, creds).json()["access_token"]
    rotated = admin.post("/v1/admin/signing-keys/rotate")
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    published = {k["kid"] for k in httpx.get(f"{live.base_url}/.well-known/jwks.json").json()["keys"]}
    assert new_kid in published  # published at once, signing only once every process can know it
    assert jwt.get_unverified_header(token_for(live, creds).json()["access_token"])["kid"] != new_kid
    time.sleep(KEY_ACTIVATION_SECONDS)
    new = token_for(live, creds).json()["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == new_kid != jwt.get_unverified_header(old)["kid"]
    assert bearer(live, old).status_code == 200 and bearer(live, new).status_code == 200
    kids = {k["kid"] for k in httpx.get(f"{live.base_url}/.well-known/jwks.json").json()["keys"]}
    assert kids == {new_kid, jwt.get_unverified_header(old)["kid"]}
    keys = admin.get("/v1/admin/signing-keys").json()["keys"]
    assert keys[0]["kid"] == new_kid and keys[0]["retired_at"] is None and keys[1]["retired_at"] is not None


def test_a_key_rotated_by_another_process_is_picked_up(live: LiveServer, admin: httpx.Client) -> None:
    """`crossdock keys rotate` (or another API process) writes a new key: this process learns it
    from the first token that names it."""
    from crossdock.config import Settings
    from crossdock.provisioning import rotate_signing_key

    key = rotate_signing_key(live.database_url, Settings())
    assert httpx.get(f"{live.base_url}/.well-known/jwks.json").status_code == 200
    creds = new_client(admin, ["inventory:read"])
    db = open_database(live.database_url, writers=1)
    try:
        newest = db.read(signing_keys)[0]
    finally:
        db.close()
    assert newest.kid == key.kid
    time.sleep(KEY_ACTIVATION_SECONDS)  # the earliest another process would sign with it
    private = serialization.load_pem_private_key(newest.private_pem.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    token = jwt.encode(claims_for(creds[0]), private, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
    assert bearer(live, token).status_code == 200


# -- idempotency keys are per client ---------------------------------------------------------------


def adjust(http: httpx.Client, key: str) -> httpx.Response:
    body = {"adjustments": [{"sku": "TEE", "node_id": "wh-east", "delta": 1, "reason": "cycle_count"}]}
    return http.post("/v1/inventory/adjustments", json=body, headers={"Idempotency-Key": key})


def test_idempotency_keys_belong_to_their_client(live: LiveServer, admin: httpx.Client) -> None:
    with (
        as_client(live, new_client(admin, ["inventory:write"])) as a,
        as_client(live, new_client(admin, ["inventory:write"])) as b,
    ):
        first = adjust(a, "k-1")
        assert adjust(a, "k-1").headers.get("idempotent-replayed") == "true"
        other = adjust(b, "k-1")  # the same key from another client is another request
        assert "idempotent-replayed" not in other.headers
    assert first.json()["positions"][0]["on_hand"] == 21
    assert other.json()["positions"][0]["on_hand"] == 22


def test_a_repeat_while_the_first_is_in_flight_gets_409(live: LiveServer, admin: httpx.Client) -> None:
    """The first request waits for the write lock (held here from outside); its repeat is refused
    at once with 409, and once the lock is free the first completes."""
    path = live.database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    results: dict[str, httpx.Response] = {}
    with live.client() as first_client:
        first = threading.Thread(target=lambda: results.update(first=adjust(first_client, "k-flight")))
        first.start()
        time.sleep(0.3)  # the first is queued behind the lock
        repeat = adjust(admin, "k-flight")
        blocker.execute("ROLLBACK")
        first.join(30)
    blocker.close()
    assert_refused(repeat, 409, "idempotency-key-in-flight")
    assert results["first"].status_code == 200
    assert adjust(admin, "k-flight").headers.get("idempotent-replayed") == "true"


# -- rate limits -----------------------------------------------------------------------------------


def test_rate_limits_are_per_client_and_route_group(live: LiveServer, admin: httpx.Client) -> None:
    limited = new_client(admin, ["inventory:read", "orders:read"], rate_limits={"inventory:read": "3/minute"})
    with as_client(live, limited) as slow, as_client(live, new_client(admin, ["inventory:read"])) as other:
        answers = [slow.get("/v1/inventory/TEE") for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0"]
        assert answers[0].headers["ratelimit-limit"] == "3"
        refused = slow.get("/v1/inventory/TEE")
        assert_refused(refused, 429, "rate-limited")
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-remaining"] == "0"
        assert slow.get("/v1/orders").status_code == 200  # another group
        assert other.get("/v1/inventory/TEE").status_code == 200  # another client


def test_log_lines_carry_the_request_and_the_client(tmp_path: Path) -> None:
    """A warning logged while serving a request (here: the rate-limit store is unreachable, so the
    limiter lets the request through) names the request id and the authenticated client."""
    import structlog

    from crossdock.config import Settings
    from crossdock.provisioning import mint_token

    url = f"sqlite:///{tmp_path / 'logs.db'}"
    with LiveServer(url, rate_limit_storage="redis://127.0.0.1:1/0") as live:
        # A token made without the token endpoint: the request below is the first the limiter sees.
        token = mint_token(url, live.auth.client_id, Settings(database_url=url))
        with structlog.testing.capture_logs([structlog.contextvars.merge_contextvars]) as logs:
            headers = {"Authorization": f"Bearer {token}", "Request-Id": "req-log-1"}
            r = httpx.get(f"{live.base_url}/v1/nodes", headers=headers)
        assert r.status_code == 200  # failing open
    (entry,) = [e for e in logs if e["event"] == "rate_limit_storage_unavailable"]
    assert entry["request_id"] == "req-log-1" and entry["client_id"] == live.auth.client_id
