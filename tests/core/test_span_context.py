"""SpanContext's documented lifecycle, checked on the wire and in the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from prefactor_core import PrefactorTelemetryFailureError, SpanContextStack
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory, make_registry
from .support import FAIL_401, PASS, TestTransport, spans_of


def _single_mode(server: LocalServer, **kwargs: Any) -> TestTransport:
    """A transport that hides the server's capabilities: one request per operation."""
    return TestTransport(server.transport, strip_capabilities=True, **kwargs)


async def test_cancel_before_start_posts_pending_then_cancelled(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """cancel() before start() creates the span as pending, then finishes it cancelled."""
    transport = _single_mode(server)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:retrieval") as span:
            await span.cancel()
        await client.flush()
    span_writes = [(a, f) for a, f in transport.writes() if a.startswith("agent_spans")]
    assert [(a, f["status"]) for a, f in span_writes] == [
        ("agent_spans/create", "pending"),
        ("agent_spans/finish", "cancelled"),
    ]
    assert span_writes[0][1]["payload"] == {}
    [row] = await spans_of(server, instance.id)
    assert row["status"] == "cancelled"


async def test_cancel_before_start_is_not_merged_in_bulk(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Even batched, a cancelled-before-start span goes out as pending then cancelled."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:retrieval") as span:
            await span.cancel()
        await client.flush()
        writes = client.test_transport.writes()  # type: ignore[attr-defined]
    statuses = [f["status"] for a, f in writes if a.startswith("agent_spans")]
    assert statuses == ["pending", "cancelled"]


async def test_second_start_is_a_no_op_and_finish_is_idempotent(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """start() twice sends one create; finish calls after the first send nothing."""
    transport = _single_mode(server)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:llm") as span:
            await span.start({"model": "a", "prompt": "1"})
            await span.start({"model": "b", "prompt": "2"})
            await span.complete({"response": "x"})
            await span.fail({"response": "y"})
            await span.finish()
        await client.flush()
    actions = [a for a, _ in transport.writes() if a.startswith("agent_spans")]
    assert actions == ["agent_spans/create", "agent_spans/finish"]
    [row] = await spans_of(server, instance.id)
    assert (row["payload"]["model"], row["status"], row["result_payload"]) == (
        "a",
        "complete",
        {"response": "x"},
    )


async def test_exit_without_calls_starts_and_completes_with_default_payload(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span not started nor finished explicitly starts with its default payload, completes."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:tool", payload={"tool": "calc"}) as span:
            span.set_result({"value": 4})
    [row] = await spans_of(server, instance.id)
    assert (row["status"], row["payload"], row["result_payload"]) == (
        "complete",
        {"tool": "calc"},
        {"value": 4},
    )
    assert row["started_at"] is not None
    assert row["finished_at"] >= row["started_at"]


async def test_exception_in_body_fails_the_span_and_propagates_unchanged(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The user's exception propagates as-is and the span is failed with its type and message."""
    error = KeyError("missing-thing")
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        with pytest.raises(KeyError) as caught:
            async with instance.span("agent:tool") as span:
                await span.start({"tool": "lookup"})
                raise error
    assert caught.value is error
    [row] = await spans_of(server, instance.id)
    assert row["status"] == "failed"
    assert row["result_payload"]["error"] == {"type": "KeyError", "message": "'missing-thing'"}
    assert span.status == "failed"


async def test_cancelled_task_records_the_span_as_cancelled(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span whose task is cancelled is recorded as cancelled."""
    started = asyncio.Event()
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)

        async def work() -> None:
            async with instance.span("agent:step") as span:
                await span.start({})
                started.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(work())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    [row] = await spans_of(server, instance.id)
    assert row["status"] == "cancelled"


async def test_nested_spans_get_their_parent_from_the_stack(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Spans opened inside a span have it as parent; the stack unwinds on exit."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:plan") as outer:
            await outer.start({})
            assert SpanContextStack.peek() == outer.id
            async with instance.span("agent:step") as middle:
                await middle.start({})
                async with instance.span("agent:tool") as inner:
                    await inner.start({})
                    assert SpanContextStack.get_stack() == [outer.id, middle.id, inner.id]
            assert SpanContextStack.peek() == outer.id
        assert SpanContextStack.is_empty()
    parents = {row["id"]: row["parent_span_id"] for row in await spans_of(server, instance.id)}
    assert parents == {outer.id: None, middle.id: outer.id, inner.id: middle.id}


async def test_concurrent_tasks_nest_under_the_right_parents(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Tasks started inside a span are its children, and never each other's parents."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        children: dict[int, tuple[str, str]] = {}
        release = asyncio.Event()

        async def worker(n: int) -> None:
            async with instance.span("agent:step") as step:
                await step.start({"n": n})
                await release.wait()  # every worker's span is open at the same time
                async with instance.span("agent:tool") as tool:
                    await tool.start({"n": n})
                children[n] = (step.id, tool.id)

        async with instance.span("agent:plan") as root:
            await root.start({})
            tasks = [asyncio.create_task(worker(n)) for n in range(10)]
            await asyncio.sleep(0)
            release.set()
            await asyncio.gather(*tasks)
    rows = {row["id"]: row for row in await spans_of(server, instance.id)}
    for step_id, tool_id in children.values():
        assert rows[step_id]["parent_span_id"] == root.id
        assert rows[tool_id]["parent_span_id"] == step_id


async def test_children_started_before_their_parent_reach_the_server_after_it(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Nested spans that start on exit, innermost first, still arrive parent first."""
    transport = _single_mode(server)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with (
            instance.span("agent:plan") as outer,
            instance.span("agent:step") as middle,
            instance.span("agent:tool") as inner,
        ):
            pass
        await client.flush()
    creates = [f["id"] for a, f in transport.writes() if a == "agent_spans/create"]
    assert creates == [outer.id, middle.id, inner.id]
    rows = {row["id"]: row for row in await spans_of(server, instance.id)}
    assert rows[inner.id]["parent_span_id"] == middle.id
    assert all(row["status"] == "complete" for row in rows.values())


async def test_payload_that_is_not_a_dict_raises_but_odd_values_never_do(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A payload that is not a dict raises TypeError at the call; values inside one that
    JSON has no type for become markers instead of raising into the agent."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:llm") as span:
            with pytest.raises(TypeError, match="must be a dict"):
                await span.complete(["not", "a", "dict"])  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="must be a dict"):
                span.set_result(b"bytes")  # type: ignore[arg-type]
            span.set_result({"raw": b"bytes"})
            await span.start({"when": object(), "model": "ok"})
        await client.flush()
        assert client.statistics().unencodable == 1
    [row] = await spans_of(server, instance.id)
    assert row["payload"] == {"when": "<unencodable: object>", "model": "ok"}
    assert row["result_payload"] == {"raw": "bytes"}


async def test_strict_registry_refuses_unknown_span_types(make_client: ClientFactory) -> None:
    """With a strict registry an unknown span type raises ValueError at span()."""
    async with make_client(registry=make_registry(strict=True)) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        with pytest.raises(ValueError, match="agent:unknown"):
            instance.span("agent:unknown")
        async with instance.span("agent:llm") as span:
            await span.start({"model": "m", "prompt": "p"})


async def test_too_long_idempotency_key_raises_before_queueing(make_client: ClientFactory) -> None:
    """The *_with_idempotency_key variants validate the key at the call."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        manager = client.instance_manager
        assert manager is not None
        with pytest.raises(ValueError, match="64"):
            await manager.start_with_idempotency_key(instance.id, "k" * 65)
        with pytest.raises(ValueError, match="empty"):
            await manager.finish_with_idempotency_key(instance.id, "")


async def test_naive_timestamps_are_refused(make_client: ClientFactory) -> None:
    """A datetime without a timezone raises ValueError (the API rejects them)."""
    from datetime import datetime

    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:llm") as span:
            with pytest.raises(ValueError, match="timezone"):
                await span.start({}, started_at=datetime(2026, 1, 1))


async def test_telemetry_failure_raises_at_exit_only_without_another_exception(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """After a permanent failure a span's exit raises it, unless the body already raised."""

    def plan(request: Any, _index: int) -> str:
        return FAIL_401 if request.url.path == "/api/v1/bulk" else PASS

    gate = asyncio.Event()
    transport = TestTransport(server.transport, plan=plan, gate=gate)
    client = make_client(transport=transport, startup_timeout=0.0)
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    calm = instance.span("agent:step")
    await calm.__aenter__()
    with pytest.raises(ZeroDivisionError):
        async with instance.span("agent:step"):
            gate.set()
            await client.flush(timeout=10)  # the register is refused: telemetry fails for good
            raise ZeroDivisionError
    with pytest.raises(PrefactorTelemetryFailureError) as caught:
        await calm.__aexit__(None, None, None)
    assert caught.value.operation_type == "REGISTER_AGENT_INSTANCE"
    assert caught.value.dropped_operations >= 1
    with pytest.raises(PrefactorTelemetryFailureError):
        instance.span("agent:step")
    await client.close()  # the error was seen already: close does not raise it again


async def test_cancel_before_start_keeps_the_spans_payload(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span given a payload and cancelled before it starts is stored with that payload."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:retrieval", payload={"query": "skipped"}) as span:
            await span.cancel()
    [row] = await spans_of(server, instance.id)
    assert (row["status"], row["payload"]) == ("cancelled", {"query": "skipped"})
