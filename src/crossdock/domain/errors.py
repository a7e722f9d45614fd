"""Domain errors. Each carries a stable `kind`; the API maps kinds to problem types and statuses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    kind = "domain-error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    kind = "not-found"


class UnknownReference(DomainError):
    """The request names a SKU, node or channel that does not exist."""

    kind = "unknown-reference"


class Forbidden(DomainError):
    """The caller is authenticated but may not do this (another channel's data, say)."""

    kind = "forbidden"


class InvalidRequest(DomainError):
    kind = "invalid-request"


class InsufficientStock(DomainError):
    kind = "insufficient-stock"


class InvalidTransition(DomainError):
    """The object is in a state that does not allow the requested change."""

    kind = "invalid-state"


class CompareFailed(DomainError):
    """A compare-and-set stock count found a different quantity than the caller expected."""

    kind = "compare-failed"


class IdempotencyMismatch(DomainError):
    kind = "idempotency-key-reused"


class IdempotencyInFlight(DomainError):
    """A request with the same Idempotency-Key is still running; retry to get its stored answer."""

    kind = "idempotency-key-in-flight"


class Conflict(DomainError):
    """A concurrent change won; the whole request may be retried."""

    kind = "conflict"


class Overloaded(DomainError):
    """Refused before it ran: the write path is saturated. Nothing was applied; try again later."""

    kind = "overloaded"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
