"""The delivery engine: order, batching, retries without duplicates, failure, bounds."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx
import pytest

from prefactor_core import PrefactorCoreClient, PrefactorTelemetryFailureError
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import (
    CONNECT_ERROR,
    FAIL_401,
    FAIL_429,
    FAIL_503,
    LOSE_RESPONSE,
    PASS,
    TIMEOUT,
    TestTransport,
    read_one,
    spans_of,
)


async def _run_agent(
    client: PrefactorCoreClient, *, tasks: int, spans_per_task: int
) -> tuple[str, list[str]]:
    """One instance with concurrent tasks, each making spans with a nested child."""
    instance = await client.create_agent_instance(agent_id="load", agent_version=AGENT_VERSION)
    await instance.start()
    ids: list[str] = []

    async def worker(n: int) -> None:
        for i in range(spans_per_task):
            async with instance.span("agent:step") as step:
                await step.start({"task": n, "i": i})
                async with instance.span("agent:tool") as tool:
                    await tool.start({"task": n})
                    await asyncio.sleep(0)
                    await tool.complete({"ok": True})
                ids.extend((step.id, tool.id))

    await asyncio.gather(*(worker(n) for n in range(tasks)))
    await instance.finish()
    return instance.id, ids


def _check_causal_order(writes: list[tuple[str, dict[str, Any]]], instance_id: str) -> None:
    """Register, then start, then for every span create before finish and parent before child."""
    first_seen: dict[tuple[str, str], int] = {}
    for position, (action, fields) in enumerate(writes):
        key = fields.get("agent_span_id") or fields.get("id") or fields.get("agent_instance_id")
        first_seen.setdefault((action, str(key)), position)
    # Against an API that announces no id partition, the first register is made without
    # a client id (the SDK learns the partition from the id the server gives it).
    register = first_seen.get(("agent_instances/register", instance_id))
    if register is None:
        register = first_seen[("agent_instances/register", "None")]
    start = first_seen[("agent_instances/start", instance_id)]
    assert register < start
    for (action, key), position in first_seen.items():
        if action != "agent_spans/create":
            continue
        assert start < position
        finish = first_seen.get(("agent_spans/finish", key))
        if finish is not None:
            assert position < finish, f"span {key} finished before it was created"
    for action, fields in writes:
        if action == "agent_spans/create" and fields.get("parent_span_id"):
            child = first_seen[(action, fields["id"])]
            parent = first_seen[(action, fields["parent_span_id"])]
            assert parent < child, "a child was created before its parent"


async def test_order_is_causal_under_concurrency_in_bulk(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Many concurrent tasks with nested spans: everything stored, in causal order, in batches."""
    async with make_client() as client:
        instance_id, ids = await _run_agent(client, tasks=20, spans_per_task=10)
    # Read what the server received once the client is closed (everything is sent).
    writes = client.test_transport.writes()  # type: ignore[attr-defined]
    paths = client.test_transport.paths()  # type: ignore[attr-defined]
    _check_causal_order(writes, instance_id)
    assert "/api/v1/bulk" in paths
    assert paths.count("/api/v1/bulk") < 50  # 800 operations went out in batches
    rows = await spans_of(server, instance_id)
    assert sorted(row["id"] for row in rows) == sorted(ids)
    assert all(row["status"] == "complete" for row in rows)


