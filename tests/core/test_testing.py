"""prefactor_core.testing: capture what instrumented code recorded, in memory."""

from __future__ import annotations

import httpx
import pytest

from prefactor_core import PrefactorCoreClient
from prefactor_core.testing import InMemoryApi, capture_spans


async def _agent(client: PrefactorCoreClient, *, fail: bool = False) -> str:
    """A small instrumented agent: a plan with an LLM call and a tool call."""
    async with client.create_agent_instance(agent_id="agent", agent_version={"name": "A"}) as run:
        await run.start()
        async with run.span("agent:plan") as plan:
            await plan.start({"goal": "answer"})
            async with run.span("agent:llm") as llm:
                await llm.start({"model": "gpt-4"})
                await llm.complete({"response": "hi"})
            async with run.span("agent:tool", payload={"tool": "search"}):
                if fail:
                    raise RuntimeError("tool broke")
        return str(run.id)


@pytest.mark.parametrize("bulk", [True, False])
async def test_capture_records_spans_with_parents_and_results(bulk: bool) -> None:
    """The captured spans carry statuses, payloads, results and parent links."""
    async with capture_spans(bulk=bulk) as captured:
        instance_id = await _agent(captured.client)
    [plan] = captured.spans_named("agent:plan")
    [llm] = captured.spans_named("agent:llm")
    [tool] = captured.spans_named("agent:tool")
    assert [span.status for span in (plan, llm, tool)] == ["complete"] * 3
    assert {span.id for span in captured.children(plan.id)} == {llm.id, tool.id}
    assert (llm.payload, llm.result_payload) == ({"model": "gpt-4"}, {"response": "hi"})
    assert tool.payload == {"tool": "search"}
    [instance] = captured.instances
    assert (instance.id, instance.status, instance.agent_id) == (instance_id, "complete", "agent")
    paths = {path for _, path in captured.api.requests}
    assert ("/api/v1/bulk" in paths) is bulk


async def test_capture_records_a_failure() -> None:
    """A span whose block raised is captured as failed with the error, and so is the run."""
    with pytest.raises(RuntimeError):
        async with capture_spans() as captured:
            await _agent(captured.client, fail=True)
    [tool] = captured.spans_named("agent:tool")
    assert tool.status == "failed"
    assert tool.result_payload == {"error": {"type": "RuntimeError", "message": "tool broke"}}
    assert captured.instances[0].status == "failed"


async def test_flush_makes_records_visible_inside_the_block() -> None:
    """flush() delivers what is queued so far while the client stays open."""
    async with capture_spans() as captured:
        run = await captured.client.create_agent_instance(agent_id="a", agent_version={"name": "A"})
        async with run.span("agent:step") as step:
            await step.start({})
        assert captured.spans == []  # queued, not yet delivered
        assert await captured.flush()
        assert [span.id for span in captured.spans] == [step.id]


def test_in_memory_api_applies_a_repeated_key_once() -> None:
    """A replayed idempotency key is answered but not applied twice."""
    api = InMemoryApi()
    client = httpx.Client(transport=api.transport, base_url="http://prefactor.test")
    create = {
        "details": {
            "id": "s1",
            "agent_instance_id": "i1",
            "schema_name": "x",
            "status": "active",
            "idempotency_key": "key-0001",
        }
    }
    finish = {"status": "complete", "idempotency_key": "key-0002"}
    assert client.post("/api/v1/agent_spans", json=create).status_code == 200
    assert client.post("/api/v1/agent_spans/s1/finish", json=finish).status_code == 200
    assert client.post("/api/v1/agent_spans", json=create).status_code == 200  # a retry
    assert [(s.id, s.status) for s in api.spans.values()] == [("s1", "complete")]


async def test_span_payload_is_taken_at_the_call() -> None:
    """A payload given to span() is recorded as it was then, even if mutated before start."""
    params = {"query": "before"}
    async with capture_spans() as captured:
        run = await captured.client.create_agent_instance(agent_id="a", agent_version={"name": "A"})
        async with run.span("agent:retrieval", payload=params):
            params["query"] = "after"
    [span] = captured.spans
    assert span.payload == {"query": "before"}
