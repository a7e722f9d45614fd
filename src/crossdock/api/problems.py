"""RFC 9457 problem details: one stable `type` URI per kind of error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from crossdock.domain.errors import DomainError, Overloaded

TYPE_BASE = "https://crossdock.dev/problems/"
MEDIA_TYPE = "application/problem+json"

# kind -> (HTTP status, title)
KINDS: dict[str, tuple[int, str]] = {
    "invalid-request": (422, "The request is not valid"),
    "validation-error": (422, "The request body does not match the schema"),
    "malformed-json": (400, "The request body is not valid JSON"),
    "unknown-reference": (422, "The request names something that does not exist"),
    "not-found": (404, "Not found"),
    "insufficient-stock": (409, "Not enough stock"),
    "invalid-state": (409, "The object's state does not allow this"),
    "compare-failed": (409, "The stock count differs from the expected quantity"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used with another request"),
    "conflict": (409, "A concurrent change won; retry"),
    "payload-too-large": (413, "The request body is too large"),
    "method-not-allowed": (405, "Method not allowed"),
    "unsupported-media-type": (415, "Send application/json"),
    "internal-error": (500, "Internal error"),
    "not-ready": (503, "Not ready: a dependency this service needs is not reachable"),
    "unauthorized": (401, "Authentication required: a valid bearer token"),
    "forbidden": (403, "This client may not do this"),
    "rate-limited": (429, "Too many requests from this client: retry after Retry-After seconds"),
    "idempotency-key-in-flight": (409, "A request with this Idempotency-Key is still in progress"),
    # The token endpoint's errors also carry OAuth 2.0's `error` member (RFC 6749 section 5.2).
    "invalid-client": (401, "Client authentication failed"),
    "invalid-token-request": (400, "The token request is not valid"),
    "invalid-signature": (401, "The webhook's signature does not verify"),
    "unprocessable-webhook": (422, "The webhook is signed but cannot be taken in"),
    "channel-misconfigured": (409, "The channel's configuration does not allow this"),
    "channel-unavailable": (503, "The channel's API could not be reached: retry after Retry-After seconds"),
    "overloaded": (503, "Too busy to take this now: nothing was applied; retry after Retry-After seconds"),
}


class Refused(DomainError):
    """A request refused before it does anything (not authenticated, not allowed, over its rate
    limit, a webhook not signed by its channel...). `headers` say why in HTTP's own terms
    (WWW-Authenticate, Retry-After)."""

    def __init__(self, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.kind = kind
        self.headers = headers or {}


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(examples=[TYPE_BASE + "insufficient-stock"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="Field errors, for validation problems")


def problem_response(kind: str, detail: str, instance: str | None = None, **extra: Any) -> Response:
    status, title = KINDS[kind]
    body: dict[str, Any] = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    # Extension members never replace the RFC 9457 ones: an error's extra `status` (an order's state)
    # once overwrote the HTTP status number.
    body.update({k: v for k, v in extra.items() if v is not None and k not in body and k != "instance"})
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE)


def responses(*kinds: str, ok: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the successes (`ok`) and problems an operation can answer with."""
    out: dict[int | str, dict[str, Any]] = dict(ok or {})
    for kind in ("validation-error", "overloaded", *kinds):
        status, title = KINDS[kind]
        entry = out.setdefault(status, {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": ""})
        entry["description"] = "; ".join(filter(None, [entry["description"], f"`{kind}`: {title}"]))
    return out


def domain_problem(exc: DomainError, instance: str) -> Response:
    kind = exc.kind if exc.kind in KINDS else "invalid-request"
    response = problem_response(kind, exc.detail, instance, **_jsonable(exc.extra))
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after)
    response.headers.update(getattr(exc, "headers", {}))
    return response


def validation_problem(raw: Sequence[Any], instance: str, prefix: tuple[str, ...] = ()) -> Response:
    errors = [
        {"location": [*prefix, *e.get("loc", ())], "message": e.get("msg", ""), "type": e.get("type", "")} for e in raw
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response("malformed-json", "the body could not be parsed as JSON", instance)
    where = ".".join(str(p) for p in errors[0]["location"]) if errors else "body"
    detail = f"{where}: {errors[0]['message']}" if errors else "invalid request"
    return problem_response("validation-error", detail, instance, errors=errors)


def internal_problem(instance: str) -> Response:
    structlog.get_logger().exception("unhandled error", path=instance)
    return problem_response("internal-error", "the server failed; the request may be retried", instance)


def problem_for(exc: Exception, instance: str) -> Response:
    """The problem answer for an exception raised outside FastAPI's handlers (the fast lane)."""
    if isinstance(exc, DomainError):
        return domain_problem(exc, instance)
    if isinstance(exc, ValidationError):
        return validation_problem(exc.errors(), instance, ("body",))
    return internal_problem(instance)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        return domain_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(exc.errors(), request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        kind = {
            404: "not-found",
            405: "method-not-allowed",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }
        return problem_response(kind.get(exc.status_code, "invalid-request"), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        return internal_problem(request.url.path)

    _document_problems(app)


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Makes a retry safe: the first response is stored for 24 hours (per client) and replayed"
    " to a repeat with the same body; another body gets 422, a repeat while the first runs gets 409.",
}


def _document_problems(app: FastAPI) -> None:
    """Makes the OpenAPI document say what the server answers. FastAPI files a response `model` under
    the route's media type (application/json) and adds its own 422 schema; here every error is
    `application/problem+json` with the Problem schema. Operations that take a body can also answer
    400 (malformed JSON) and 413 (too large), which no route declares itself."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method == "post":
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
                answers = operation.get("responses", {})
                kinds = ["malformed-json", "payload-too-large"] if "requestBody" in operation else []
                if "security" in operation:
                    kinds += ["unauthorized", "forbidden", "rate-limited"]
                if method == "post":
                    kinds.append("idempotency-key-in-flight")
                for kind in kinds:
                    status, title = KINDS[kind]
                    answer = answers.setdefault(str(status), {"description": ""})
                    answer["description"] = "; ".join(filter(None, [answer["description"], f"`{kind}`: {title}"]))
                for status, answer in answers.items():
                    if status.startswith(("4", "5")):
                        answer["content"] = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _jsonable(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool, list, dict))}
