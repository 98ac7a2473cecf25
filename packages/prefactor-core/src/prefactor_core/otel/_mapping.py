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
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "GENAI_SCOPE_PREFIXES",
    "SCHEMA_NAMES",
    "MappedSpan",
    "OtelEvent",
    "OtelSpan",
    "agent_id_for_service",
    "instance_id_for_trace",
    "is_genai_span",
    "map_span",
    "span_id_for",
]

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

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


@dataclass(frozen=True)
class OtelEvent:
    """One span event: its name, time (ns since the epoch) and attributes."""

    name: str
    time_ns: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class OtelSpan:
    """An ended OpenTelemetry span, decoded from OTLP or taken from the OTel SDK.

    Attributes:
        trace_id: 32 lowercase hex characters.
        span_id: 16 lowercase hex characters.
        parent_span_id: The parent's 16 hex characters, or None for a root span.
        name: The span name.
        start_ns: Start time in nanoseconds since the epoch.
        end_ns: End time in nanoseconds since the epoch.
        status_code: 0 unset, 1 ok, 2 error (OTLP's ``Status.code``).
        status_message: The status description.
        attributes: Attribute values: str, bool, int, float, or lists of them.
        events: The span's events.
        kind: OTLP's span kind number (1 internal ... 5 consumer; 0 unspecified).
        scope_name: The instrumentation scope (library) name.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: int = STATUS_UNSET
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[OtelEvent] = ()
    kind: int = 0
    scope_name: str = ""


@dataclass(frozen=True)
class MappedSpan:
    """A Prefactor span made from an :class:`OtelSpan`.

    Attributes:
        schema_name: ``llm``, ``tool``, ``agent``, ``chain``, ``retriever``, ...
            or ``span``.
        status: ``complete`` or ``failed``.
        params: The span payload (see the module docstring).
        result: The result payload.
    """

    schema_name: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any]


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
    scope = span.scope_name
    if scope and any(
        scope == prefix or scope.startswith((prefix + ".", prefix + "-", prefix + "_"))
        for prefix in GENAI_SCOPE_PREFIXES
    ):
        return True
    return any(
        key.startswith(("gen_ai.", "llm.", "openinference.", "traceloop."))
        for key in span.attributes
    )


# -- values ----------------------------------------------------------------------------


def _maybe_json(value: Any, mime: Any = None) -> Any:
    """Decode a JSON string (objects and arrays only, or when the mime type says JSON)."""
    if not isinstance(value, str):
        return value
    stripped = value.lstrip()
    if (isinstance(mime, str) and "json" in mime) or stripped[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


_INDEXED_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
)

Indexed = dict[str, tuple[dict[int, dict[str, Any]], list[str]]]
"""Flattened list attributes: prefix → (index → the rest of the key → value, the keys)."""


def _indexed(attrs: Mapping[str, Any]) -> Indexed:
    """Group ``<prefix>N.<key>`` attributes in one pass over the attributes."""
    groups: Indexed = {}
    for key, value in attrs.items():
        if not key.startswith(_INDEXED_PREFIXES):
            continue
        for prefix in _INDEXED_PREFIXES:
            if key.startswith(prefix):
                index, _, rest = key[len(prefix) :].partition(".")
                if index.isdigit() and rest:
                    group = groups.get(prefix)
                    if group is None:
                        group = groups[prefix] = ({}, [])
                    group[0].setdefault(int(index), {})[rest] = value
                    group[1].append(key)
                break
    return groups


def _take(groups: Indexed, prefix: str, used: set[str]) -> list[dict[str, Any]]:
    """The items of one flattened list, in index order (their keys count as used)."""
    group = groups.get(prefix)
    if group is None:
        return []
    items, keys = group
    used.update(keys)
    return [_nest(items[index]) for index in sorted(items)]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``a.0.b`` keys into nested dicts and lists (``{"a": [{"b": ...}]}``)."""
    root: dict[str, Any] = {}
    numbered = False
    for key, value in flat.items():
        parts = key.split(".")
        node: dict[str, Any] = root
        for part in parts[:-1]:
            numbered = numbered or part.isdigit()
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    if not numbered:
        return root
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _tool_call(raw: Mapping[str, Any]) -> dict[str, Any]:
    call = raw.get("tool_call", raw)
    if not isinstance(call, Mapping):
        return {"value": call}
    function = call.get("function", {})
    out: dict[str, Any] = {}
    if "id" in call:
        out["id"] = call["id"]
    if isinstance(function, Mapping):
        if "name" in function:
            out["name"] = function["name"]
        if "arguments" in function:
            out["arguments"] = _maybe_json(function["arguments"])
    for key in ("name", "arguments"):
        if key in call and key not in out:
            out[key] = _maybe_json(call[key])
    return out


