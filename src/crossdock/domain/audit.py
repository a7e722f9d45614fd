"""Who changed what: the actor of a change and the redaction of secrets before anything is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"
# A key naming any of these holds a credential; its value is never recorded.
SECRET_KEY_PARTS = ("secret", "token", "password", "passwd", "key", "credential", "signature")
# Values shaped like a credential are redacted whatever their key is called.
SECRET_VALUE_PREFIXES = ("whsec_",)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change. Built by the API from what it authenticated, never from a header the
    caller sets: today "anonymous" (no API clients yet), later the OAuth2 client id. The request id
    only correlates the entry with logs."""

    name: str
    request_id: str | None = None


SYSTEM = Actor("system")  # jobs no request asked for: the CLI, the demo, sweeps


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    # "..._at" is a time (`previous_secret_expires_at`): naming a secret does not make it one.
    return any(part in lowered for part in SECRET_KEY_PARTS) and not lowered.endswith("_at")


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every credential replaced by REDACTED, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(str(k)) and v is not None else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and value.startswith(SECRET_VALUE_PREFIXES):
        return REDACTED
    return value
