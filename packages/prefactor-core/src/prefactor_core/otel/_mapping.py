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
Which spans are GenAI spans, their schema names and the ids Prefactor gives them are
``_genai``'s (re-exported here, the mapping's one door for the server).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from prefactor_core.otel._genai import (
    GENAI_SCOPE_PREFIXES,
    MODEL_KEYS,
    SCHEMA_NAMES,
    agent_id_for_service,
    instance_id_for_trace,
    is_genai,
    is_genai_span,
    schema_name,
    span_id_for,
)
from prefactor_core.otel._messages import (
    Indexed,
    input_messages,
    list_item_key,
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
    "json_safe",
    "map_span",
    "span_id_for",
]

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


_COUNT_END = 1 << 63


def _count(value: Any) -> int | None:
    """A token count: an integer, an integral float or ASCII digits, 0 ≤ n < 2^63.
    Anything else is no count (the attribute is kept as sent): a larger number (or the
    sum of two) could not be stored as JSON, and ``str.isdigit`` also takes digits
    ``int`` refuses ('²')."""
    if value.__class__ is int:  # the usual case first (a bool is an int, not of class int)
        return value if 0 <= value < _COUNT_END else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < _COUNT_END else None
    if isinstance(value, float) and value.is_integer():
        return _count(int(value))
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return _count(int(value))
    return None


# Each usage key's place in _USAGE_KEYS (names in order, each name's keys by preference)
# and its name: a span's few usage keys are read in that order without trying all 17.
_USAGE_RANK = {key: rank for rank, key in enumerate(key for _, keys in _USAGE_KEYS for key in keys)}
_USAGE_NAME = {key: name for name, keys in _USAGE_KEYS for key in keys}


def _usage(known: Mapping[str, Any], used: set[str]) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    present = [key for key in known if key in _USAGE_RANK]
    if len(present) > 1:
        present.sort(key=_USAGE_RANK.__getitem__)
    for key in present:
        count = _count(known[key])
        if count is not None:
            used.add(key)
            usage.setdefault(_USAGE_NAME[key], count)
    if not usage:
        return None
    if "total_tokens" not in usage and ("input_tokens" in usage or "output_tokens" in usage):
        usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    return usage


# -- the mapping -----------------------------------------------------------------------

_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_INPUT_KEYS = ("input.value", "traceloop.entity.input", "gen_ai.tool.call.arguments")
_TOOL_KEYS = ("tool.name", "gen_ai.tool.name")
_INVOCATION_KEYS = ("llm.invocation_parameters",)
_OUTPUT_KEYS = ("output.value", "traceloop.entity.output", "gen_ai.tool.call.result")
_COST_KEYS = ("llm.cost.total", "gen_ai.usage.cost")
_KIND_KEYS = ("openinference.span.kind", "traceloop.span.kind")
_OPERATION_KEY = "gen_ai.operation.name"
_KIND_KEY_SET = frozenset(_KIND_KEYS)
_MODEL_KEY_SET = frozenset(MODEL_KEYS)

# Every attribute a rule reads, with the rule's bit: one pass over a span's attributes
# files them (and notes which rules have anything to read); the rest are kept as they are.
_MODEL, _PROVIDER, _MESSAGES, _INPUT, _TOOL, _INVOCATION, _OUTPUT, _USAGE, _COST = (
    1 << bit for bit in range(9)
)
_OTHER = 1 << 9  # read by a rule of another bit (mime types, system instructions, kinds)
_OPERATION = 1 << 10  # read for the schema name, but kept in the attributes
_RULES: dict[str, int] = {
    **dict.fromkeys(MODEL_KEYS, _MODEL),
    **dict.fromkeys(_PROVIDER_KEYS, _PROVIDER),
    **dict.fromkeys(
        (
            "gen_ai.input.messages",
            "gen_ai.prompt",
            "gen_ai.output.messages",
            "gen_ai.completion",
        ),
        _MESSAGES,
    ),
    **dict.fromkeys(_INPUT_KEYS, _INPUT),
    **dict.fromkeys(_TOOL_KEYS, _TOOL),
    **dict.fromkeys(_INVOCATION_KEYS, _INVOCATION),
    **dict.fromkeys(_OUTPUT_KEYS, _OUTPUT),
    **dict.fromkeys((key for _, keys in _USAGE_KEYS for key in keys), _USAGE),
    **dict.fromkeys(_COST_KEYS, _COST),
    **dict.fromkeys(
        ("input.mime_type", "output.mime_type", "gen_ai.system_instructions", *_KIND_KEYS),
        _OTHER,
    ),
    _OPERATION_KEY: _OPERATION,
}


def _first(known: Mapping[str, Any], keys: Sequence[str], used: set[str]) -> Any:
    for key in keys:
        value = known.get(key)
        if value is not None and value != "":
            used.add(key)
            return value
    return None


def _value(
    known: Mapping[str, Any],
    keys: Sequence[str],
    mime_key: str,
    used: set[str],
    into: dict[str, Any],
    name: str,
) -> None:
    """An input or output value (JSON decoded when it is JSON; its mime type consumed)."""
    value = _first(known, keys, used)
    if value is not None:
        into[name] = maybe_json(value, known.get(mime_key))
        if mime_key in known:
            used.add(mime_key)


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


