"""The HTTP API: FastAPI app, routers per resource, RFC 9457 errors, idempotent writes."""
