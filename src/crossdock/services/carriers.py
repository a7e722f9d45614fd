"""Carrier accounts: kept with their connector's settings, shown with secrets masked, and turned into
a working carrier connector (`connector_for`) for rates and for checking their tracking webhooks.

Built-in connectors take their settings as keyword arguments of their own; `connector_for` maps an
account's `config` onto them:

- `easypost`: `api_key` (required), `webhook_secret`, `api_url`;
- `shippo`: `api_key` (required), `webhook_token`, `webhook_hmac_secret`, `api_url`;
- `ratecard`: no settings (the bundled US rate card).

A carrier connector from another package is built by its `from_config(config, http)` class method,
when it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import httpx

from crossdock.connectors.carriers.easypost import EasyPostCarrier
from crossdock.connectors.carriers.ratecard import RateCardCarrier
from crossdock.connectors.carriers.shippo import ShippoCarrier
from crossdock.connectors.registry import carrier_connectors
from crossdock.connectors.sdk import CarrierConnector, ConfigError
from crossdock.domain.carrier import MASK, CarrierAccount, is_secret, masked
from crossdock.domain.errors import InvalidRequest, NotFound
from crossdock.services.ports import UnitOfWork


def _text(account: CarrierAccount, key: str, *, required: bool = False) -> str:
    value = account.config.get(key, "")
    if not isinstance(value, str) or (required and not value):
        need = "a non-empty" if required else "a"
        raise ConfigError(f"carrier {account.carrier_id!r}: config {key!r} must be {need} string")
    return value


def _known_keys(account: CarrierAccount, allowed: set[str]) -> None:
    """A misspelt setting would silently leave a webhook unverifiable: refuse it."""
    unknown = sorted(set(account.config) - allowed)
    if unknown:
        raise ConfigError(
            f"carrier {account.carrier_id!r}: config keys {', '.join(map(repr, unknown))} are not used"
            f" by {account.type} (it takes {', '.join(sorted(allowed)) or 'none'})"
        )


def _easypost(account: CarrierAccount, http: httpx.AsyncClient) -> CarrierConnector:
    _known_keys(account, {"api_key", "webhook_secret", "api_url"})
    return EasyPostCarrier(
        _text(account, "api_key", required=True),
        http,
        webhook_secret=_text(account, "webhook_secret"),
        api_base=_text(account, "api_url") or "https://api.easypost.com",
    )


def _shippo(account: CarrierAccount, http: httpx.AsyncClient) -> CarrierConnector:
    _known_keys(account, {"api_key", "webhook_token", "webhook_hmac_secret", "api_url"})
    return ShippoCarrier(
        _text(account, "api_key", required=True),
        http,
        webhook_token=_text(account, "webhook_token"),
        webhook_hmac_secret=_text(account, "webhook_hmac_secret"),
        api_url=_text(account, "api_url") or "https://api.goshippo.com",
    )


def _ratecard(account: CarrierAccount, http: httpx.AsyncClient) -> CarrierConnector:
    _known_keys(account, set())
    return RateCardCarrier()


# By class, not by kind: a package that registers its own class under a built-in kind is built its
# own way.
BUILDERS: dict[type, Callable[[CarrierAccount, httpx.AsyncClient], CarrierConnector]] = {
    EasyPostCarrier: _easypost,
    ShippoCarrier: _shippo,
    RateCardCarrier: _ratecard,
}


def connector_for(account: CarrierAccount, http: httpx.AsyncClient) -> CarrierConnector:
    """The carrier connector of an account; ConfigError when none is installed for its type or its
    settings do not fit."""
    kind = carrier_connectors().get(account.type)
    if kind is None:
        known = ", ".join(sorted(carrier_connectors()))
        raise ConfigError(f"no carrier connector {account.type!r} is installed ({known})")
    from_config = getattr(kind, "from_config", None)
    if callable(from_config):
        built: CarrierConnector = from_config(account.config, http)
        return built
    builder = BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(f"carrier connector {account.type!r} has no from_config(config, http) to build it with")
    return builder(account, http)


class CarrierStore(Protocol):
    """Where carrier accounts are kept (the SQL unit of work)."""

    def put_carrier(self, account: CarrierAccount) -> bool: ...
    def get_carrier(self, carrier_id: str) -> CarrierAccount | None: ...
    def carrier_accounts(self) -> list[CarrierAccount]: ...


def check_account(account: CarrierAccount, http: httpx.AsyncClient) -> None:
    """Refuses an account whose connector is not installed or cannot be built from its settings."""
    try:
        connector_for(account, http)
    except ConfigError as exc:
        field = "type" if account.type not in carrier_connectors() else "config"
        raise InvalidRequest(str(exc), field=field) from None


def carrier_view(account: CarrierAccount) -> dict[str, Any]:
    return {
        "carrier_id": account.carrier_id,
        "type": account.type,
        "name": account.name,
        "config": masked(account.config),
    }


def put_carrier(uow: UnitOfWork, account: CarrierAccount) -> tuple[CarrierAccount, bool]:
    """Creates or replaces the account; returns it as kept and whether it is new. A secret sent back
    masked, as GET shows it, keeps its stored value: a client can PUT back what it read."""
    store = cast(CarrierStore, uow)
    before = store.get_carrier(account.carrier_id)
    if before is not None:
        config = {
            k: before.config[k] if v == MASK and is_secret(k) and k in before.config else v
            for k, v in account.config.items()
        }
        account = CarrierAccount(account.carrier_id, account.type, account.name, config)
    return account, store.put_carrier(account)


def get_carrier(uow: UnitOfWork, carrier_id: str) -> CarrierAccount:
    found = cast(CarrierStore, uow).get_carrier(carrier_id)
    if found is None:
        raise NotFound(f"no carrier {carrier_id}")
    return found


def list_carriers(uow: UnitOfWork) -> list[CarrierAccount]:
    return cast(CarrierStore, uow).carrier_accounts()
