"""The shared attribute mapping on the conventions' less common shapes."""

from __future__ import annotations

from typing import Any

import orjson

from prefactor_core.otel._mapping import (
    SCHEMA_NAMES,
    OtelEvent,
    OtelSpan,
    is_genai_span,
    map_span,
)


def _span(attributes: dict[str, Any], name: str = "op", **fields: Any) -> OtelSpan:
    return OtelSpan(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name=name,
        start_ns=1,
        end_ns=2,
        attributes=attributes,
        **fields,
    )


def test_openllmetry_flattened_prompts_and_completions() -> None:
    """gen_ai.prompt.N.* / gen_ai.completion.N.* and the older usage names."""
    mapped = map_span(
        _span(
            {
                "traceloop.span.kind": "task",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "hi",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "hello",
                "gen_ai.usage.prompt_tokens": 3,
                "gen_ai.usage.completion_tokens": 2,
            }
        )
    )
    assert mapped.schema_name == "chain"
    assert mapped.params["provider"] == "openai"
    assert mapped.params["messages"] == [{"role": "user", "content": "hi"}]
    assert mapped.result["messages"] == [{"role": "assistant", "content": "hello"}]
    assert mapped.result["usage"] == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert "attributes" not in mapped.params


def test_message_events_and_system_instructions() -> None:
    """Messages from gen_ai.*.message / gen_ai.choice events."""
    events = [
        OtelEvent("gen_ai.system.message", 1, {"content": "Be brief."}),
        OtelEvent("gen_ai.user.message", 1, {"content": "hi"}),
        OtelEvent(
            "gen_ai.choice",
            2,
            {"index": 0, "message": orjson.dumps({"role": "assistant", "content": "yo"}).decode()},
        ),
    ]
    mapped = map_span(_span({"gen_ai.operation.name": "chat"}, events=events))
    assert mapped.schema_name == "llm"
    assert mapped.params["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert mapped.result["messages"] == [{"role": "assistant", "content": "yo"}]


def test_tool_calls_in_flattened_openinference_messages() -> None:
    """llm.output_messages.N.message.tool_calls.M.tool_call.function.* become tool_calls."""
    prefix = "llm.output_messages.0.message."
    mapped = map_span(
        _span(
            {
                "openinference.span.kind": "LLM",
                prefix + "role": "assistant",
                prefix + "tool_calls.0.tool_call.id": "c1",
                prefix + "tool_calls.0.tool_call.function.name": "search",
                prefix + "tool_calls.0.tool_call.function.arguments": '{"q": "x"}',
                "llm.token_count.prompt_details.cache_read": 4,
                "llm.cost.total": 0.002,
            }
        )
    )
    assert mapped.result["messages"] == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "name": "search", "arguments": {"q": "x"}}],
        }
    ]
    assert mapped.result["usage"] == {"cache_read_tokens": 4}
    assert mapped.result["cost"] == 0.002


def test_retriever_documents_and_json_input() -> None:
    """retrieval.documents.N.document.* become result documents; JSON input is decoded."""
    mapped = map_span(
        _span(
            {
                "openinference.span.kind": "RETRIEVER",
                "input.value": '{"query": "paris"}',
                "input.mime_type": "application/json",
                "retrieval.documents.0.document.id": "d1",
                "retrieval.documents.0.document.content": "Paris is...",
                "retrieval.documents.1.document.id": "d2",
                "metadata": '{"user": "u1"}',
            }
        )
    )
    assert mapped.schema_name == "retriever"
    assert mapped.params["input"] == {"query": "paris"}
    assert mapped.result["documents"] == [{"id": "d1", "content": "Paris is..."}, {"id": "d2"}]
    assert mapped.params["attributes"] == {"metadata": '{"user": "u1"}'}


def test_error_without_exception_event_and_odd_values() -> None:
    """An ERROR status with only a message fails the span; malformed messages are kept."""
    mapped = map_span(
        _span(
            {"gen_ai.input.messages": "not json", "gen_ai.usage.input_tokens": "many"},
            status_code=2,
            status_message="boom",
        )
    )
    assert mapped.status == "failed"
    assert mapped.result["error"] == {"message": "boom"}
    assert mapped.params["attributes"] == {
        "gen_ai.input.messages": "not json",
        "gen_ai.usage.input_tokens": "many",
    }


def test_schema_names_from_span_names_and_the_filter() -> None:
    """GenAI span names give the kind; plain spans are ``span`` and not GenAI."""
    assert map_span(_span({}, name="execute_tool search")).schema_name == "tool"
    assert map_span(_span({}, name="embeddings text-3")).schema_name == "embedding"
    plain = _span(
        {"http.method": "GET"}, name="GET /", scope_name="opentelemetry.instrumentation.asgi"
    )
    assert map_span(plain).schema_name == "span"
    assert not is_genai_span(plain)
    assert is_genai_span(_span({}, scope_name="openinference.instrumentation.openai"))
    assert is_genai_span(_span({"gen_ai.system": "x"}))
    assert {"llm", "tool", "agent", "chain", "retriever", "embedding", "span"} <= set(SCHEMA_NAMES)
