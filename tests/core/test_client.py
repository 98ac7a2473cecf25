"""PrefactorCoreClient against the real server in-process: the documented behaviour."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from prefactor_core import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorCoreClient,
    PrefactorCoreConfig,
    SchemaRegistry,
    SpanNotFoundError,
)
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import TestTransport, read_all, read_one, spans_of


async def test_readme_quick_start_is_stored_and_readable(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The README's quick start runs as written and the server has the whole run."""
    async with make_client() as client:
        instance = await client.create_agent_instance(
            agent_id="my-agent",
            agent_version={"name": "My Agent", "external_identifier": "v1.0.0"},
        )
        await instance.start()
        async with instance.span("agent:llm") as span:
            await span.start({"model": "gpt-4", "prompt": "Hello"})
            await span.complete({"response": "Hi there"})
        await instance.finish()

    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert stored["status"] == "complete"
    assert stored["agent_id"] == "my-agent"
    [row] = await spans_of(server, instance.id)
    assert row["id"] == span.id
    assert row["status"] == "complete"
    assert row["payload"] == {"model": "gpt-4", "prompt": "Hello"}
    assert row["result_payload"] == {"response": "Hi there"}
    assert row["schema_title"] == "LLM Call"
    assert row["summary"] == "gpt-4: Hello → Hi there"


