"""Prefactor operations → OpenTelemetry spans: the conversion behind :class:`OtelSpanMirror`.

:class:`Outbound` reads the operations a client's engine takes in, in queue order, and
gives one ended OTel ``ReadableSpan`` per finished Prefactor span, plus one root span per
agent instance when the instance finishes:

* **Traces.** An agent instance is one OTel trace. Its trace id is the instance id when
  that is 32 hexadecimal digits (a UUID too), else the first 16 bytes of its BLAKE2b
  digest, so the same instance always lands in the same trace. A span's OTel id is its
  own id when that is 16 hexadecimal digits, else an 8-byte digest of it.
* **Tree.** A span with a Prefactor parent has that parent's OTel id as parent (derived,
  so it holds whether the parent has ended or not). A span without one hangs under its
  instance's root span (named after the agent, ``openinference.span.kind`` ``AGENT``),
  which is emitted when the instance finishes. A Prefactor span opened inside an OTel
  span that :class:`PrefactorSpanProcessor` bridged (parent ``otel-<trace>-<span>``)
  joins that OTel span's own trace, under it, and so do its descendants.
* **Never twice.** Spans and instances that came from OpenTelemetry (ids starting
  ``otel-``) are not sent back; operations reloaded from the spool (a previous process
  may have mirrored them) are skipped.
* **Attributes.** ``prefactor.span_id``, ``prefactor.agent_instance_id``,
  ``prefactor.schema_name``, ``prefactor.status``; the params and the result as
  OpenInference's ``input.value`` / ``output.value`` (JSON, with their mime types); the
  OpenInference kind from the schema name's last segment (``llm``, ``tool``, ...); the
  model (``gen_ai.request.model``, ``llm.model_name``) and token counts
  (``gen_ai.usage.*``, ``llm.token_count.*``) from the payloads' ``model`` and
  ``usage``. A failed span has status ``ERROR`` and an ``exception`` event from its
  result's ``error``; a cancelled one keeps status ``UNSET``.

State is bounded: at most ``max_open`` spans wait for their finish (the oldest is
forgotten beyond it, counted in ``forgotten``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from prefactor_core._engine.optable import (
    BODY,
    FINISHED_AT,
    INSTANCE_ID,
    PARENT_SPAN_ID,
    PAYLOAD_JSON,
    RECOVERED,
    RESULT_JSON,
    SCHEMA_NAME,
    SPAN_ID,
    STARTED_AT,
    STATUS,
    TIMESTAMP,
)
from prefactor_core._version import __version__
from prefactor_core.operations import Operation, OperationType

__all__ = ["Outbound", "otel_span_id", "otel_trace_id"]

_SCOPE = InstrumentationScope("prefactor-core", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ENDED = frozenset({"complete", "failed", "cancelled"})
_FROM_OTEL = "otel-"
_HEX = frozenset("0123456789abcdefABCDEF")
_KINDS = {
    "llm": "LLM",
    "chat": "LLM",
    "embedding": "EMBEDDING",
    "chain": "CHAIN",
    "retriever": "RETRIEVER",
    "reranker": "RERANKER",
    "tool": "TOOL",
    "agent": "AGENT",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
    "prompt": "PROMPT",
}
_JSON = "application/json"

Emit = Callable[[ReadableSpan], None]


def otel_trace_id(instance_id: str) -> int:
    """The OTel trace id of an agent instance (see the module)."""
    digits = instance_id.replace("-", "") if len(instance_id) == 36 else instance_id
    if len(digits) == 32 and _HEX.issuperset(digits) and int(digits, 16):
        return int(digits, 16)
    return _digest(instance_id, 16)


def otel_span_id(span_id: str) -> int:
    """The OTel span id of a Prefactor span (see the module)."""
    if len(span_id) == 16 and _HEX.issuperset(span_id) and int(span_id, 16):
        return int(span_id, 16)
    return _digest(span_id, 8)


def _digest(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest(), "big")
    return value or 1  # zero is OTel's invalid id


def _bridged(prefactor_id: str) -> tuple[int, int] | None:
    """The OTel trace and span id of a span the OTel bridge made (``otel-<t>-<s>``)."""
    parts = prefactor_id.split("-")
    if len(parts) != 3 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


@dataclass(slots=True)
class _Run:
    """An agent instance seen being registered: what its root span needs."""

    name: str
    attributes: dict[str, Any]
    started: int | None = None


@dataclass(slots=True)
class _Open:
    """A span created and not yet finished."""

    create: Operation
    trace_id: int
    parent: SpanContext | None


class Outbound:
    """Turns the engine's operations into ended OTel spans (see the module).

    Args:
        resource: The resource of every span it makes.
        emit: Called with each ended span, in the order the spans finished.
        max_open: The most spans kept waiting for their finish.

    Attributes:
        emitted: Spans handed to ``emit``.
        forgotten: Spans forgotten before their finish (more than ``max_open`` open).
        unmatched: Span finishes without a create seen (created before the mirror
            started).
    """

    def __init__(self, resource: Resource, emit: Emit, max_open: int = 100_000) -> None:
        self._resource = resource
        self._emit = emit
        self._max_open = max_open
        self._runs: dict[str, _Run] = {}
        self._open: dict[str, _Open] = {}
        # instance id → its trace id and the context of its root span (digests, cached)
        self._roots: dict[str, SpanContext] = {}
        self.emitted = 0
        self.forgotten = 0
        self.unmatched = 0

    def take(self, op: Operation) -> None:
        """Read one operation (in queue order)."""
        if RECOVERED in op.metadata:
            return
        kind = op.type
        p = op.payload
        if kind is OperationType.CREATE_SPAN:
            if not p[SPAN_ID].startswith(_FROM_OTEL):
                self._create(op)
        elif kind is OperationType.FINISH_SPAN:
            opened = self._open.pop(p[SPAN_ID], None)
            if opened is not None:
                self._span(opened, p[STATUS], p.get(RESULT_JSON), p.get(TIMESTAMP))
            elif not p[SPAN_ID].startswith(_FROM_OTEL):
                self.unmatched += 1
        elif kind is OperationType.REGISTER_AGENT_INSTANCE:
            self._register(p)
        elif kind is OperationType.START_AGENT_INSTANCE:
            run = self._runs.get(p[INSTANCE_ID])
            if run is not None and p.get(TIMESTAMP) is not None:
                run.started = _ns(p[TIMESTAMP])
        elif kind is OperationType.FINISH_AGENT_INSTANCE:
            run = self._runs.pop(p[INSTANCE_ID], None)
            if run is not None:
                self._finish_run(p[INSTANCE_ID], run, p[STATUS], p.get(TIMESTAMP), op)

    # -- spans ----------------------------------------------------------------------------

    def _create(self, op: Operation) -> None:
        p = op.payload
        instance_id = p[INSTANCE_ID]
        parent_id = p.get(PARENT_SPAN_ID)
        parent: SpanContext | None = None
        if parent_id is not None:
            opened = self._open.get(parent_id)
            bridged = _bridged(parent_id) if parent_id.startswith(_FROM_OTEL) else None
            if opened is not None:
                trace_id = opened.trace_id
            elif bridged is not None:
                trace_id = bridged[0]
            else:
                trace_id = self._trace(instance_id)
            span_id = bridged[1] if bridged is not None else otel_span_id(parent_id)
            parent = SpanContext(trace_id, span_id, False, _SAMPLED)
        elif instance_id.startswith(_FROM_OTEL):  # a run the bridge made: its OTel trace
            trace_id = self._trace(instance_id)
        else:
            parent = self._root(instance_id)
            trace_id = parent.trace_id
        opened = _Open(op, trace_id, parent)
        if p[STATUS] in _ENDED:  # a create that carries its finish
            self._span(opened, p[STATUS], p.get(RESULT_JSON), p.get(FINISHED_AT))
            return
        table = self._open
        table[p[SPAN_ID]] = opened
        if len(table) > self._max_open:
            del table[next(iter(table))]
            self.forgotten += 1

    def _trace(self, instance_id: str) -> int:
        """The trace of an instance: its OTel trace for an instance the bridge made."""
        if instance_id.startswith(_FROM_OTEL):
            digits = instance_id[len(_FROM_OTEL) :]
            if len(digits) == 32 and _HEX.issuperset(digits):
                return int(digits, 16) or 1
        return self._root(instance_id).trace_id

    def _root(self, instance_id: str) -> SpanContext:
        """The context of an instance's root span (its trace id and root span id)."""
        roots = self._roots
        root = roots.get(instance_id)
        if root is None:
            if len(roots) >= self._max_open:
                roots.clear()  # recomputed on demand: a bound, not a loss
            root = roots[instance_id] = SpanContext(
                otel_trace_id(instance_id), _root_id(instance_id), False, _SAMPLED
            )
        return root

    def _span(self, opened: _Open, status: str, result: str | None, at: float | None) -> None:
        span = self._make(opened, status, result, at)
        self.emitted += 1
        self._emit(span)

    def _make(
        self, opened: _Open, status: str, result: str | None, at: float | None
    ) -> ReadableSpan:
        p = opened.create.payload
        schema = p[SCHEMA_NAME]
        span_id = p[SPAN_ID]
        attributes: dict[str, Any] = {
            "prefactor.span_id": span_id,
            "prefactor.agent_instance_id": p[INSTANCE_ID],
            "prefactor.schema_name": schema,
            "prefactor.status": status,
        }
        kind = _KINDS.get(schema.replace(".", ":").rsplit(":", 1)[-1].lower())
        if kind is not None:
            attributes["openinference.span.kind"] = kind
        params = p.get(PAYLOAD_JSON)
        if params and params != "{}":
            attributes["input.value"] = params
            attributes["input.mime_type"] = _JSON
            if '"model"' in params:
                _model(orjson.loads(params), attributes)
        error: dict[str, Any] | None = None
        if result:
            attributes["output.value"] = result
            attributes["output.mime_type"] = _JSON
            if '"usage"' in result or '"error"' in result or '"model"' in result:
                decoded = orjson.loads(result)
                if isinstance(decoded, dict):
                    _usage(decoded.get("usage"), attributes)
                    if "gen_ai.request.model" not in attributes:
                        _model(decoded, attributes)
                    found = decoded.get("error")
                    error = found if isinstance(found, dict) else None
        started = p.get(STARTED_AT)
        start = _ns(started) if started is not None else _ns(opened.create.timestamp.timestamp())
        end = _ns(at) if at is not None else start
        return ReadableSpan(
            name=schema,
            context=SpanContext(opened.trace_id, otel_span_id(span_id), False, _SAMPLED),
            parent=opened.parent,
            resource=self._resource,
            attributes=attributes,
            events=_exception(error, end) if status == "failed" else (),
            kind=SpanKind.INTERNAL,
            status=_status(status, error),
            start_time=start,
            end_time=max(end, start),
            instrumentation_scope=_SCOPE,
        )

    # -- instances -----------------------------------------------------------------------

    def _register(self, p: dict[str, Any]) -> None:
        instance_id = p[INSTANCE_ID]
        if instance_id.startswith(_FROM_OTEL):
            return
        body = p.get(BODY) or {}
        version = body.get("agent_version")
        name = version.get("name") if isinstance(version, dict) else None
        attributes: dict[str, Any] = {
            "prefactor.agent_instance_id": instance_id,
            "openinference.span.kind": "AGENT",
        }
        for key in ("agent_id", "environment_id", "purpose", "external_identifier"):
            value = body.get(key)
            if isinstance(value, str):
                attributes[f"prefactor.{key}"] = value
        if isinstance(name, str):
            attributes["prefactor.agent_version.name"] = name
        self._runs[instance_id] = _Run(
            name if isinstance(name, str) and name else "agent run", attributes
        )
        if len(self._runs) > self._max_open:
            del self._runs[next(iter(self._runs))]
            self.forgotten += 1

    def _finish_run(
        self, instance_id: str, run: _Run, status: str, at: float | None, op: Operation
    ) -> None:
        end = _ns(at) if at is not None else _ns(op.timestamp.timestamp())
        start = run.started if run.started is not None else end
        attributes = {**run.attributes, "prefactor.status": status}
        span = ReadableSpan(
            name=run.name,
            context=self._root(instance_id),
            parent=None,
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            status=_status(status, None),
            start_time=start,
            end_time=max(end, start),
            instrumentation_scope=_SCOPE,
        )
        self.emitted += 1
        self._emit(span)


