"""Node connectors: the warehouse systems and 3PLs behind Crossdock's nodes."""