# What each attribute key is, cached (keys repeat from span to span): a rule's bit, a place
# in a flattened list, or None for a key kept as it is. Bounded: past the bound, keys a
# sender made up are worked out each time instead of filling memory.
_KINDS: dict[str, int | tuple[str, int, str] | None] = dict(_RULES)
_KINDS_BOUND = 20_000
_UNSEEN = object()


def _kind(key: str) -> tuple[str, int, str] | None:
    kind = list_item_key(key)
    if len(_KINDS) < _KINDS_BOUND:
        _KINDS[key] = kind
    return kind


def _read(
    attrs: Mapping[str, Any],
) -> tuple[dict[str, Any], int, Indexed, dict[str, Any]]:
    """One pass over the attributes: those a rule reads (and the rules' bits), the
    flattened lists, and the others in their order."""
    known: dict[str, Any] = {}
    present = 0
    groups: Indexed = {}
    rest: dict[str, Any] = {}
    kind_of = _KINDS.get
    for key, value in attrs.items():
        kind: Any = kind_of(key, _UNSEEN)
        if kind is None:
            rest[key] = value
            continue
        if kind is _UNSEEN:
            kind = _kind(key)
            if kind is None:
                rest[key] = value
                continue
        if kind.__class__ is int:
            known[key] = value
            present |= kind
            if kind == _OPERATION:
                rest[key] = value
            continue
        prefix, index, tail = kind
        group = groups.get(prefix)
        if group is None:
            groups[prefix] = ({index: {tail: value}}, [key])
            continue
        items = group[0].get(index)
        if items is None:
            group[0][index] = {tail: value}
        else:
            items[tail] = value
        group[1].append(key)
    return known, present, groups, rest


def map_span(span: OtelSpan) -> MappedSpan:
    """Map one ended OTel span to a Prefactor span (never raises on odd attributes)."""
    attrs = span.attributes
    known, present, groups, rest = _read(attrs)
    used: set[str] = known.keys() & _KIND_KEY_SET if present & _OTHER else set()
    taken: list[str] = []  # the flattened lists consumed
    params: dict[str, Any] = {"name": span.name}
    result: dict[str, Any] = {}

    if present & _MODEL:
        model = _first(known, MODEL_KEYS, used)
        if model is not None:
            params["model"] = model
            used.update(known.keys() & _MODEL_KEY_SET)
    if present & _PROVIDER:
        provider = _first(known, _PROVIDER_KEYS, used)
        if provider is not None:
            params["provider"] = provider
    events = span.events
    # The message readers look at JSON message attributes, flattened lists and events.
    readable = present & _MESSAGES or groups or events
    messages = input_messages(known, groups, events, used, taken) if readable else None
    if messages:
        params["messages"] = messages
    if present & _INPUT:
        _value(known, _INPUT_KEYS, "input.mime_type", used, params, "input")
    if present & _TOOL:
        tool = _first(known, _TOOL_KEYS, used)
        if tool is not None:
            params["tool"] = tool
    if present & _INVOCATION:
        invocation = _first(known, _INVOCATION_KEYS, used)
        if invocation is not None:
            invocation = params["invocation_parameters"] = maybe_json(invocation)
            # A failed call has no response model: the requested one is the next best.
            if "model" not in params and isinstance(invocation, dict) and invocation.get("model"):
                params["model"] = invocation["model"]

    out_messages = output_messages(known, groups, events, used, taken) if readable else None
    if out_messages:
        result["messages"] = out_messages
    if present & _OUTPUT:
        _value(known, _OUTPUT_KEYS, "output.mime_type", used, result, "output")
    if present & _USAGE:
        usage = _usage(known, used)
        if usage is not None:
            result["usage"] = usage
    if present & _COST:
        cost = _first(known, _COST_KEYS, used)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            result["cost"] = float(cost)
    if groups:
        documents = take(groups, "retrieval.documents.", taken)
        if documents:
            result["documents"] = [item.get("document", item) for item in documents]

    failed = span.status_code == STATUS_ERROR
    if failed:
        result["error"] = _error(span)

    if len(used) + (_OPERATION_KEY in known) < len(known) or len(taken) < len(groups):
        # A read attribute no rule consumed, or a flattened list not used: kept, in order.
        for prefix in taken:
            used.update(groups[prefix][1])
        rest = {key: value for key, value in attrs.items() if key not in used}
    if rest:
        params["attributes"] = rest
    return MappedSpan(
        schema_name(span.name, known), STATUS_FAILED if failed else STATUS_COMPLETE, params, result
    )


_INT64_MIN, _INT64_END = -(1 << 63), 1 << 63


def json_safe(value: Any) -> Any:
    """``value`` (a payload) with what JSON cannot hold as text, as the server's OTLP
    decoders keep it: every integer outside 64 bits as its digits, NaN and the infinities
    as ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (orjson would refuse the first and write
    ``null`` for the others; the OTel SDK takes any Python int or float as an attribute).
    Other values are returned as they are.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int):
        if _INT64_MIN <= value < _INT64_END:
            return value
        try:
            return str(value)
        except ValueError:  # more digits than Python converts to text
            return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
