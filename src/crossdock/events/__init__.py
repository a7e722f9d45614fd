"""Events out: the CloudEvents envelope (the relay and sinks build on it)."""
