"""OtelSpanMirror: the client's spans also reach an OpenTelemetry span processor (OTel's
own in-memory exporter, and the standard OTLP exporter into a real ``prefactor serve``),
while Prefactor still gets every span."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.otel.conftest import LOCAL_TOKEN, Served
from tests.otel.support import make_provider

from prefactor_core import (
    PrefactorCoreClient,
    PrefactorCoreConfig,
    SchemaRegistry,
    SyncPrefactorCoreClient,
    trace,
)
from prefactor_core.otel import OtelSpanMirror, PrefactorSpanProcessor
from prefactor_core.otel._mapping import instance_id_for_trace
from prefactor_core.otel._outbound import otel_span_id, otel_trace_id
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

TOKEN = LOCAL_TOKEN


def _config(api_url: str, token: str = TOKEN) -> PrefactorCoreConfig:
    registry = SchemaRegistry()
    for name in ("agent:step", "agent:llm", "agent:tool"):
        registry.register_type(name=name, params_schema={"type": "object"})
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token), schema_registry=registry
    )


@pytest.fixture(name="client")
async def fixture_client(server: LocalServer) -> AsyncIterator[PrefactorCoreClient]:
    async with PrefactorCoreClient(_config(server.api_url), transport=server.transport) as client:
        yield client


def _memory() -> tuple[InMemorySpanExporter, SimpleSpanProcessor]:
    exporter = InMemorySpanExporter()
    return exporter, SimpleSpanProcessor(exporter)


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    out: dict[str, ReadableSpan] = {}
    for span in spans:
        key = span.attributes.get("prefactor.span_id") if span.attributes else None
        out[str(key) if key is not None else span.name] = span
    return out


async def _run(client: PrefactorCoreClient) -> tuple[str, dict[str, str]]:
    """An instance with a nested LLM call, a failed tool and a cancelled step."""
    instance = await client.create_agent_instance(
        agent_id="mirror-agent", agent_version={"name": "Mirror agent"}
    )
    await instance.start()
    ids: dict[str, str] = {}
    async with instance.span("agent:step", payload={"goal": "plan"}) as step:
        ids["step"] = step.id
        async with instance.span(
            "agent:llm", payload={"model": "gpt-test", "messages": [{"role": "user"}]}
        ) as llm:
            ids["llm"] = llm.id
            await llm.complete(
                {
                    "output": "ok",
                    "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
                }
            )
        with pytest.raises(LookupError):
            async with instance.span("agent:tool", payload={"q": "x"}) as tool:
                ids["tool"] = tool.id
                raise LookupError("no such city")
        await step.complete({"done": True})
    await instance.finish()
    return instance.id, ids


async def test_spans_keep_tree_times_status_and_payloads(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    exporter, processor = _memory()
    mirror = OtelSpanMirror(client, processor, resource=Resource.create({"service.name": "mirror"}))
    instance_id, ids = await _run(client)
    assert await client.flush(timeout=10)
    assert mirror.force_flush()

    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {*ids.values(), "Mirror agent"}
    trace_id = otel_trace_id(instance_id)
    assert {span.context.trace_id for span in spans.values() if span.context} == {trace_id}
    root, step, llm, tool = (
        spans[k] for k in ("Mirror agent", ids["step"], ids["llm"], ids["tool"])
    )
    assert root.parent is None
    assert root.context is not None
    assert step.parent is not None
    assert step.parent.span_id == root.context.span_id
    assert llm.parent is not None
    assert llm.parent.span_id == otel_span_id(ids["step"])
    assert tool.parent is not None
    assert tool.parent.span_id == otel_span_id(ids["step"])
    assert llm.context is not None
    assert llm.context.span_id == otel_span_id(ids["llm"])

    assert llm.name == "agent:llm"
    assert llm.attributes is not None
    assert llm.attributes["openinference.span.kind"] == "LLM"
    assert llm.attributes["gen_ai.request.model"] == "gpt-test"
    assert llm.attributes["gen_ai.usage.input_tokens"] == 12
    assert llm.attributes["gen_ai.usage.output_tokens"] == 5
    assert llm.attributes["llm.token_count.total"] == 17
    assert llm.status.status_code is StatusCode.OK
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description == "LookupError: no such city"
    assert [event.name for event in tool.events] == ["exception"]
    assert tool.events[0].attributes == {
        "exception.type": "LookupError",
        "exception.message": "no such city",
    }
    assert root.attributes is not None
    assert root.attributes["prefactor.agent_id"] == "mirror-agent"
    assert root.resource.attributes["service.name"] == "mirror"

    # The same spans, times and payloads as Prefactor stored.
    async with server.client() as http:
        response = await http.get(
            "/api/v1/agent_spans",
            params={"agent_instance_id": instance_id, "pagination[page_size]": "100"},
        )
    stored = {span["id"]: span for span in response.json()["summaries"]}
    assert set(stored) == set(ids.values())
    for span_id, span in stored.items():
        mirrored = spans[span_id]
        assert mirrored.attributes is not None
        assert mirrored.attributes["prefactor.status"] == span["status"]
        assert mirrored.start_time is not None
        assert mirrored.end_time is not None
        assert _seconds(span["started_at"]) == pytest.approx(mirrored.start_time / 1e9, abs=1e-3)
        assert _seconds(span["finished_at"]) == pytest.approx(mirrored.end_time / 1e9, abs=1e-3)
    llm_input = llm.attributes["input.value"]
    assert isinstance(llm_input, str)
    assert '"gpt-test"' in llm_input
    assert stored[ids["llm"]]["result_payload"]["usage"]["total_tokens"] == 17
    assert mirror.dropped == 0
    assert mirror.failures == 0
    mirror.shutdown()


async def test_spans_from_otel_are_not_sent_back_and_ours_nest_under_them(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """With both directions on, an OTel span bridged into Prefactor is not mirrored back
    (it is in OTel already), and a Prefactor span opened inside it is mirrored into the
    OTel span's own trace, under it."""
    exporter, processor = _memory()
    mirror = OtelSpanMirror(client, processor)
    provider = make_provider()
    bridge = PrefactorSpanProcessor(client)
    provider.add_span_processor(bridge)
    tracer = provider.get_tracer("openinference.instrumentation.test")
    instance = await client.create_agent_instance(
        agent_id="both-ways", agent_version={"name": "Both"}
    )
    await instance.start()
    with tracer.start_as_current_span(
        "chat", attributes={"openinference.span.kind": "LLM"}
    ) as chat:
        async with instance.span("agent:tool", payload={"q": 1}) as inner:
            await inner.complete({"a": 2})
    await instance.finish()
    assert bridge.force_flush()
    assert await client.flush(timeout=10)
    assert mirror.force_flush()

    mirrored = _by_name(exporter.get_finished_spans())
    assert set(mirrored) == {inner.id, "Both"}  # not the bridged "chat"
    context = chat.get_span_context()
    ours = mirrored[inner.id]
    assert ours.parent is not None
    assert ours.parent.span_id == context.span_id
    assert ours.context is not None
    assert ours.context.trace_id == context.trace_id
    bridge.shutdown()
    mirror.shutdown()


