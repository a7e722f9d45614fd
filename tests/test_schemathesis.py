"""Property-based API conformance: schemathesis generates requests for every operation of the
OpenAPI document and checks that the in-process app (its lifespan run, a fresh SQLite file) never
answers 5xx and always answers what the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode, checks  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from crossdock.api.app import create_app  # noqa: E402
from crossdock.config import Settings  # noqa: E402
from crossdock.domain.clients import SCOPES  # noqa: E402
from crossdock.provisioning import create_client, mint_token  # noqa: E402

# No server error, and status, content type, headers and body as declared. Checks that judge the
# server's business answers (e.g. positive_data_acceptance expects 2xx for any valid body, but a
# valid order for an unknown channel is rightly 422) are left out.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,  # bad input gets a 4xx problem, never a 2xx
]
# Operations that accept some input their schema refuses, each with why; remove an entry once fixed.
EXAMPLES = 40  # per operation: enough to find odd input, bounded for CI on 2 cores
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _short_wait(case: Any) -> bool:
    wait = (case.query or {}).get("wait")
    if wait is None:
        return True
    try:
        return float(wait) < 0.5
    except (TypeError, ValueError):  # not a number: refused at once
        return True


@pytest.fixture
def token(tmp_path: Path) -> str:
    """A bearer token of an administrator (who may call every operation), at any rate."""
    url = f"sqlite:///{tmp_path / 'crossdock.db'}"
    unlimited = {scope: "1000000/second" for scope in SCOPES}
    client, _ = create_client(url, "schemathesis", "admin", rate_limits=unlimited)
    return mint_token(url, client.client_id, Settings(database_url=url))


@pytest.fixture
def schema(tmp_path: Path, token: str) -> Iterator[Any]:
    # No rate limit on token requests either: a 429 that depends on timing would make the runs differ.
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'crossdock.db'}", relay=False, rate_limits="oauth:token=1000000/second"
    )
    app = create_app(settings)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)  # its lifespan runs on the first call

    @loaded.auth()
    class Bearer:
        def get(self, case: Any, ctx: Any) -> str:
            return token

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    try:
        yield loaded
    finally:
        asgi.shutdown_lifespans()


def _conformance_test(strategy: Any, wanted: list[Any], statuses: list[tuple[str, int]]) -> Any:
    @FAST
    @given(case=strategy)
    def check(case: Any) -> None:
        statuses.append((case.operation.label, case.call_and_validate(checks=wanted).status_code))

    return check


def test_every_operation_conforms(schema: Any) -> None:
    failures: list[str] = []
    statuses: list[tuple[str, int]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the document has no operations"
    for operation in operations:
        # The long poll would spend its whole `wait` on every example.
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
        if operation.label == "GET /v1/events":
            strategy = strategy.filter(_short_wait)

        check = _conformance_test(strategy, CHECKS, statuses)
        try:
            check()
        except Exception as exc:  # collected so one run lists every failing operation
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # Authenticated as an administrator, the examples reach the operations, not the door (only the
    # token endpoint refuses the made-up client credentials).
    at_the_door = [(op, s) for op, s in statuses if s in (401, 403, 429) and op != "POST /oauth/token"]
    assert not at_the_door, at_the_door[:5]
    assert len({op for op, s in statuses if 200 <= s < 300}) >= 15


def test_stateful_links(schema: Any) -> None:
    machine = schema.as_state_machine()

    calls: list[str] = []

    class Machine(machine):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            if case.operation.label == "GET /v1/events" and case.query:
                case.query.pop("wait", None)  # a long poll spends its whole wait on an empty feed

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            calls.append(f"{case.operation.label} {response.status_code}")
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # Links were followed: some calls after the first step reached an object a previous one made.
    assert len(calls) >= 25
    assert any(c.startswith(("GET /v1/orders/{order_id} 200", "POST /v1/reservations/{reservation_id}")) for c in calls)
