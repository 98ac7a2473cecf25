"""Helpers of the OpenTelemetry tests: a nested GenAI trace made with the real OTel SDK,
and the OTLP/JSON encoding of spans (the Python exporter speaks protobuf only)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

SERVICE = "travel-agent"
QUESTION = "Weather in Paris?"


def record_trace() -> list[ReadableSpan]:
    """Run :func:`genai_trace` under a real TracerProvider and return its ended spans."""
    exporter = InMemorySpanExporter()
    provider = make_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    genai_trace(provider.get_tracer("test.genai"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def make_provider() -> TracerProvider:
    """A TracerProvider of the test service (never the global one)."""
    return TracerProvider(
        resource=Resource.create({"service.name": SERVICE, "service.version": "1.2.3"})
    )


def genai_trace(tracer: Tracer) -> None:
    """A small GenAI agent run, traced.

    The tree: ``invoke_agent travel`` → ``chat gpt-4o`` (GenAI attributes) and
    ``execute_tool get_weather`` (fails with an exception) and ``ChatOpenAI``
    (OpenInference attributes, flattened messages).
    """
    with tracer.start_as_current_span(
        "invoke_agent travel",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel"},
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.input.messages": orjson.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
                ).decode(),
                "gen_ai.output.messages": orjson.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "get_weather",
                                    "arguments": {"city": "Paris"},
                                }
                            ],
                        }
                    ]
                ).decode(),
                "server.address": "api.example.test",
            },
        ):
            pass
        try:
            with tracer.start_as_current_span(
                "execute_tool get_weather",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "get_weather",
                },
                record_exception=True,
                set_status_on_exception=True,
            ):
                raise TimeoutError("weather service timed out")
        except TimeoutError:
            pass
        with tracer.start_as_current_span(
            "ChatOpenAI",
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Be brief.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": QUESTION,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Rain, 12°C.",
                "llm.token_count.prompt": 20,
                "llm.token_count.completion": 5,
                "llm.token_count.total": 25,
                "input.value": QUESTION,
                "output.value": "Rain, 12°C.",
            },
        ) as span:
            span.set_status(Status(StatusCode.OK))


def _hex_ids(node: Any) -> Any:
    """Rewrite protobuf-JSON's base64 ids as OTLP/JSON's hex ids."""
    if isinstance(node, dict):
        return {
            key: (
                base64.b64decode(value).hex()
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str)
                else _hex_ids(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/JSON body of an export of ``spans`` (hex ids, 64-bit integers as strings)."""
    message = encode_spans(spans)
    return orjson.dumps(_hex_ids(json_format.MessageToDict(message, use_integers_for_enums=True)))


def otlp_protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    """The protobuf body of an export of ``spans``."""
    return encode_spans(spans).SerializeToString()