def _root_id(instance_id: str) -> int:
    return _digest("instance:" + instance_id, 8)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _model(params: Any, attributes: dict[str, Any]) -> None:
    model = params.get("model") if isinstance(params, dict) else None
    if isinstance(model, str) and model:
        attributes["gen_ai.request.model"] = model
        attributes["llm.model_name"] = model


_TOKENS = (
    (("input_tokens", "prompt_tokens"), ("gen_ai.usage.input_tokens", "llm.token_count.prompt")),
    (
        ("output_tokens", "completion_tokens"),
        ("gen_ai.usage.output_tokens", "llm.token_count.completion"),
    ),
    (("total_tokens",), ("llm.token_count.total",)),
)


def _usage(usage: Any, attributes: dict[str, Any]) -> None:
    if not isinstance(usage, dict):
        return
    for names, keys in _TOKENS:
        for name in names:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                for key in keys:
                    attributes[key] = value
                break


_OK = Status(StatusCode.OK)
_UNSET = Status(StatusCode.UNSET)


def _status(status: str, error: dict[str, Any] | None) -> Status:
    if status == "failed":
        return Status(StatusCode.ERROR, _describe(error))
    return _OK if status == "complete" else _UNSET


def _describe(error: dict[str, Any] | None) -> str | None:
    if error is None:
        return None
    kind, message = error.get("type"), error.get("message")
    if isinstance(kind, str) and isinstance(message, str):
        return f"{kind}: {message}" if message else kind
    return message if isinstance(message, str) else None


def _exception(error: dict[str, Any] | None, at: int) -> tuple[Event, ...]:
    if error is None:
        return ()
    attributes = {
        name: value
        for name, value in (
            ("exception.type", error.get("type")),
            ("exception.message", error.get("message")),
            ("exception.stacktrace", error.get("stacktrace") or error.get("stack")),
        )
        if isinstance(value, str)
    }
    return (Event("exception", attributes, at),) if attributes else ()
