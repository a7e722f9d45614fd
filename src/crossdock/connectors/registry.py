"""Finding connectors: every `crossdock.connectors` entry point named `channel.<type>` is the
connector class of that channel type. Crossdock's own are registered in its pyproject.toml; a
separate package registers more the same way:

    [project.entry-points."crossdock.connectors"]
    "channel.etsy" = "crossdock_etsy:EtsyConnector"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from crossdock.connectors.sdk import ChannelConnector

GROUP = "crossdock.connectors"


@cache
def channel_connectors() -> dict[str, type[ChannelConnector]]:
    """Channel type -> connector class, for every installed connector."""
    found: dict[str, type[ChannelConnector]] = {}
    for ep in entry_points(group=GROUP):
        kind, _, name = ep.name.partition(".")
        if kind == "channel" and name:
            found[name] = ep.load()
    return found


def channel_connector(kind: str) -> type[ChannelConnector]:
    try:
        return channel_connectors()[kind]
    except KeyError:
        raise LookupError(f"no connector for channel type {kind!r} is installed") from None
