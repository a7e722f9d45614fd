"""Finding connectors: every `crossdock.connectors` entry point named `channel.<type>` is the
connector class of that channel type, `node.<kind>` a node connector (a warehouse system or 3PL),
`carrier.<name>` a carrier connector and `feed.<name>` a disruption feed (weather alerts). Crossdock's
own are registered in its pyproject.toml; a separate package registers more the same way:

    [project.entry-points."crossdock.connectors"]
    "channel.etsy" = "crossdock_etsy:EtsyConnector"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from crossdock.connectors.sdk import CarrierConnector, ChannelConnector, FeedConnector, NodeConnector

GROUP = "crossdock.connectors"


@cache
def channel_connectors() -> dict[str, type[ChannelConnector]]:
    """Channel type -> connector class, for every installed connector."""
    return _named("channel")


@cache
def carrier_connectors() -> dict[str, type[CarrierConnector]]:
    """Carrier name -> connector class, for every installed carrier connector."""
    return _named("carrier")


@cache
def node_connectors() -> dict[str, type[NodeConnector]]:
    """Node connector kind -> class (warehouse systems and 3PLs), for every installed one."""
    return _named("node")


@cache
def feed_connectors() -> dict[str, type[FeedConnector]]:
    """Feed name -> connector class (disruption feeds such as weather alerts), for every installed one."""
    return _named("feed")


def _named(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        prefix, _, name = ep.name.partition(".")
        if prefix == kind and name:
            found[name] = ep.load()
    return found


def channel_connector(kind: str) -> type[ChannelConnector]:
    try:
        return channel_connectors()[kind]
    except KeyError:
        raise LookupError(f"no connector for channel type {kind!r} is installed") from None
