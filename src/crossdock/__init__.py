"""Crossdock: an omnichannel logistics hub."""

__version__ = "0.1.0"
