"""Local fakes of channel and carrier APIs that follow their documented contracts: for tests, the
sync benchmark and the flash-sale demo. Each is an ASGI app; `FakeServer` runs one on loopback."""
