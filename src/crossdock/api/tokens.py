"""Access tokens: short-lived JWTs (RFC 9068 profile) signed with ES256, checked as RFC 8725 asks.

Every check is explicit: the algorithm is on an allow-list of one (no `none`, no HMAC, so a token
"signed" with the public key as an HMAC secret fails), the header's `typ` must be `at+jwt`, the key
is found by `kid` among our own keys only, and `iss`, `aud`, `exp`, `nbf` are required and checked.

Keys live in the database so that every API process signs and verifies with the same ones. A
process that meets an unknown `kid` reloads the keys, at most once a second; a new key starts
signing only KEY_ACTIVATION_SECONDS after it was made, so by then every process that meets it
reloads and knows it. Rotation needs no restart and refuses no valid token.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from crossdock.domain.clients import ApiClient, SigningKey
from crossdock.domain.ids import new_id

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # RFC 9068: an OAuth 2.0 access token, so no other kind of JWT passes for one
LEEWAY_SECONDS = 30  # clock skew between processes and hosts
JWKS_MAX_AGE = 300  # how long verifiers may cache /.well-known/jwks.json
RELOAD_INTERVAL_SECONDS = 1.0  # the most often an unknown kid makes a process reload its keys
KEY_ACTIVATION_SECONDS = 2 * RELOAD_INTERVAL_SECONDS
REFRESH_SECONDS = 60.0  # how often the token endpoint looks for a newer signing key
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "scope"]


class InvalidToken(Exception):
    """Why a token was refused (said to the caller: nothing here is secret)."""


def new_signing_key(now: datetime) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    # RFC 7638 thumbprint as the kid: stable, and says nothing about when or where the key was made.
    members = orjson.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, option=orjson.OPT_SORT_KEYS)
    kid = base64.urlsafe_b64encode(hashlib.sha256(members).digest()).rstrip(b"=").decode()
    jwk.update(kid=kid, alg=ALGORITHM, use="sig")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(kid, ALGORITHM, pem, jwk, now)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    client_id: str
    scopes: frozenset[str]
    channel_id: str | None
    expires_at: float  # Unix seconds


@dataclass(frozen=True, slots=True)
class _Key:
    record: SigningKey
    public: ec.EllipticCurvePublicKey
    private: ec.EllipticCurvePrivateKey


class KeyRing:
    """The signing keys as this process knows them, reloaded when a token names a key it lacks."""

    def __init__(self, load: Callable[[], list[SigningKey]], keep_retired: timedelta) -> None:
        self._load = load
        self.keep_retired = keep_retired
        self._keys: dict[str, _Key] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def reload(self) -> None:
        records = self._load()  # newest first
        keys: dict[str, _Key] = {}
        for r in records:
            private = serialization.load_pem_private_key(r.private_pem.encode(), password=None)
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            keys[r.kid] = _Key(r, private.public_key(), private)
        with self._lock:
            self._keys = keys
            self._loaded_at = time.monotonic()

    def public(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._keys.get(kid)
        return key.public if key else None

    def stale(self, seconds: float = RELOAD_INTERVAL_SECONDS) -> bool:
        return time.monotonic() - self._loaded_at > seconds

    def signing(self, now: datetime) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The newest key made at least KEY_ACTIVATION_SECONDS ago (else the oldest: a fresh start)."""
        keys = list(self._keys.values())  # newest first
        if not keys:
            raise RuntimeError("no signing key: the database has none (it is made at start-up)")
        ready = now - timedelta(seconds=KEY_ACTIVATION_SECONDS)
        key = next((k for k in keys if k.record.created_at <= ready), keys[-1])
        return key.record.kid, key.private

    def jwks(self, now: datetime) -> dict[str, Any]:
        """The public keys a verifier may meet: the signing key and those retired less than a token's
        lifetime (plus leeway) ago."""
        return {
            "keys": [
                k.record.public_jwk
                for k in self._keys.values()
                if k.record.retired_at is None or now - k.record.retired_at < self.keep_retired
            ]
        }


class Tokens:
    def __init__(
        self,
        ring: KeyRing,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring = ring
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds
        self.clock = clock
        # Verified tokens, by their text: the signature check (~100 us) runs once per token, not
        # once per request. Expiry is checked again on every use; revocation by the caller.
        self._verified: dict[str, Claims] = {}

    def issue(self, client: ApiClient, scopes: tuple[str, ...]) -> str:
        kid, key = self.ring.signing(datetime.fromtimestamp(self.clock(), UTC))
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client.client_id,
            "client_id": client.client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": new_id("tok"),
        }
        if client.channel_id is not None:
            claims["channel_id"] = client.channel_id
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE})

    def verify(self, token: str) -> Claims:
        """The token's claims, or InvalidToken. May raise UnknownKey: reload the ring, then retry."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + LEEWAY_SECONDS < self.clock():
                del self._verified[token]
                raise InvalidToken("the token has expired")
            return known
        claims = self._check(token)
        if len(self._verified) >= 10_000:
            self._verified.clear()  # crude, but bounded; refilled by the tokens in use
        self._verified[token] = claims
        return claims

    def _check(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"the token's algorithm must be {ALGORITHM}")
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidToken(f"the token's typ must be {TOKEN_TYPE}")
        kid = header.get("kid")
        key = self.ring.public(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey("the token was not signed by a key of this server")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token's signature does not verify") from None
        channel = payload.get("channel_id")
        return Claims(
            str(payload["client_id"] if "client_id" in payload else payload["sub"]),
            frozenset(str(payload["scope"]).split()),
            str(channel) if channel is not None else None,
            float(payload["exp"]),
        )


class UnknownKey(InvalidToken):
    """The token names a key this process does not know (yet)."""