async def test_order_is_causal_one_request_at_a_time(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Against an API without bulk, single requests keep the same causal order."""
    transport = TestTransport(server.transport, strip_capabilities=True)
    async with make_client(transport=transport) as client:
        instance_id, ids = await _run_agent(client, tasks=5, spans_per_task=4)
    _check_causal_order(transport.writes(), instance_id)
    assert "/api/v1/bulk" not in transport.paths()
    assert len(await spans_of(server, instance_id)) == len(ids)


async def test_instances_proceed_concurrently(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Operations of different instances are in flight at the same time (one request each)."""
    gate = asyncio.Event()
    transport = TestTransport(server.transport, strip_capabilities=True, gate=gate)
    client = make_client(transport=transport, num_workers=3, startup_timeout=0.0)
    await client.initialize()
    gate.set()
    await client.flush()
    gate.clear()
    transport.requests.clear()
    for n in range(3):
        await client.create_agent_instance(agent_id=f"a{n}", agent_version=AGENT_VERSION)
    async with asyncio.timeout(10):
        while len(transport.requests) < 3:
            transport.arrived.clear()
            await transport.arrived.wait()
    assert {r.path for r in transport.requests} == {"/api/v1/agent_instance/register"}
    gate.set()
    await client.close()


async def test_create_and_finish_in_one_batch_are_merged(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span whose create and finish wait together goes out as one terminal create."""
    gate = asyncio.Event()
    transport = TestTransport(server.transport, gate=gate)
    client = make_client(transport=transport, startup_timeout=0.0)
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    async with instance.span("agent:llm") as span:
        await span.start({"model": "m", "prompt": "p"})
        await span.complete({"response": "r"})
    gate.set()
    await client.close()
    span_writes = [(a, f) for a, f in transport.writes() if a.startswith("agent_spans")]
    assert len(span_writes) == 1
    action, fields = span_writes[0]
    assert action == "agent_spans/create"
    assert (fields["status"], fields["result_payload"]) == ("complete", {"response": "r"})
    assert fields["started_at"] <= fields["finished_at"]
    row = await read_one(server, f"/api/v1/agent_spans/{span.id}")
    assert (row["status"], row["summary"]) == ("complete", "m: p → r")


@pytest.mark.parametrize("fault", [FAIL_503, FAIL_429, CONNECT_ERROR, TIMEOUT, LOSE_RESPONSE])
async def test_transient_faults_lose_nothing_and_duplicate_nothing(
    make_client: ClientFactory, server: LocalServer, fault: str
) -> None:
    """With 40% of requests failing (or answered and then lost), every span is stored once."""
    rng = random.Random(7)

    def plan(request: httpx.Request, _index: int) -> str:
        if request.url.path == "/api/v1/ping":
            return PASS
        return fault if rng.random() < 0.4 else PASS

    transport = TestTransport(server.transport, plan=plan)
    async with make_client(transport=transport, batch_size=20) as client:
        instance_id, ids = await _run_agent(client, tasks=8, spans_per_task=10)
        assert await client.flush(timeout=30)
        stats = client.statistics()
    rows = await spans_of(server, instance_id)
    stored = [row["id"] for row in rows]
    assert len(stored) == len(set(stored)), "a span was stored twice"
    assert sorted(stored) == sorted(ids)
    assert all(row["status"] == "complete" for row in rows)
    assert stats.retried > 0
    assert stats.dropped == 0
    assert any(r.outcome == fault for r in transport.requests)
    instance = await read_one(server, f"/api/v1/agent_instance/{instance_id}")
    assert instance["status"] == "complete"


async def test_permanent_failure_latches_and_counts_drops(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 mid-run latches the telemetry failure; later calls raise it; drops are counted."""
    state = {"revoked": False}

    def plan(request: httpx.Request, _index: int) -> str:
        return FAIL_401 if state["revoked"] and request.url.path != "/api/v1/ping" else PASS

    transport = TestTransport(server.transport, plan=plan)
    client = make_client(transport=transport)
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    async with instance.span("agent:step") as first:
        await first.start({})
    assert await client.flush(timeout=10)
    state["revoked"] = True
    with caplog.at_level(logging.ERROR, logger="prefactor_core"):
        async with instance.span("agent:step") as second:
            await second.start({})
        await client.flush(timeout=10)
    with pytest.raises(PrefactorTelemetryFailureError) as caught:
        await instance.finish()
    failure = caught.value
    assert failure.cause is not None
    assert failure.operation_type in {"CREATE_SPAN", "FINISH_SPAN"}
    assert failure.dropped_operations >= 2  # the batch that failed, and the refused finish
    assert client.statistics().dropped >= 1
    assert "permanently" in caplog.text
    with pytest.raises(PrefactorTelemetryFailureError):
        await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await client.close()
    stored = [row["id"] for row in await spans_of(server, instance.id)]
    assert stored == [first.id]


async def test_close_raises_an_unseen_telemetry_failure(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """close() raises the latched failure when the agent never saw it."""

    def plan(request: httpx.Request, _index: int) -> str:
        return FAIL_401 if request.url.path == "/api/v1/bulk" else PASS

    client = make_client(transport=TestTransport(server.transport, plan=plan))
    await client.initialize()
    await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    assert await client.flush(timeout=10)
    with pytest.raises(PrefactorTelemetryFailureError):
        await client.close()


async def test_rejected_token_at_start_latches_without_raising_from_initialize(
    make_client: ClientFactory,
) -> None:
    """A token the API rejects does not crash initialize(); the next call raises the failure."""
    client = make_client(token="wrong-token")
    await client.initialize()
    with pytest.raises(PrefactorTelemetryFailureError) as caught:
        await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    assert "401" in str(caught.value.cause) or "unauthorized" in str(caught.value.cause)
    await client.close()


async def test_full_queue_drops_counts_and_warns_once(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the API stalled and a tiny queue, extra operations are dropped, counted, warned once."""
    gate = asyncio.Event()
    transport = TestTransport(server.transport, gate=gate)
    client = make_client(
        transport=transport,
        startup_timeout=0.0,
        max_queue_size=10,
        put_timeout=0.0,
        batch_size=5,
        num_workers=1,
        close_timeout=0.5,
    )
    await client.initialize()
    with caplog.at_level(logging.WARNING, logger="prefactor_core"):
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        for _ in range(100):
            async with instance.span("agent:step") as span:
                await span.start({})
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1
    assert client.statistics().dropped > 0
    gate.set()
    await client.close()


async def test_close_with_an_api_that_never_answers_returns_and_reports(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """close() gives up after close_timeout and counts what it could not deliver."""
    never = asyncio.Event()
    transport = TestTransport(server.transport, gate=never)
    client = make_client(transport=transport, startup_timeout=0.0, close_timeout=0.2)
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    with caplog.at_level(logging.WARNING, logger="prefactor_core"):
        async with asyncio.timeout(10):
            await client.close()
    assert client.statistics().dropped >= 2
    assert "undelivered" in caplog.text or "did not answer" in caplog.text


async def test_bulk_requests_ask_for_minimal_outputs(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The SDK asks the server for compact, uncompressed bulk answers that leave the plain
    successes out (it only needs each status), the server's answers honour all three, and
    the SDK settles such answers: each operation delivered once, nothing sent again."""
    seen: list[tuple[str | None, str | None, str | None, str | None]] = []

    class PreferTransport(TestTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path == "/api/v1/bulk":
                headers = request.headers
                answer = response.headers.get("content-encoding")
                applied = response.headers.get("preference-applied")
                asked = (headers.get("prefer"), headers.get("accept-encoding"))
                seen.append((*asked, answer, applied))
            return response

    async with make_client(transport=PreferTransport(server.transport)) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        for _ in range(3):
            async with instance.span("agent:step") as span:
                await span.start({})
        await client.flush(10)
        stats = client.statistics()
    assert seen
    both = "return=minimal, omit=success"
    assert set(seen) == {(both, "identity", None, both)}
    assert stats.retried == 0
    assert stats.sent == 1 + 3 * 2  # the register, then each span's create and finish
    assert len(await spans_of(server, instance.id)) == 3


async def test_memory_stays_bounded_while_the_api_is_down(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """With the API unreachable, what is held stops growing once the queue is full: every
    further operation is dropped and counted, none is held or lost uncounted."""
    never = asyncio.Event()
    transport = TestTransport(server.transport, gate=never)
    client = make_client(
        transport=transport,
        startup_timeout=0.0,
        max_queue_size=2_000,
        put_timeout=0.0,
        batch_size=100,
        num_workers=1,
        close_timeout=0.1,
    )
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    held: list[int] = []
    for n in range(1, 5_001):
        async with instance.span("agent:step") as span:
            await span.start({"n": n})
        if n % 500 == 0:
            # Let the background reader run, as an agent's awaits would: it takes a
            # backlog in chunks, one per turn of the loop.
            for _ in range(50):
                await asyncio.sleep(0)
            stats = client.statistics()
            held.append(stats.queued + stats.in_flight)
            # 1 register + 2 operations per span: each is held or counted as dropped.
            assert stats.queued + stats.in_flight + stats.dropped == 1 + 2 * n
    assert held[-1] == held[len(held) // 2], held  # saturated: no growth in the second half
    assert held[-1] < 1 + 2 * 5_000
    await client.close()
