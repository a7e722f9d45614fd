"""Pure domain model: no I/O, no frameworks, nothing else from crossdock."""
