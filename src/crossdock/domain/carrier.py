"""Carrier accounts: a carrier or carrier aggregator (EasyPost, Shippo, a rate card) Crossdock talks
to with the merchant's own credentials, and what secrets in its settings look like."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A setting whose name holds one of these is a secret: shown masked, never echoed back.
SECRET_WORDS = ("secret", "key", "token", "password")
MASK = "********"


@dataclass(frozen=True, slots=True)
class CarrierAccount:
    carrier_id: str
    type: str  # the carrier connector's kind: "easypost", "shippo", "ratecard", ...
    name: str
    config: Mapping[str, Any] = field(default_factory=dict)


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with every secret's value replaced by a mask (nested settings too)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if is_secret(key):
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = masked(value)
        else:
            out[key] = value
    return out
