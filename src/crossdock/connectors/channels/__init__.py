"""The built-in sales-channel connectors (registered as `crossdock.connectors` entry points)."""
