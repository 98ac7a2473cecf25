"""Which OpenTelemetry spans are GenAI spans, what kind each is, and the Prefactor ids of
OTel traces, spans and services (used by ``_mapping`` and the SDK's span processor; no
``opentelemetry`` import).

Kinds come, in order of preference, from OpenInference's ``openinference.span.kind``, the
GenAI conventions' ``gen_ai.operation.name``, OpenLLMetry's ``traceloop.span.kind``, a
model attribute (an LLM call), and the GenAI span name's first word
(``"{operation} {target}"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from prefactor_core.otel._spans import OtelSpan

__all__ = [
    "GENAI_SCOPE_PREFIXES",
    "MODEL_KEYS",
    "SCHEMA_NAMES",
    "agent_id_for_service",
    "instance_id_for_trace",
    "is_genai",
    "is_genai_span",
    "schema_name",
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
MODEL_KEYS = ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model")


def schema_name(name: str, known: Mapping[str, Any]) -> str:
    """The schema name of a span named ``name`` with the attributes ``known`` (those the
    mapping reads): the first convention that says what kind of span it is."""
    kind = known.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[kind.upper()]
    operation = known.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation.lower() in _OPERATIONS:
        return _OPERATIONS[operation.lower()]
    traceloop = known.get("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop.lower() in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[traceloop.lower()]
    if any(key in known for key in MODEL_KEYS):
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