def _message(raw: Any) -> dict[str, Any]:
    """Normalise one message of any known shape to ``{"role", "content", "tool_calls"?}``."""
    if not isinstance(raw, Mapping):
        return {"role": "unknown", "content": raw}
    message: Any = raw.get("message", raw)
    if not isinstance(message, Mapping):
        return {"role": "unknown", "content": message}
    out: dict[str, Any] = {"role": message.get("role", "unknown")}
    content = message.get("content")
    parts = message.get("parts")
    if parts is None and isinstance(message.get("contents"), list):
        parts = [item.get("message_content", item) for item in message["contents"]]
    tool_calls = [_tool_call(call) for call in message.get("tool_calls") or () if call]
    if isinstance(parts, list):
        texts: list[str] = []
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            text = part.get("content", part.get("text"))
            if kind == "text" and isinstance(text, str):
                texts.append(text)
            elif kind == "tool_call":
                tool_calls.append(
                    {
                        key: _maybe_json(part[key]) if key == "arguments" else part[key]
                        for key in ("id", "name", "arguments")
                        if key in part
                    }
                )
            elif kind == "tool_call_response":
                out["tool_call_id"] = part.get("id")
                response = part.get("response")
                texts.append(
                    response if isinstance(response, str) else orjson.dumps(response).decode()
                )
        if content is None:
            content = "\n".join(texts) if texts else None
    if content is not None:
        out["content"] = content
    if tool_calls:
        out["tool_calls"] = tool_calls
    for key in ("name", "tool_call_id", "finish_reason"):
        if key in message and key not in out:
            out[key] = message[key]
    return out


def _messages(value: Any) -> list[dict[str, Any]] | None:
    value = _maybe_json(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return None
    return [_message(item) for item in value]


def _input_messages(
    attrs: Mapping[str, Any], groups: Indexed, events: Sequence[OtelEvent], used: set[str]
) -> list[dict[str, Any]] | None:
    for key in ("gen_ai.input.messages", "gen_ai.prompt"):
        if key in attrs:
            found = _messages(attrs[key])
            if found is not None:
                used.add(key)
                system = attrs.get("gen_ai.system_instructions")
                if system is not None:
                    used.add("gen_ai.system_instructions")
                    found.insert(0, {"role": "system", "content": _system_text(system)})
                return found
    for prefix in ("llm.input_messages.", "gen_ai.prompt."):
        flat = _take(groups, prefix, used)
        if flat:
            return [_message(item) for item in flat]
    from_events = []
    for event in events:
        if event.name in _MESSAGE_EVENTS:
            message = _message(dict(event.attributes))
            if message["role"] == "unknown":
                message["role"] = event.name.split(".")[1]  # gen_ai.<role>.message
            from_events.append(message)
    return from_events or None


_MESSAGE_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
    }
)


def _system_text(value: Any) -> Any:
    decoded = _maybe_json(value)
    if isinstance(decoded, list):
        texts = [part.get("content") for part in decoded if isinstance(part, Mapping)]
        strings = [text for text in texts if isinstance(text, str)]
        if strings and len(strings) == len(decoded):
            return "\n".join(strings)
    return decoded


def _output_messages(
    attrs: Mapping[str, Any], groups: Indexed, events: Sequence[OtelEvent], used: set[str]
) -> list[dict[str, Any]] | None:
    for key in ("gen_ai.output.messages", "gen_ai.completion"):
        if key in attrs:
            found = _messages(attrs[key])
            if found is not None:
                used.add(key)
                return found
    for prefix in ("llm.output_messages.", "gen_ai.completion."):
        flat = _take(groups, prefix, used)
        if flat:
            return [_message(item) for item in flat]
    choices = []
    for event in events:
        if event.name == "gen_ai.choice":
            body = dict(event.attributes)
            nested = _maybe_json(body.get("message"))
            choices.append(_message(nested if isinstance(nested, Mapping) else body))
    return choices or None


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
    groups = _indexed(attrs)
    messages = _input_messages(attrs, groups, span.events, used)
    if messages:
        params["messages"] = messages
    value = _first(
        attrs, ("input.value", "traceloop.entity.input", "gen_ai.tool.call.arguments"), used
    )
    if value is not None:
        params["input"] = _maybe_json(value, attrs.get("input.mime_type"))
        used.add("input.mime_type")
    tool = _first(attrs, ("tool.name", "gen_ai.tool.name"), used)
    if tool is not None:
        params["tool"] = tool
    invocation = _first(attrs, ("llm.invocation_parameters",), used)
    if invocation is not None:
        invocation = params["invocation_parameters"] = _maybe_json(invocation)
        # A failed call has no response model: the requested one is the next best.
        if "model" not in params and isinstance(invocation, dict) and invocation.get("model"):
            params["model"] = invocation["model"]

    out_messages = _output_messages(attrs, groups, span.events, used)
    if out_messages:
        result["messages"] = out_messages
    output = _first(
        attrs, ("output.value", "traceloop.entity.output", "gen_ai.tool.call.result"), used
    )
    if output is not None:
        result["output"] = _maybe_json(output, attrs.get("output.mime_type"))
        used.add("output.mime_type")
    usage = _usage(attrs, used)
    if usage is not None:
        result["usage"] = usage
    cost = _first(attrs, ("llm.cost.total", "gen_ai.usage.cost"), used)
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        result["cost"] = float(cost)
    documents = _take(groups, "retrieval.documents.", used)
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
        status="failed" if failed else "complete",
        params=params,
        result=result,
    )