async def test_span_id_is_final_on_enter_and_matches_the_server(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span's id is known when the context is entered and is the id the server stores."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:llm") as span:
            entered_id = span.id
            assert len(entered_id) == 32
            await span.start({"model": "m", "prompt": "p"})
            assert span.id == entered_id
    [row] = await spans_of(server, instance.id)
    assert row["id"] == entered_id


async def test_caller_never_waits_for_the_network(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A whole run is recorded while every request to the API is held back."""
    gate = asyncio.Event()
    transport = TestTransport(server.transport, gate=gate)
    client = make_client(transport=transport, startup_timeout=0.0)
    await client.initialize()
    async with asyncio.timeout(5):
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        for _ in range(20):
            async with instance.span("agent:llm") as span:
                await span.start({"model": "m", "prompt": "p"})
                await span.complete({"response": "r"})
        await instance.finish()
    assert client.statistics().sent == 0
    gate.set()
    assert await client.flush(timeout=10)
    await client.close()
    assert len(await spans_of(server, instance.id)) == 20


async def test_initialize_twice_and_use_before_initialize_raise(make_client: ClientFactory) -> None:
    """Lifecycle misuse raises the documented errors."""
    client = make_client()
    with pytest.raises(ClientNotInitializedError):
        await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    with pytest.raises(ClientNotInitializedError):
        client.span("i", "agent:llm")
    await client.initialize()
    with pytest.raises(ClientAlreadyInitializedError):
        await client.initialize()
    await client.close()
    with pytest.raises(ClientNotInitializedError):
        await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)


async def test_registry_schemas_are_used_when_none_is_given(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Without agent_schema_version the registry's span types are registered (titles show)."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:tool") as span:
            await span.start({"tool": "search"})
    [row] = await spans_of(server, instance.id)
    assert row["schema_title"] == "agent:tool"


async def test_no_schema_version_and_no_registry_is_a_value_error(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_agent_instance raises ValueError when it has no schema at all."""
    # No @trace span types either (other test modules declare some at import).
    monkeypatch.setattr("prefactor_core._traced_types._DECLARED", {})
    async with make_client(registry=None) as client:
        with pytest.raises(ValueError, match="schema_registry"):
            await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        explicit = await client.create_agent_instance(
            agent_id="a",
            agent_version=AGENT_VERSION,
            agent_schema_version={"external_identifier": "explicit", "span_schemas": {}},
        )
        assert explicit.id


async def test_create_agent_instance_as_context_manager_finishes_the_run(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """``async with client.create_agent_instance(...)`` finishes as failed when the block raises."""
    async with make_client() as client:
        with pytest.raises(RuntimeError, match="boom"):
            async with client.create_agent_instance(
                agent_id="a", agent_version=AGENT_VERSION
            ) as run:
                await run.start()
                raise RuntimeError("boom")
        async with client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION) as ok:
            await ok.start()
    assert (await read_one(server, f"/api/v1/agent_instance/{run.id}"))["status"] == "failed"
    assert (await read_one(server, f"/api/v1/agent_instance/{ok.id}"))["status"] == "complete"


async def test_instance_start_twice_and_finish_twice_are_no_ops(make_client: ClientFactory) -> None:
    """A second start() and a second finish() queue nothing."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        await instance.start()
        await instance.finish("failed")
        await instance.finish("complete")
        await client.flush()
        actions = [action for action, _ in client.test_transport.writes()]  # type: ignore[attr-defined]
    assert actions.count("agent_instances/start") == 1
    assert actions.count("agent_instances/finish") == 1


async def test_instance_finish_rejects_a_bad_status(make_client: ClientFactory) -> None:
    """finish() with a status outside complete/failed/cancelled raises ValueError."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        with pytest.raises(ValueError, match="status"):
            await instance.finish("done")  # type: ignore[arg-type]


async def test_create_span_and_finish_span(make_client: ClientFactory, server: LocalServer) -> None:
    """create_span() opens a span that finish_span() completes, with payload and result."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        span_id = await instance.create_span("agent:tool", payload={"q": 1})
        await instance.finish_span(span_id, result_payload={"a": 2})
        with pytest.raises(SpanNotFoundError):
            await instance.finish_span(span_id)
    [row] = await spans_of(server, instance.id)
    assert (row["id"], row["status"], row["payload"], row["result_payload"]) == (
        span_id,
        "complete",
        {"q": 1},
        {"a": 2},
    )


async def test_close_finishes_open_spans_and_instances_as_failed(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """What is left open at close is finished as failed, spans with a reason."""
    client = make_client()
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    span_id = await instance.create_span("agent:tool", payload={})
    await client.close()
    row = await read_one(server, f"/api/v1/agent_spans/{span_id}")
    assert row["status"] == "failed"
    assert row["result_payload"]["error"]["type"] == "PrefactorClientClosed"
    assert (await read_one(server, f"/api/v1/agent_instance/{instance.id}"))["status"] == "failed"


async def test_statistics_count_what_was_sent(make_client: ClientFactory) -> None:
    """statistics() reports every operation as sent once delivered."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        for _ in range(5):
            async with instance.span("agent:step") as span:
                await span.start({})
        await instance.finish()
        assert await client.flush(timeout=10)
        stats = client.statistics()
    # register + start + 5 × (create + finish) + finish
    assert stats.sent == 13
    assert (stats.queued, stats.in_flight, stats.dropped) == (0, 0, 0)


async def test_disabled_client_is_a_quiet_no_op(make_client: ClientFactory) -> None:
    """With enabled=False everything works locally and nothing is sent."""
    client = make_client(enabled=False)
    async with client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:llm") as span:
            await span.start({"model": "m"})
        await instance.finish()
    assert client.test_transport.requests == []  # type: ignore[attr-defined]


async def test_sdk_header_names_the_adapter_then_core(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The X-Prefactor-SDK header chains the adapter entry before prefactor-core's."""
    seen: list[str] = []

    class HeaderTransport(TestTransport):
        async def handle_async_request(self, request):  # type: ignore[no-untyped-def]
            seen.append(request.headers["x-prefactor-sdk"])
            return await super().handle_async_request(request)

    transport = HeaderTransport(server.transport)
    client = make_client(transport=transport)
    client._set_sdk_header_entry("prefactor-langchain@0.3.0")
    async with client:
        pass
    assert seen
    assert seen[0].startswith("prefactor-langchain@0.3.0 prefactor-core@")


async def test_api_down_at_start_does_not_stop_the_agent(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the API refusing connections at start-up the agent runs, and delivery catches up."""
    state = {"down": True}

    def plan(_request: object, _index: int) -> str:
        return "connect_error" if state["down"] else "pass"

    transport = TestTransport(server.transport, plan=plan)
    client = make_client(transport=transport, startup_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="prefactor_core"):
        await client.initialize()
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:llm") as span:
            await span.start({"model": "m", "prompt": "p"})
        await instance.finish()
    state["down"] = False
    assert await client.flush(timeout=10)
    await client.close()
    assert [row["id"] for row in await spans_of(server, instance.id)] == [span.id]


async def test_instances_list_is_readable_after_a_run(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Several runs of one agent are all listed by the server."""
    async with make_client() as client:
        ids = []
        for _ in range(3):
            run = await client.create_agent_instance(agent_id="lister", agent_version=AGENT_VERSION)
            await run.start()
            await run.finish()
            ids.append(run.id)
    rows = await read_all(server, "/api/v1/agent_instance", agent_id="lister")
    assert sorted(row["id"] for row in rows) == sorted(ids)


def test_constructor_rejects_a_wrong_config() -> None:
    """PrefactorCoreClient needs a PrefactorCoreConfig."""
    with pytest.raises(TypeError, match="PrefactorCoreConfig"):
        PrefactorCoreClient({"http_config": None})  # type: ignore[arg-type]


async def test_seed_quick_start_runs_as_written_against_a_real_server(tmp_path: Path) -> None:
    """The seed README's quick start, verbatim but for the URL and token, over real HTTP."""
    async with LocalServer.run(tmp_path / "quick.db", token="quick-start-token") as server:
        registry = SchemaRegistry()
        registry.register_type(
            name="agent:llm",
            params_schema={
                "type": "object",
                "properties": {
                    "model": {"type": "string"},
                    "prompt": {"type": "string"},
                },
                "required": ["model", "prompt"],
            },
            result_schema={
                "type": "object",
                "properties": {"response": {"type": "string"}},
            },
            title="LLM Call",
            description="A call to a language model",
            template="{{model}}: {{prompt}} → {{response}}",
        )

        async def call_llm() -> str:
            return "Hi!"

        async def main() -> str:
            config = PrefactorCoreConfig(
                http_config=HttpClientConfig(
                    api_url=server.api_url,
                    api_token="quick-start-token",
                ),
                schema_registry=registry,
            )

            async with PrefactorCoreClient(config) as client:
                instance = await client.create_agent_instance(
                    agent_id="my-agent",
                    agent_version={"name": "My Agent", "external_identifier": "v1.0.0"},
                )

                await instance.start()

                async with instance.span("agent:llm") as span:
                    await span.start({"model": "gpt-4", "prompt": "Hello"})
                    result = await call_llm()
                    await span.complete({"response": result})

                await instance.finish()
            return instance.id

        instance_id = await main()
        stored = await read_one(server, f"/api/v1/agent_instance/{instance_id}")
        [row] = await spans_of(server, instance_id)
    assert stored["status"] == "complete"
    assert (row["status"], row["summary"]) == ("complete", "gpt-4: Hello → Hi!")


async def test_published_argument_order_is_accepted(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """create_agent_instance(agent_version, schema, agent_id) as the published 0.5 SDK takes it."""
    schema = {
        "external_identifier": "positional",
        "span_schemas": {"agent:step": {"type": "object"}},
    }
    async with make_client() as client:
        instance = await client.create_agent_instance(  # type: ignore[call-arg]
            {"name": "Positional"}, schema, "positional-agent"
        )
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert stored["agent_id"] == "positional-agent"
