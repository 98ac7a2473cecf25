"""Property-based fuzzing of every endpoint of the server's own OpenAPI document.

schemathesis generates requests for each operation (a bounded number of examples,
derandomized so CI is stable) and sends them to the ASGI app in-process with a valid
token. Every answer must be below 500 and either the JSON error envelope
``{"status": "error", "code", "message"}`` or a JSON success.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from prefactor_core import SchemaRegistry
from prefactor_server.testing import LocalServer

schemathesis = pytest.importorskip("schemathesis")

TOKEN = "fuzz-token-0123456789"
MAX_EXAMPLES = 40


@pytest.fixture(name="server")
def fixture_server(tmp_path: Path) -> Iterator[LocalServer]:
    # One per test: driving the app through ASGI may run its lifespan, whose shutdown
    # closes the storage the app opened.
    server = LocalServer(tmp_path / "fuzz.db", token=TOKEN)
    yield server
    server.close()


def _problem(status: int, content_type: str, text: str, *, otlp: bool = False) -> str | None:
    """What is wrong with one answer, or None (``otlp``: a 2xx of ``POST /v1/traces`` is an
    OTLP ExportTraceServiceResponse, not the API's success envelope)."""
    if status >= 500:
        return f"server error {status}: {text[:300]}"
    if otlp and status < 400 and content_type == "application/x-protobuf":
        return None  # a protobuf export gets a protobuf answer
    if "application/json" not in content_type:
        return f"{status} with content type {content_type!r}: {text[:200]}"
    try:
        body: Any = json.loads(text)
    except ValueError:
        return f"{status} with a body that is not JSON: {text[:200]}"
    if not isinstance(body, dict):
        return f"{status} with a non-object body: {text[:200]}"
    if status >= 400:
        if body.get("status") != "error":
            return f"{status} without status=error: {text[:200]}"
        if not isinstance(body.get("code"), str) or not body["code"]:
            return f"{status} without a code: {text[:200]}"
        if not isinstance(body.get("message"), str) or not body["message"]:
            return f"{status} without a message: {text[:200]}"
    elif not otlp and body.get("status") != "success":
        return f"{status} without status=success: {text[:200]}"
    return None


def _content_type(response: Any) -> str:
    value = response.headers.get("content-type") or response.headers.get("Content-Type") or ""
    return str(value[0] if isinstance(value, list) and value else value)


def _seed(server: LocalServer) -> dict[str, str]:
    """An agent, an instance and a span to aim path parameters at."""
    registry = SchemaRegistry()
    registry.register_type(name="agent:step", params_schema={"type": "object"}, title="Step")
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def make() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as http:
            register = await http.post(
                "/api/v1/agent_instance/register",
                headers=headers,
                json={
                    "agent_id": "fuzz-agent",
                    "agent_version": {"name": "Fuzz"},
                    "agent_schema_version": registry.to_agent_schema_version("fuzz-schema"),
                },
            )
            assert register.status_code == 201, register.text
            instance: str = register.json()["details"]["id"]
            details = {"agent_instance_id": instance, "schema_name": "agent:step"}
            span = await http.post(
                "/api/v1/agent_spans", headers=headers, json={"details": details}
            )
            assert span.status_code == 201, span.text
            return instance, span.json()["details"]["id"]

    instance_id, span_id = asyncio.run(make())
    return {
        "agent_id": "fuzz-agent",
        "instance_id": instance_id,
        "span_id": span_id,
    }


def _operations(server: LocalServer) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", server.app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_endpoint_answers_an_envelope_and_never_500(server: LocalServer) -> None:
    operations = _operations(server)
    assert len(operations) >= 15, [f"{op.method} {op.path}" for op in operations]
    problems: list[str] = []
    calls: dict[str, int] = {}
    statuses: dict[int, int] = {}
    known = _seed(server)

    for operation in operations:
        _fuzz(operation, known, problems, calls, statuses)

    assert all(n > 0 for n in calls.values()), calls
    print(f"fuzzed {sum(calls.values())} requests over {len(calls)} operations: {statuses}")
    assert not problems, "\n".join(problems[:20])


def _fuzz(
    operation: Any,
    known: dict[str, str],
    problems: list[str],
    calls: dict[str, int],
    statuses: dict[int, int],
) -> None:
    """Send MAX_EXAMPLES generated requests for one operation; note what is wrong."""
    name = f"{operation.method.upper()} {operation.path}"
    calls[name] = 0

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(
        case=operation.as_strategy(),
        token_roll=st.integers(0, 7),
        id_roll=st.integers(0, 3),
    )
    def check(case: Any, token_roll: int, id_roll: int) -> None:
        # Mostly the real token, so validation and storage are reached; sometimes
        # whatever the generator made of the bearer scheme.
        headers = None if token_roll == 7 else {"Authorization": f"Bearer {TOKEN}"}
        # Often an id that exists, so the handlers behind the 404 are reached too.
        if id_roll != 3 and case.path_parameters:
            for param in case.path_parameters:
                if param in known:
                    case.path_parameters[param] = known[param]
        response = case.call(headers=headers)
        calls[name] += 1
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        problem = _problem(
            response.status_code,
            _content_type(response),
            response.text,
            otlp=operation.path == "/v1/traces",
        )
        if problem is not None:
            problems.append(f"{name}: {problem} (request: {case.as_curl_command()[:400]})")

    check()


def test_fuzzing_can_fail() -> None:
    """The checker itself: a 500, an HTML page and an envelope without a code are caught."""
    assert _problem(500, "application/json", '{"status":"error"}') is not None
    assert _problem(404, "text/html", "<h1>no</h1>") is not None
    assert _problem(422, "application/json", '{"status":"error","message":"x"}') is not None
    assert _problem(200, "application/json", '{"status":"success"}') is None
    ok = '{"status":"error","code":"not_found","message":"x"}'
    assert _problem(404, "application/json", ok) is None
    assert _problem(200, "application/json", "{}") is not None
    assert _problem(200, "application/json", "{}", otlp=True) is None


def test_schema_lists_every_write_route(server: LocalServer) -> None:
    """The fuzzing reaches the routes that matter: every write route is in the document."""
    documented = {f"{op.method.upper()} {op.path}" for op in _operations(server)}
    expected = {
        "GET /api/v1/ping",
        "POST /api/v1/bulk",
        "POST /api/v1/agent_instance/register",
        "POST /api/v1/agent_instance/{instance_id}/start",
        "POST /api/v1/agent_instance/{instance_id}/finish",
        "POST /api/v1/agent_instance/{instance_id}/record_quality",
        "POST /api/v1/agent_instance/{instance_id}/terminate",
        "POST /api/v1/agent_spans",
        "POST /api/v1/agent_spans/{span_id}/finish",
        "GET /api/v1/agent_spans",
        "GET /api/v1/agent_spans/{span_id}",
        "POST /api/v1/agent",
        "PUT /api/v1/agent/{agent_id}",
        "DELETE /api/v1/agent/{agent_id}",
    }
    assert expected <= documented, expected - documented
