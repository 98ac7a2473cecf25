"""Two server processes' worth of apps on one PostgreSQL database, racing on purpose.

Each ``LocalServer`` has its own connection pool, exactly as a separate ``prefactor
serve`` process would; requests go to both at the same time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from prefactor_server.testing import LocalServer

from .conftest import SCHEMA

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

TOKEN = "race-token-0123456789"


@pytest.fixture(name="pair")
async def fixture_pair(postgres_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two apps on the same database (started together), with a client each."""
    # Built in two threads at once, as two processes would start: create_app builds one
    # app's routes at a time (pydantic completes schemas lazily, not thread-safely).
    servers = await asyncio.gather(
        *(asyncio.to_thread(LocalServer, postgres_url, token=TOKEN) for _ in range(2))
    )
    clients = [server.client() for server in servers]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        for server in servers:
            await server.aclose()


async def _register(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/v1/agent_instance/register",
        json={
            "agent_id": "racer",
            "agent_version": {"name": "Racer", "external_identifier": "v1"},
            "agent_schema_version": SCHEMA,
        },
    )
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["details"]["id"]
    return instance_id


async def test_start_and_finish_at_two_processes_end_complete(
    pair: list[httpx.AsyncClient],
) -> None:
    """Start at one process and finish at the other, at once: every instance ends
    complete, and whichever came second answers 409 or succeeds, never both 409."""
    a, b = pair
    instances = [await _register(a) for _ in range(12)]

    async def race(instance_id: str, flip: bool) -> tuple[int, int]:
        starter, finisher = (b, a) if flip else (a, b)
        start, finish = await asyncio.gather(
            starter.post(f"/api/v1/agent_instance/{instance_id}/start", json={}),
            finisher.post(f"/api/v1/agent_instance/{instance_id}/finish", json={}),
        )
        return start.status_code, finish.status_code

    codes = await asyncio.gather(*(race(i, n % 2 == 1) for n, i in enumerate(instances)))
    assert all(finish == 200 for _, finish in codes)
    assert all(start in (200, 409) for start, _ in codes)
    for instance_id in instances:
        response = await b.get(f"/api/v1/agent_instance/{instance_id}")
        assert response.json()["details"]["status"] == "complete"


async def test_replayed_bulk_at_two_processes_runs_once(pair: list[httpx.AsyncClient]) -> None:
    """The same bulk request sent to both processes at once: identical answers, each span
    stored once."""
    a, b = pair
    instance_id = await _register(a)
    items: list[dict[str, Any]] = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"key-{n:04d}-{uuid.uuid4().hex[:8]}",
            "details": {
                "id": f"span-{n:04d}",
                "agent_instance_id": instance_id,
                "schema_name": "agent:retrieval",
                "status": "complete",
                "payload": {"n": n},
            },
        }
        for n in range(200)
    ]
    first, second = await asyncio.gather(
        a.post("/api/v1/bulk", json={"items": items}),
        b.post("/api/v1/bulk", json={"items": items}),
    )
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["outputs"] == second.json()["outputs"]
    listed = await a.get(
        "/api/v1/agent_spans",
        params={"agent_instance_id": instance_id, "pagination[page_size]": 100},
    )
    assert listed.json()["pagination"]["item_count"] == 200


async def test_parent_and_child_at_two_processes_are_adopted(
    pair: list[httpx.AsyncClient],
) -> None:
    """A child and its parent stored at two processes at once: the child is not left
    orphaned, whichever commits first."""
    a, b = pair
    instance_id = await _register(a)

    async def span(client: httpx.AsyncClient, span_id: str, parent: str | None) -> None:
        details = {
            "id": span_id,
            "agent_instance_id": instance_id,
            "schema_name": "agent:retrieval",
            "status": "active",
            "payload": {},
            "parent_span_id": parent,
        }
        response = await client.post("/api/v1/agent_spans", json={"details": details})
        assert response.status_code == 201, response.text

    await asyncio.gather(
        *(
            coroutine
            for n in range(10)
            for coroutine in (span(a, f"child-{n}", f"parent-{n}"), span(b, f"parent-{n}", None))
        )
    )
    for n in range(10):
        child = (await b.get(f"/api/v1/agent_spans/{f'child-{n}'}")).json()
        assert child["details"]["parent_span_id"] == f"parent-{n}"
        assert child["details"]["orphaned"] is False
    listed = await a.get(
        "/api/v1/agent_spans",
        params={"agent_instance_id": instance_id, "pagination[page_size]": 100},
    )
    assert listed.json()["pagination"]["item_count"] == 20


async def test_one_trace_exported_to_two_processes_at_once(
    pair: list[httpx.AsyncClient],
) -> None:
    """OTLP: every span of one new trace sent as its own export, alternately to both
    processes, all at once: one instance, every span stored, the trace complete."""
    from tests.otel.support import otlp_json, record_trace

    spans = record_trace()
    assert len(spans) >= 3

    async def export(n: int) -> dict[str, Any]:
        response = await pair[n % 2].post(
            "/v1/traces",
            content=otlp_json([spans[n]]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    answers = await asyncio.gather(*(export(n) for n in range(len(spans))))
    assert not any(answer.get("partialSuccess", {}).get("rejectedSpans") for answer in answers)
    listed = await pair[0].get("/api/v1/agent_instance", params={"pagination[page_size]": 100})
    instances = listed.json()["summaries"]
    assert len(instances) == 1, instances
    instance = await pair[1].get(f"/api/v1/agent_instance/{instances[0]['id']}")
    details = instance.json()["details"]
    assert details["status"] == "complete"
    stored = await pair[1].get(
        "/api/v1/agent_spans",
        params={"agent_instance_id": instances[0]["id"], "pagination[page_size]": 100},
    )
    assert stored.json()["pagination"]["item_count"] == len(spans)
