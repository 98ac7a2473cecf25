"""PrefactorSpanProcessor: OTel spans recorded through the client's normal engine, into a
real server (in-process), nesting both ways, filtered, from any thread."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from tests.otel.conftest import LOCAL_TOKEN
from tests.otel.support import SERVICE, genai_trace, make_provider

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry
from prefactor_core.otel import PrefactorSpanProcessor
from prefactor_core.otel._mapping import agent_id_for_service, instance_id_for_trace
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

TOKEN = LOCAL_TOKEN


@pytest.fixture(name="client")
async def fixture_client(server: LocalServer) -> AsyncIterator[PrefactorCoreClient]:
    """An initialised client with a registry of its own span types."""
    registry = SchemaRegistry()
    registry.register_type(name="agent:step", params_schema={"type": "object"})
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=server.api_url, api_token=TOKEN),
        schema_registry=registry,
    )
    async with PrefactorCoreClient(config, transport=server.transport) as client:
        yield client


async def _read(server: LocalServer, path: str, **params: Any) -> dict[str, Any]:
    async with server.client() as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_spans(server: LocalServer, instance_id: str) -> list[dict[str, Any]]:
    """The spans of an instance (one page of up to 100)."""
    body = await _read(
        server,
        "/api/v1/agent_spans",
        agent_instance_id=instance_id,
        **{"pagination[page_size]": "100"},
    )
    spans: list[dict[str, Any]] = body["summaries"]
    return spans


async def _by_name(server: LocalServer, instance_id: str) -> dict[str, dict[str, Any]]:
    """The spans of an instance by their OTel name (``payload.name``)."""
    return {span["payload"]["name"]: span for span in await read_spans(server, instance_id)}


def _trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


async def test_trace_outside_a_run_becomes_its_own_instance(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """A GenAI trace started outside any Prefactor span is one instance, finished with
    its root, with the tree, failures, messages and usage of the server's ingest."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    genai_trace(provider.get_tracer("test.genai"))
    ended = memory.get_finished_spans()
    assert processor.force_flush()
    assert await client.flush(timeout=10)

    instance_id = instance_id_for_trace(_trace_id(ended[0]))
    instance = (await _read(server, f"/api/v1/agent_instance/{instance_id}"))["details"]
    assert instance["status"] == "complete"
    assert instance["agent_id"] == agent_id_for_service(SERVICE)
    spans = await _by_name(server, instance_id)
    assert set(spans) == {
        "invoke_agent travel",
        "chat gpt-4o",
        "execute_tool get_weather",
        "ChatOpenAI",
    }
    root = spans["invoke_agent travel"]
    assert root["parent_span_id"] is None
    assert {spans[name]["parent_span_id"] for name in spans if name != root["payload"]["name"]} == {
        root["id"]
    }
    assert spans["execute_tool get_weather"]["status"] == "failed"
    assert spans["execute_tool get_weather"]["result_payload"]["error"]["type"] == "TimeoutError"
    assert spans["chat gpt-4o"]["result_payload"]["usage"]["total_tokens"] == 19
    assert spans["ChatOpenAI"]["payload"]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert processor.dropped == 0
    processor.shutdown()


