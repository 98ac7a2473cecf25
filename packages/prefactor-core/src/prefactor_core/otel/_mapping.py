"""The one mapping from OpenTelemetry spans to Prefactor spans (server ingest and SDK bridge).

Both directions of the bridge meet here: the server's ``POST /v1/traces`` decodes OTLP
(protobuf or JSON) into :class:`OtelSpan` values, the SDK's ``PrefactorSpanProcessor``
converts ended ``ReadableSpan`` objects into the same, and :func:`map_span` turns either
into a :class:`MappedSpan` (schema name, status, params, result). This module imports no
``opentelemetry`` package, so the server and the SDK's base install can use it.

Conventions read (facts from their specifications, see the README's OpenTelemetry
section): OpenInference (``openinference.span.kind``, ``input.value``, ``llm.*``,
``tool.*``, ``retrieval.documents.*``), the OpenTelemetry GenAI semantic conventions, old
and new names (``gen_ai.operation.name``, ``gen_ai.usage.input_tokens`` /
``prompt_tokens``, ``gen_ai.input.messages``, flattened ``gen_ai.prompt.N.*``, message
events) and OpenLLMetry (``traceloop.span.kind``, ``traceloop.entity.*``).

The payloads follow the shared convention of the viewer::

    params = {"name", "model"?, "messages"?, "input"?, "tool"?, "attributes"?}
    result = {"output"?, "messages"?, "usage"?: {"input_tokens", "output_tokens",
              "total_tokens", ...}, "cost"?, "documents"?, "error"?}

Every attribute the mapping does not consume is kept, flat, in ``params["attributes"]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from prefactor_core.otel._messages import (
    indexed,
    input_messages,
    maybe_json,
    output_messages,
    take,
)
from prefactor_core.otel._spans import STATUS_ERROR, MappedSpan, OtelEvent, OtelSpan
from prefactor_http.models.types import STATUS_COMPLETE, STATUS_FAILED

__all__ = [
    "GENAI_SCOPE_PREFIXES",
    "SCHEMA_NAMES",
    "MappedSpan",
    "OtelEvent",
    "OtelSpan",
    "agent_id_for_service",
    "instance_id_for_trace",
    "is_genai",
    "is_genai_span",
    "map_span",
    "span_id_for",
]

GENAI_SCOPE_PREFIXES: tuple[str, ...] = (
    "openinference",
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.anthropic",
    "opentelemetry.instrumentation.bedrock",
    "opentelemetry.instrumentation.cohere",
    "opentelemetry.instrumentation.google_generativeai",
    "opentelemetry.instrumentation.vertexai",
    "opentelemetry.instrumentation.mistralai",
    "opentelemetry.instrumentation.groq",
    "opentelemetry.instrumentation.ollama",
    "opentelemetry.instrumentation.langchain",
    "opentelemetry.instrumentation.llamaindex",
    "opentelemetry.instrumentation.crewai",
    "opentelemetry.instrumentation.openai_agents",
    "opentelemetry.instrumentation.openai_v2",
    "pydantic-ai",
    "pydantic_ai",
    "litellm",
    "langsmith",
    "ai",  # the Vercel AI SDK's scope
    "traceloop",
    "logfire",
)
"""Instrumentation scope names (prefixes) whose spans are GenAI spans."""


# -- ids -------------------------------------------------------------------------------

# Prefactor ids made from OTel ids are client-chosen ids (letters, digits, "-", at most 64
# characters) and deterministic, so every export of a trace lands in one instance and a
# resent export finds its spans already stored.


def instance_id_for_trace(trace_id: str) -> str:
    """Return the agent instance id of an OTel trace (``otel-<trace id>``)."""
    return f"otel-{trace_id}"


def span_id_for(trace_id: str, span_id: str) -> str:
    """Return the Prefactor span id of an OTel span (``otel-<trace id>-<span id>``)."""
    return f"otel-{trace_id}-{span_id}"


def agent_id_for_service(service_name: str) -> str:
    """Return the agent id of an OTel ``service.name`` (a stable digest of the name)."""
    return "otel-" + hashlib.sha256(service_name.encode()).hexdigest()[:24]


# -- kinds -----------------------------------------------------------------------------

_OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "RERANKER": "reranker",
    "TOOL": "tool",
    "AGENT": "agent",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "PROMPT": "prompt",
}
_OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "retrieval": "retriever",
}
SCHEMA_NAMES: tuple[str, ...] = (
    *sorted(set(_OPENINFERENCE_KINDS.values()) | set(_OPERATIONS.values())),
    "span",
)
"""Every schema name :func:`map_span` gives."""

_TRACELOOP_KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_MODEL_KEYS = ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model")


def _schema_name(name: str, attrs: Mapping[str, Any]) -> str:
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[kind.upper()]
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation.lower() in _OPERATIONS:
        return _OPERATIONS[operation.lower()]
    traceloop = attrs.get("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop.lower() in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[traceloop.lower()]
    if any(key in attrs for key in _MODEL_KEYS):
        return "llm"
    # GenAI spans are named "{operation} {target}" ("chat gpt-4o", "execute_tool search").
    first = name.split(" ", 1)[0].lower()
    return _OPERATIONS.get(first, "span")


def is_genai_span(span: OtelSpan) -> bool:
    """Whether a span comes from GenAI instrumentation.

    True for a known instrumentation scope (:data:`GENAI_SCOPE_PREFIXES`) or an
    attribute under ``gen_ai.``, ``llm.``, ``openinference.`` or ``traceloop.``.
    """
    return is_genai(span.scope_name, span.attributes)


_GENAI_SCOPES = tuple(
    f"{prefix}{separator}" for prefix in GENAI_SCOPE_PREFIXES for separator in ".-_"
)
_GENAI_KEYS = ("gen_ai.", "llm.", "openinference.", "traceloop.")


def is_genai(scope_name: str, attributes: Mapping[str, Any]) -> bool:
    """:func:`is_genai_span` on a span's scope name and attributes (no span needed)."""
    if scope_name and (scope_name in GENAI_SCOPE_PREFIXES or scope_name.startswith(_GENAI_SCOPES)):
        return True
    return any(key.startswith(_GENAI_KEYS) for key in attributes)