async def test_a_failing_processor_is_counted_and_delivery_goes_on(
    server: LocalServer, client: PrefactorCoreClient, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("exporter down")

    mirror = OtelSpanMirror(client, Broken())
    with caplog.at_level(logging.ERROR, logger="prefactor_core.otel._mirror"):
        instance_id, ids = await _run(client)
        assert await client.flush(timeout=10)
        assert mirror.force_flush()
    assert mirror.failures == len(ids) + 1  # every span and the run's root
    assert sum("logged once" in record.getMessage() for record in caplog.records) == 1
    assert client.statistics().dropped == 0
    async with server.client() as http:
        response = await http.get("/api/v1/agent_spans", params={"agent_instance_id": instance_id})
    assert {span["id"] for span in response.json()["summaries"]} == set(ids.values())
    mirror.shutdown()


async def test_after_shutdown_nothing_is_mirrored(client: PrefactorCoreClient) -> None:
    exporter, processor = _memory()
    mirror = OtelSpanMirror(client, processor)
    mirror.shutdown()
    mirror.shutdown()  # idempotent
    assert not client._taps  # the engine no longer calls it
    await _run(client)
    assert await client.flush(timeout=10)
    assert exporter.get_finished_spans() == ()
    assert mirror.emitted == 0


def test_bad_arguments_raise_at_the_call() -> None:
    with SyncPrefactorCoreClient(_config("http://127.0.0.1:9", "t")) as client:
        with pytest.raises(TypeError, match="SpanProcessor"):
            OtelSpanMirror(client, InMemorySpanExporter())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Resource"):
            OtelSpanMirror(client, _memory()[1], resource={"service.name": "x"})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_backlog"):
            OtelSpanMirror(client, _memory()[1], max_backlog=0)
    with pytest.raises(TypeError, match="PrefactorCoreClient"):
        OtelSpanMirror(object(), _memory()[1])  # type: ignore[arg-type]


@trace("agent:tool")
def lookup(city: str) -> str:
    return f"sunny in {city}"


def test_sync_agent_through_otlp_into_a_real_server(served: Served) -> None:
    """A sync agent's spans, mirrored with the standard OTLP exporter into a real
    ``prefactor serve``'s ``/v1/traces``, come back as one OTel run with the same tree,
    kinds and payloads, next to the Prefactor run the client delivered itself."""
    exporter = OTLPSpanExporter(
        endpoint=f"{served.url}/v1/traces", headers={"Authorization": f"Bearer {served.token}"}
    )
    with SyncPrefactorCoreClient(_config(served.url, served.token)) as client:
        mirror = OtelSpanMirror(
            client,
            BatchSpanProcessor(exporter),
            resource=Resource.create({"service.name": "sync-mirror"}),
        )
        with (
            client.create_agent_instance(
                agent_id="sync-mirror-agent", agent_version={"name": "Sync mirror"}
            ) as instance,
            instance.span("agent:llm", payload={"model": "gpt-test"}) as llm,
        ):
            assert lookup("Oslo") == "sunny in Oslo"
            llm.complete({"output": "hi", "usage": {"input_tokens": 3, "output_tokens": 4}})
        assert client.flush(timeout=10)
        assert mirror.force_flush()
        mirror.shutdown()
        instance_id = instance.id

    ours = {span["schema_name"]: span for span in served.spans(agent_instance_id=instance_id)}
    assert set(ours) == {"agent:llm", "agent:tool"}
    mirrored_instance = instance_id_for_trace(format(otel_trace_id(instance_id), "032x"))
    theirs = served.spans(agent_instance_id=mirrored_instance)
    by_name: dict[str, dict[str, Any]] = {span["payload"]["name"]: span for span in theirs}
    assert set(by_name) == {"Sync mirror", "agent:llm", "agent:tool"}
    assert by_name["Sync mirror"]["parent_span_id"] is None
    assert by_name["agent:llm"]["parent_span_id"] == by_name["Sync mirror"]["id"]
    assert by_name["agent:tool"]["parent_span_id"] == by_name["agent:llm"]["id"]
    assert by_name["agent:llm"]["schema_name"] == "llm"
    assert by_name["agent:tool"]["schema_name"] == "tool"
    assert by_name["agent:llm"]["payload"]["model"] == "gpt-test"
    assert by_name["agent:llm"]["result_payload"]["usage"]["input_tokens"] == 3
    assert by_name["agent:tool"]["result_payload"]["output"] == {"output": "sunny in Oslo"}
