"""Reading OpenTelemetry SDK spans for :class:`PrefactorSpanProcessor`: the neutral form
the shared mapping takes (built cheaply from an ended span), the default filter and the
service.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from prefactor_core.otel._mapping import OtelEvent, OtelSpan, is_genai

__all__ = [
    "SpanFilter",
    "attributes_of",
    "default_span_filter",
    "ended_otel_span",
    "service_of",
    "to_otel_span",
]

SpanFilter = Callable[[ReadableSpan], bool]
"""Decides whether a span is forwarded to Prefactor. Called once per span, when its
verdict is first needed: when it ends, or earlier, while it is still open, when a
forwarded span inside it ends (on the processor's worker thread) or a Prefactor span
opens inside it (on that span's thread)."""


def to_otel_span(span: ReadableSpan) -> OtelSpan:
    """Convert an OTel SDK span to the mapping's neutral form."""
    context = span.context
    parent = span.parent
    return ended_otel_span(
        span,
        format(context.trace_id, "032x") if context is not None else "0" * 32,
        format(context.span_id, "016x") if context is not None else "0" * 16,
        format(parent.span_id, "016x") if parent is not None else None,
    )


def ended_otel_span(
    span: ReadableSpan, trace_id: str, span_id: str, parent_span_id: str | None
) -> OtelSpan:
    """:func:`to_otel_span` with the ids already formatted (the processor knows them).

    The span must have ended: its attributes are read in place, not copied (the SDK
    freezes them when a span ends).
    """
    scope = span.instrumentation_scope
    status = span.status
    events = _events_of(span)
    start = span.start_time or 0
    return OtelSpan(
        trace_id,
        span_id,
        parent_span_id,
        span.name,
        start,
        span.end_time or start,
        _STATUS_CODES.get(status.status_code, 0),
        status.description or "",
        attributes_of(span),
        [OtelEvent(event.name, event.timestamp, attributes_of(event)) for event in events]
        if events
        else (),
        _KINDS.get(span.kind, 0),
        scope.name if scope is not None else "",
    )


_STATUS_CODES = {code: code.value for code in StatusCode}
"""OTLP's status code numbers (an enum's ``.value`` is slow to read)."""
_KINDS = {kind: kind.value + 1 for kind in SpanKind}
"""OTLP's span kind numbers: the SDK counts from INTERNAL = 0, OTLP from UNSPECIFIED."""


def _events_of(span: ReadableSpan) -> Sequence[Event]:
    """An ended span's events (its ``BoundedList``'s deque read in place when it is there:
    the public property copies it under a lock)."""
    held = getattr(span, "_events", None)
    plain = getattr(held, "_dq", None)
    if type(plain) is deque:
        return plain
    return span.events


def attributes_of(item: ReadableSpan | Event) -> Mapping[str, Any]:
    """The attributes of an ended span (or of one of its events) as a plain mapping.

    The SDK keeps them in a ``BoundedAttributes`` whose reads go through Python-level
    mapping methods; its plain ``dict`` is read directly when it is there (it no longer
    changes once the span ended), else the public mapping is copied.
    """
    held = item.attributes if isinstance(item, Event) else getattr(item, "_attributes", None)
    plain = getattr(held, "_dict", None)
    if type(plain) is dict:
        return plain
    return dict(item.attributes or {})


def default_span_filter(span: ReadableSpan) -> bool:
    """Forward GenAI spans only: a known GenAI instrumentation scope, or ``gen_ai.*``,
    ``llm.*``, ``openinference.*`` or ``traceloop.*`` attributes."""
    scope = span.instrumentation_scope
    return is_genai(scope.name if scope is not None else "", span.attributes or {})


def service_of(span: ReadableSpan) -> tuple[str, str | None]:
    """The resource's ``service.name`` (``unknown_service`` without one) and
    ``service.version`` (None without one)."""
    attributes = span.resource.attributes
    name = attributes.get("service.name")
    version = attributes.get("service.version")
    return (
        name if isinstance(name, str) and name else "unknown_service",
        str(version) if version is not None else None,
    )
