"""Reading OpenTelemetry SDK spans for :class:`PrefactorSpanProcessor`: the neutral form
the shared mapping takes, the default filter, the service, and what the processor keeps
of a started span.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan

from prefactor_core.otel._mapping import OtelEvent, OtelSpan, is_genai, span_id_for

__all__ = ["Node", "SpanFilter", "default_span_filter", "service_of", "to_otel_span"]

SpanFilter = Callable[[ReadableSpan], bool]
"""Decides, when a span starts, whether it is forwarded to Prefactor."""


def to_otel_span(span: ReadableSpan) -> OtelSpan:
    """Convert an OTel SDK span to the mapping's neutral form."""
    context = span.context
    trace_id = format(context.trace_id, "032x") if context is not None else "0" * 32
    parent = span.parent
    scope = span.instrumentation_scope
    return OtelSpan(
        trace_id=trace_id,
        span_id=format(context.span_id, "016x") if context is not None else "0" * 16,
        parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status_code=span.status.status_code.value,
        status_message=span.status.description or "",
        attributes=dict(span.attributes or {}),
        events=[
            OtelEvent(event.name, event.timestamp, dict(event.attributes or {}))
            for event in span.events
        ],
        kind=span.kind.value + 1,  # the SDK counts from INTERNAL = 0, OTLP from UNSPECIFIED
        scope_name=scope.name if scope is not None else "",
    )


def default_span_filter(span: ReadableSpan) -> bool:
    """Forward GenAI spans only: a known GenAI instrumentation scope, or ``gen_ai.*``,
    ``llm.*``, ``openinference.*`` or ``traceloop.*`` attributes."""
    scope = span.instrumentation_scope
    return is_genai(scope.name if scope is not None else "", span.attributes or {})


class Node:
    """What the processor knows of a started OTel span (made on the agent's thread, so
    the Prefactor id is formatted only when something asks for it)."""

    __slots__ = (
        "_own",
        "depth",
        "forwarded",
        "instance_id",
        "local_root",
        "parent_id",
        "span_id",
        "trace",
    )

    def __init__(
        self,
        instance_id: str | None,
        trace: str,
        span_id: int,
        parent_id: str | None,
        depth: int,
        forwarded: bool,
        local_root: bool,
    ) -> None:
        self.instance_id = instance_id  # None: not inside any instance (nothing to forward)
        self.trace = trace  # the trace id, 32 hex digits
        self.span_id = span_id
        self.parent_id = parent_id  # the Prefactor parent of it (or of its forwarded children)
        self.depth = depth  # the Prefactor span stack's depth when it started
        self.forwarded = forwarded
        self.local_root = (
            local_root  # no parent in this process: its end finishes an owned instance
        )
        self._own: str | None = None

    @property
    def own_id(self) -> str:
        """Its Prefactor id (``otel-<trace id>-<span id>``)."""
        own = self._own
        if own is None:
            own = self._own = span_id_for(self.trace, format(self.span_id, "016x"))
        return own

    @property
    def prefactor_id(self) -> str | None:
        """The Prefactor id children nest under (itself, or its ancestor when skipped)."""
        return self.own_id if self.forwarded else self.parent_id


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