async def test_nesting_both_ways_inside_a_run(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """An OTel span opened inside a Prefactor span nests under it, and a Prefactor span
    opened inside that OTel span nests under the OTel span."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("openinference.instrumentation.test")
    instance = await client.create_agent_instance(
        agent_id="bridge-agent", agent_version={"name": "Bridge"}
    )
    await instance.start()
    async with instance.span("agent:step", payload={"name": "step"}) as step:
        with tracer.start_as_current_span("chat", attributes={"openinference.span.kind": "LLM"}):
            async with instance.span("agent:step", payload={"name": "inner"}) as inner:
                await inner.complete({})
        await step.complete({})
    await instance.finish()
    assert processor.force_flush()
    assert await client.flush(timeout=10)

    spans = await _by_name(server, instance.id)
    assert set(spans) == {"step", "chat", "inner"}
    assert spans["step"]["parent_span_id"] is None
    assert spans["chat"]["parent_span_id"] == step.id
    assert spans["chat"]["schema_name"] == "llm"
    assert spans["inner"]["parent_span_id"] == spans["chat"]["id"]
    assert not any(span["orphaned"] for span in spans.values())
    processor.shutdown()


async def test_default_filter_forwards_genai_spans_only(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """An HTTP server span is not forwarded; its GenAI child is, as the instance's root;
    a filter that accepts everything forwards both."""
    for span_filter, expected in ((None, {"chat"}), (lambda span: True, {"GET /", "chat"})):
        provider = make_provider()
        processor = PrefactorSpanProcessor(client, span_filter=span_filter)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("opentelemetry.instrumentation.asgi")
        with (
            tracer.start_as_current_span("GET /", attributes={"http.method": "GET"}) as web,
            tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}),
        ):
            pass
        assert processor.force_flush()
        assert await client.flush(timeout=10)
        instance_id = instance_id_for_trace(format(web.get_span_context().trace_id, "032x"))
        spans = await _by_name(server, instance_id)
        assert set(spans) == expected
        instance = (await _read(server, f"/api/v1/agent_instance/{instance_id}"))["details"]
        assert instance["status"] == "complete"
        processor.shutdown()


async def test_default_filter_forwards_every_span_of_a_genai_scope(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """Spans of a GenAI instrumentation scope are forwarded without GenAI attributes, every
    time (the scope's verdict is remembered); a web framework's scope still needs them."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    genai = provider.get_tracer("openinference.instrumentation.openai")
    web = provider.get_tracer("opentelemetry.instrumentation.asgi")
    with genai.start_as_current_span("agent") as root:
        for name in ("first", "second"):
            with genai.start_as_current_span(name):
                pass
        for name in ("GET /a", "GET /b"):
            with web.start_as_current_span(name, attributes={"http.method": "GET"}):
                pass
        with web.start_as_current_span("tagged", attributes={"llm.model_name": "m"}):
            pass
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    instance_id = instance_id_for_trace(format(root.get_span_context().trace_id, "032x"))
    assert set(await _by_name(server, instance_id)) == {"agent", "first", "second", "tagged"}
    processor.shutdown()


async def test_spans_ended_on_other_threads_are_delivered(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """on_end runs on whatever thread ends the span; every span still arrives once."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("openinference.instrumentation.test")
    roots: list[str] = []

    def work(index: int) -> None:
        with tracer.start_as_current_span(f"agent {index}") as root:
            roots.append(format(root.get_span_context().trace_id, "032x"))
            for call in range(20):
                with tracer.start_as_current_span(
                    f"chat {call}", attributes={"openinference.span.kind": "LLM"}
                ):
                    pass

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    for trace_id in roots:
        spans = await _by_name(server, instance_id_for_trace(trace_id))
        assert len(spans) == 21
    assert processor.dropped == 0
    processor.shutdown()


def test_processor_needs_the_clients_loop() -> None:
    """Made outside the client's event loop without loop=, it says what to do."""
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url="http://127.0.0.1:9", api_token="x")
    )
    with pytest.raises(RuntimeError, match="loop="):
        PrefactorSpanProcessor(PrefactorCoreClient(config))


async def test_force_flush_off_the_loop_waits_until_delivered(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """Spans ended on a worker thread and ``force_flush()`` called there (off the loop):
    when it returns True the spans are stored, without ``client.flush()``."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    def agent() -> bool:
        genai_trace(provider.get_tracer("test.genai"))
        return processor.force_flush(20_000)

    assert await asyncio.to_thread(agent)
    ended = memory.get_finished_spans()
    instance_id = instance_id_for_trace(_trace_id(ended[0]))
    assert len(await read_spans(server, instance_id)) == len(ended)
    instance = (await _read(server, f"/api/v1/agent_instance/{instance_id}"))["details"]
    assert instance["status"] == "complete"
    processor.shutdown()


async def test_spans_for_a_closed_client_are_dropped_counted_and_never_raise(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """After the client closed, traced code runs on: what the processor cannot hand over
    (the trace's instance, its spans, its finish) is counted in ``dropped``."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    await client.close()
    genai_trace(provider.get_tracer("test.genai"))  # never raises into the traced code
    processor.shutdown()  # the worker has handed over (or dropped) everything
    assert processor.dropped == 2 + 4 + 1  # its instance's register + start, 4 spans, finish


async def test_otel_span_in_a_run_without_an_open_span_joins_the_run(server: LocalServer) -> None:
    """With no schema registry at all (only @trace types), an OTel span opened inside
    `async with instance` but outside any Prefactor span is a top span of that run, and a
    decorated function called inside it nests under it: one tree, nothing refused."""
    from prefactor_core import trace

    @trace("agent:lookup")
    def lookup(city: str) -> str:
        return f"sunny in {city}"

    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=server.api_url, api_token=TOKEN)
    )
    async with PrefactorCoreClient(config, transport=server.transport) as client:
        provider = make_provider()
        processor = PrefactorSpanProcessor(client)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("openinference.instrumentation.test")
        async with client.create_agent_instance(
            agent_id="no-registry-agent", agent_version={"name": "No registry"}
        ) as instance:
            with tracer.start_as_current_span(
                "chat", attributes={"openinference.span.kind": "LLM"}
            ):
                assert lookup("Oslo") == "sunny in Oslo"
        assert processor.force_flush()
        assert await client.flush(timeout=10)
        assert client.statistics().rejected == 0
        processor.shutdown()

    spans = {span["schema_name"]: span for span in await read_spans(server, instance.id)}
    assert set(spans) == {"llm", "agent:lookup"}
    assert spans["llm"]["parent_span_id"] is None
    assert spans["agent:lookup"]["parent_span_id"] == spans["llm"]["id"]
    assert not any(span["orphaned"] for span in spans.values())


async def test_filter_runs_once_per_span_off_the_agents_thread(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """The hooks only queue spans: a user's filter is called once per span, on the
    processor's worker thread, never on the thread that starts and ends the spans."""
    calls: list[tuple[str, int]] = []

    def span_filter(span: ReadableSpan) -> bool:
        calls.append((span.name, threading.get_ident()))
        return span.name != "skipped"

    provider = make_provider()
    processor = PrefactorSpanProcessor(client, span_filter=span_filter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("opentelemetry.instrumentation.asgi")
    with tracer.start_as_current_span("root") as root:
        for name in ("first", "skipped", "second"):
            with tracer.start_as_current_span(name):
                pass
    assert processor.force_flush()
    assert await client.flush(timeout=10)

    assert sorted(name for name, _ in calls) == ["first", "root", "second", "skipped"]
    assert threading.get_ident() not in {thread for _, thread in calls}
    instance_id = instance_id_for_trace(format(root.get_span_context().trace_id, "032x"))
    spans = await _by_name(server, instance_id)
    assert set(spans) == {"root", "first", "second"}
    assert spans["second"]["parent_span_id"] == spans["root"]["id"]
    processor.shutdown()


async def test_default_filter_sees_attributes_set_after_the_start(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """A span of a web framework that becomes a GenAI span while it runs (its
    instrumentation sets ``gen_ai.*`` after the start) is forwarded with its payload."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("opentelemetry.instrumentation.httpx")
    with tracer.start_as_current_span("POST /chat") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    instance_id = instance_id_for_trace(format(span.get_span_context().trace_id, "032x"))
    spans = await _by_name(server, instance_id)
    assert spans["POST /chat"]["schema_name"] == "llm"
    assert spans["POST /chat"]["payload"]["model"] == "gpt-4o"
    processor.shutdown()


async def test_a_failing_filter_skips_the_span_and_never_raises(
    server: LocalServer, client: PrefactorCoreClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An error in the user's filter counts as "not forwarded" and is logged; the traced
    code and the other spans are unaffected (the skipped span's child nests under its
    nearest forwarded ancestor)."""

    def span_filter(span: ReadableSpan) -> bool:
        if span.name == "broken":
            raise ValueError("bad filter")
        return True

    provider = make_provider()
    processor = PrefactorSpanProcessor(client, span_filter=span_filter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test.filter")
    with (
        tracer.start_as_current_span("root") as root,
        tracer.start_as_current_span("broken"),
        tracer.start_as_current_span("leaf"),
    ):
        pass
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    instance_id = instance_id_for_trace(format(root.get_span_context().trace_id, "032x"))
    spans = await _by_name(server, instance_id)
    assert set(spans) == {"root", "leaf"}
    assert spans["leaf"]["parent_span_id"] == spans["root"]["id"]
    assert "span filter failed" in caplog.text
    processor.shutdown()


async def test_prefactor_spans_nest_under_otel_spans_the_worker_has_not_seen(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """Prefactor spans opened inside OTel spans that started a moment ago (before the
    worker took their records), two OTel levels deep, nest under the inner OTel span;
    a Prefactor span opened inside a filtered-out OTel span nests under its nearest
    forwarded ancestor."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(
        client, span_filter=lambda span: not span.name.startswith("hidden")
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test.nesting")
    async with client.create_agent_instance(
        agent_id="nesting-agent", agent_version={"name": "Nesting"}
    ) as instance:
        with (
            tracer.start_as_current_span("outer"),
            tracer.start_as_current_span("inner"),
        ):
            async with instance.span("agent:step", payload={"name": "in inner"}) as step:
                await step.complete({})
            with tracer.start_as_current_span("hidden"):
                async with instance.span("agent:step", payload={"name": "in hidden"}) as hid:
                    await hid.complete({})
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    spans = await _by_name(server, instance.id)
    assert set(spans) == {"outer", "inner", "in inner", "in hidden"}
    assert spans["outer"]["parent_span_id"] is None
    assert spans["inner"]["parent_span_id"] == spans["outer"]["id"]
    assert spans["in inner"]["parent_span_id"] == spans["inner"]["id"]
    assert spans["in hidden"]["parent_span_id"] == spans["inner"]["id"]
    assert client.statistics().rejected == 0
    processor.shutdown()


async def test_a_trace_with_two_local_roots_finishes_after_the_last(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """Two spans of one trace whose parent is remote (a request handled here, its caller
    elsewhere) share the trace's instance, which finishes when the second one ends."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("openinference.instrumentation.test")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    context = otel_trace.set_span_in_context(NonRecordingSpan(remote))
    instance_id = instance_id_for_trace(format(remote.trace_id, "032x"))
    first = tracer.start_span("first", context=context)
    second = tracer.start_span("second", context=context)
    first.end()
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    running = (await _read(server, f"/api/v1/agent_instance/{instance_id}"))["details"]
    assert running["status"] == "active"
    second.end()
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    instance = (await _read(server, f"/api/v1/agent_instance/{instance_id}"))["details"]
    assert instance["status"] == "complete"
    spans = await _by_name(server, instance_id)
    assert set(spans) == {"first", "second"}
    assert {span["parent_span_id"] for span in spans.values()} == {None}
    processor.shutdown()


async def test_attribute_values_json_cannot_hold_are_delivered_as_text(
    server: LocalServer, client: PrefactorCoreClient
) -> None:
    """The OTel SDK takes any Python int or float as an attribute; an int past 64 bits
    (alone or in a list) no longer loses its span: it is delivered as its digits, and NaN
    and the infinities as "NaN", "Infinity", "-Infinity" instead of null, as the server's
    OTLP ingest keeps such values; the rest of the span as it is."""
    provider = make_provider()
    processor = PrefactorSpanProcessor(client)
    provider.add_span_processor(processor)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("openinference.test")
    huge = 2**70
    llm = {"openinference.span.kind": "LLM"}
    big = {**llm, "big": huge, "small": -(2**63), "listed": [huge, 1], "llm.token_count.prompt": 3}
    floats = {**llm, "nan": math.nan, "floats": [math.inf, -math.inf, 0.5], "text": "null"}
    with tracer.start_as_current_span("root", attributes={"openinference.span.kind": "AGENT"}):
        for name, attributes in (("big", big), ("floats", floats)):
            with tracer.start_as_current_span(name, attributes=attributes):
                pass
    ended = memory.get_finished_spans()
    assert processor.force_flush()
    assert await client.flush(timeout=10)
    spans = await _by_name(server, instance_id_for_trace(_trace_id(ended[0])))
    assert set(spans) == {"root", "big", "floats"}
    assert spans["big"]["payload"]["attributes"] == {
        "big": str(huge),
        "small": -(2**63),
        "listed": [str(huge), 1],
    }
    assert spans["big"]["result_payload"]["usage"]["input_tokens"] == 3
    assert spans["floats"]["payload"]["attributes"] == {
        "nan": "NaN",
        "floats": ["Infinity", "-Infinity", 0.5],
        "text": "null",
    }
    processor.shutdown()
