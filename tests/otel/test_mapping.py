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


def test_what_each_rule_consumes_and_what_stays_in_attributes_in_order() -> None:
    """A rule consumes the attribute it used (and its mime type); a second candidate for
    the same field, a mime type without a value, the operation name, an empty model and a
    flattened list the messages did not come from stay in ``attributes``, in their order."""
    mapped = map_span(
        _span(
            {
                "zeta": 1,
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.provider.name": "azure",
                "output.mime_type": "application/json",
                "gen_ai.request.model": "",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "hi",
                "gen_ai.prompt.0.content": "also hi",
                "gen_ai.usage.input_tokens": 7,
                "llm.token_count.prompt": 9,
                "alpha": "a",
            }
        )
    )
    assert mapped.schema_name == "llm"
    assert mapped.params["provider"] == "azure"
    assert "model" not in mapped.params
    assert mapped.params["messages"] == [{"role": "user", "content": "hi"}]
    assert mapped.result["usage"] == {"input_tokens": 7, "total_tokens": 7}
    assert list(mapped.params["attributes"].items()) == [
        ("zeta", 1),
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.system", "openai"),
        ("output.mime_type", "application/json"),
        ("gen_ai.request.model", ""),
        ("gen_ai.prompt.0.content", "also hi"),
        ("alpha", "a"),
    ]


def test_model_keys_are_all_consumed_once_one_gives_the_model() -> None:
    """The first non-empty model name wins; the other model keys are not repeated."""
    mapped = map_span(
        _span(
            {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "input.value": '{"q": 1}',
                "input.mime_type": "application/json",
                "other": True,
            }
        )
    )
    assert mapped.params["model"] == "gpt-4o-2024-08-06"
    assert mapped.params["input"] == {"q": 1}
    assert mapped.params["attributes"] == {"other": True}


def test_flattened_messages_with_extra_fields_and_odd_indexes() -> None:
    """name / tool_call_id / finish_reason are kept from flattened messages, items come in
    index order (10 after 2), and an index that is no decimal number is no list item."""
    prefix = "llm.input_messages."
    mapped = map_span(
        _span(
            {
                prefix + "10.message.role": "tool",
                prefix + "10.message.content": "12 degrees",
                prefix + "10.message.tool_call_id": "c1",
                prefix + "2.message.role": "assistant",
                prefix + "2.message.name": "planner",
                prefix + "2.message.finish_reason": "tool_calls",
                prefix + "².message.role": "user",
            }
        )
    )
    assert mapped.params["messages"] == [
        {"role": "assistant", "name": "planner", "finish_reason": "tool_calls"},
        {"role": "tool", "content": "12 degrees", "tool_call_id": "c1"},
    ]
    assert mapped.params["attributes"] == {prefix + "².message.role": "user"}


def test_tool_calls_that_are_no_list_are_kept_not_raised() -> None:
    """A message whose tool_calls is one call, text or a number (a sender's mistake) maps
    without raising: one bad span must not fail the whole export (500, not retried)."""
    events = [
        OtelEvent("gen_ai.user.message", 1, {"content": "a", "tool_calls": "search"}),
        OtelEvent("gen_ai.user.message", 1, {"content": "b", "tool_calls": 5}),
        OtelEvent("gen_ai.user.message", 1, {"content": "c", "tool_calls": ["x"]}),
    ]
    messages = orjson.dumps(
        [{"role": "assistant", "tool_calls": {"id": "c1", "function": {"name": "f"}}}]
    ).decode()
    mapped = map_span(_span({"gen_ai.output.messages": messages}, events=events))
    assert mapped.params["messages"] == [
        {"role": "user", "content": "a", "tool_calls": [{"value": "search"}]},
        {"role": "user", "content": "b", "tool_calls": [{"value": 5}]},
        {"role": "user", "content": "c", "tool_calls": [{"value": "x"}]},
    ]
    assert mapped.result["messages"] == [
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f"}]}
    ]


def test_usage_keys_in_any_order_follow_the_preference_order() -> None:
    """Of several names for one count, the preferred valid one wins whatever order the
    attributes came in (the invalid preferred one is kept as sent, the other valid ones are
    consumed); usage lists its counts in one fixed order; a bool is no count."""
    mapped = map_span(
        _span(
            {
                "llm.token_count.completion_details.reasoning": 2,
                "llm.token_count.prompt": 3,
                "gen_ai.usage.cache_read.input_tokens": 4,
                "llm.token_count.completion": 5,
                "gen_ai.usage.prompt_tokens": 7,
                "gen_ai.usage.input_tokens": "x",
                "gen_ai.usage.output_tokens": True,
                "other": 1,
            }
        )
    )
    usage = mapped.result["usage"]
    assert list(usage.items()) == [
        ("input_tokens", 7),
        ("output_tokens", 5),
        ("cache_read_tokens", 4),
        ("reasoning_tokens", 2),
        ("total_tokens", 12),
    ]
    assert mapped.params["attributes"] == {
        "gen_ai.usage.input_tokens": "x",
        "gen_ai.usage.output_tokens": True,
        "other": 1,
    }


def test_span_without_attributes_or_events_maps_to_its_name_only() -> None:
    """Nothing to read: no messages, no attributes, only the name (and a kind from it)."""
    mapped = map_span(_span({}, name="execute_tool lookup"))
    assert mapped == ("tool", "complete", {"name": "execute_tool lookup"}, {})


def test_operation_name_is_read_and_kept_json_messages_alone_are_read() -> None:
    """gen_ai.operation.name gives the kind and stays in the attributes; JSON messages are
    read with no other message source on the span."""
    messages = orjson.dumps([{"role": "user", "content": "hi"}]).decode()
    mapped = map_span(
        _span({"gen_ai.operation.name": "chat", "gen_ai.input.messages": messages, "a": 1})
    )
    assert mapped.schema_name == "llm"
    assert mapped.params == {
        "name": "op",
        "messages": [{"role": "user", "content": "hi"}],
        "attributes": {"gen_ai.operation.name": "chat", "a": 1},
    }