# -- usage -----------------------------------------------------------------------------

_USAGE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "input_tokens",
        ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    ),
    (
        "output_tokens",
        (
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ),
    ),
    (
        "total_tokens",
        ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    ),
    (
        "cache_read_tokens",
        (
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.cache_read.input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ),
    ),
    (
        "cache_write_tokens",
        (
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.cache_creation.input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ),
    ),
    (
        "reasoning_tokens",
        ("gen_ai.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning"),
    ),
)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _usage(attrs: Mapping[str, Any], used: set[str]) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    for name, keys in _USAGE_KEYS:
        for key in keys:
            if key in attrs:
                count = _count(attrs[key])
                if count is not None:
                    used.add(key)
                    usage.setdefault(name, count)
    if not usage:
        return None
    if "total_tokens" not in usage and ("input_tokens" in usage or "output_tokens" in usage):
        usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    return usage


# -- the mapping -----------------------------------------------------------------------


def _first(attrs: Mapping[str, Any], keys: Sequence[str], used: set[str]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            used.add(key)
            return value
    return None


def _error(span: OtelSpan) -> dict[str, Any]:
    error: dict[str, Any] = {}
    for event in span.events:
        if event.name == "exception":
            attrs = event.attributes
            for key, target in (
                ("exception.type", "type"),
                ("exception.message", "message"),
                ("exception.stacktrace", "stacktrace"),
            ):
                if attrs.get(key):
                    error[target] = attrs[key]
            break
    if span.status_message:
        error["message"] = span.status_message
    error.setdefault("message", error.get("type", "error"))
    return error


def map_span(span: OtelSpan) -> MappedSpan:
    """Map one ended OTel span to a Prefactor span (never raises on odd attributes)."""
    attrs = span.attributes
    used: set[str] = {"openinference.span.kind", "traceloop.span.kind"}
    params: dict[str, Any] = {"name": span.name}
    result: dict[str, Any] = {}

    model = _first(attrs, _MODEL_KEYS, used)
    if model is not None:
        params["model"] = model
        used.update(key for key in _MODEL_KEYS if key in attrs)
    provider = _first(
        attrs, ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"), used
    )
    if provider is not None:
        params["provider"] = provider
    groups = indexed(attrs)
    messages = input_messages(attrs, groups, span.events, used)
    if messages:
        params["messages"] = messages
    value = _first(
        attrs, ("input.value", "traceloop.entity.input", "gen_ai.tool.call.arguments"), used
    )
    if value is not None:
        params["input"] = maybe_json(value, attrs.get("input.mime_type"))
        used.add("input.mime_type")
    tool = _first(attrs, ("tool.name", "gen_ai.tool.name"), used)
    if tool is not None:
        params["tool"] = tool
    invocation = _first(attrs, ("llm.invocation_parameters",), used)
    if invocation is not None:
        invocation = params["invocation_parameters"] = maybe_json(invocation)
        # A failed call has no response model: the requested one is the next best.
        if "model" not in params and isinstance(invocation, dict) and invocation.get("model"):
            params["model"] = invocation["model"]

    out_messages = output_messages(attrs, groups, span.events, used)
    if out_messages:
        result["messages"] = out_messages
    output = _first(
        attrs, ("output.value", "traceloop.entity.output", "gen_ai.tool.call.result"), used
    )
    if output is not None:
        result["output"] = maybe_json(output, attrs.get("output.mime_type"))
        used.add("output.mime_type")
    usage = _usage(attrs, used)
    if usage is not None:
        result["usage"] = usage
    cost = _first(attrs, ("llm.cost.total", "gen_ai.usage.cost"), used)
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        result["cost"] = float(cost)
    documents = take(groups, "retrieval.documents.", used)
    if documents:
        result["documents"] = [item.get("document", item) for item in documents]

    failed = span.status_code == STATUS_ERROR
    if failed:
        result["error"] = _error(span)

    remaining = {key: value for key, value in attrs.items() if key not in used}
    if remaining:
        params["attributes"] = remaining
    return MappedSpan(
        schema_name=_schema_name(span.name, attrs),
        status=STATUS_FAILED if failed else STATUS_COMPLETE,
        params=params,
        result=result,
    )
