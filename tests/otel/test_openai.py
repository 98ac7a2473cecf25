"""openinference-instrumentation-openai around the real ``openai`` client, pointed at a
fake OpenAI server on 127.0.0.1: traced through the OTLP endpoint and through
PrefactorSpanProcessor, with the same result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tests.otel.conftest import Served
from tests.otel.fake_openai import ANSWER, MODEL, fake_openai
from tests.otel.support import make_provider
from tests.otel.test_processor import TOKEN, read_spans

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_core.otel import PrefactorSpanProcessor
from prefactor_core.otel._mapping import instance_id_for_trace
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(name="openai_url")
def fixture_openai_url() -> Iterator[str]:
    """The fake OpenAI API's base URL."""
    with fake_openai() as url:
        yield url


def _agent(provider: TracerProvider, base_url: str) -> str:
    """One agent run: a plain answer, a streamed one, a tool call and a refused request,
    under one AGENT span. Returns the trace id."""
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        llm = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
        question = [{"role": "user", "content": "Weather in Paris?"}]
        tracer = provider.get_tracer("openinference.instrumentation.test")
        with tracer.start_as_current_span(
            "travel agent", attributes={"openinference.span.kind": "AGENT"}
        ) as root:
            llm.chat.completions.create(model=MODEL, messages=question)  # type: ignore[arg-type]
            stream = llm.chat.completions.create(
                model=MODEL,
                messages=question,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            for _chunk in stream:
                pass
            llm.chat.completions.create(model=MODEL, messages=question, tools=[WEATHER_TOOL])  # type: ignore[arg-type,list-item]
            with pytest.raises(openai.BadRequestError):
                llm.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "please fail"}],
                )
        return format(root.get_span_context().trace_id, "032x")
    finally:
        instrumentor.uninstrument()


def _check(spans: list[dict[str, Any]]) -> None:
    """The stored run: one AGENT root, four LLM children with the facts of each call."""
    roots = [span for span in spans if span["parent_span_id"] is None]
    assert len(roots) == 1
    assert roots[0]["schema_name"] == "agent"
    calls = [span for span in spans if span["parent_span_id"] == roots[0]["id"]]
    assert len(calls) == 4
    assert all(span["schema_name"] == "llm" for span in calls)
    assert all(span["payload"]["model"] == MODEL for span in calls)
    plain, streamed, tool, refused = sorted(calls, key=lambda span: span["started_at"])
    for span in (plain, streamed):
        assert span["status"] == "complete"
        assert span["payload"]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
        assert span["result_payload"]["usage"] == {
            "input_tokens": 11,
            "output_tokens": 4,
            "total_tokens": 15,
        }
    assert plain["result_payload"]["messages"][0]["content"] == ANSWER
    assert streamed["result_payload"]["messages"][0]["content"].strip() == ANSWER
    call = tool["result_payload"]["messages"][0]["tool_calls"][0]
    assert call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Paris"}
    assert refused["status"] == "failed"
    assert "the model refused" in refused["result_payload"]["error"]["message"]


def test_openai_through_the_otlp_endpoint(served: Served, openai_url: str) -> None:
    """Spans exported by the standard OTLP exporter to ``prefactor serve``."""
    provider = make_provider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{served.url}/v1/traces", headers=served.headers)
        )
    )
    trace_id = _agent(provider, openai_url)
    provider.shutdown()
    instance_id = instance_id_for_trace(trace_id)
    assert served.instance(instance_id)["status"] == "complete"
    _check(served.spans(agent_instance_id=instance_id))


async def test_openai_through_the_span_processor(tmp_path: Path, openai_url: str) -> None:
    """The same run through PrefactorSpanProcessor and the client's engine."""
    server = LocalServer(tmp_path / "prefactor.db", token=TOKEN)
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=server.api_url, api_token=TOKEN)
    )
    try:
        async with PrefactorCoreClient(config, transport=server.transport) as client:
            provider = make_provider()
            processor = PrefactorSpanProcessor(client)
            provider.add_span_processor(processor)
            trace_id = _agent(provider, openai_url)
            assert processor.force_flush()
            assert await client.flush(timeout=10)
            processor.shutdown()
        _check(await read_spans(server, instance_id_for_trace(trace_id)))
    finally:
        await server.aclose()
