"""Reading OTel SDK spans: the processor's fast conversion gives what the public API gives."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from tests.otel.support import record_trace

from prefactor_core.otel._mapping import OtelEvent, OtelSpan, map_span
from prefactor_core.otel._sdk_spans import to_otel_span


def _public(span: ReadableSpan) -> OtelSpan:
    """The neutral form read through the SDK's public properties only."""
    context = span.context
    parent = span.parent
    assert context is not None
    scope = span.instrumentation_scope
    return OtelSpan(
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        format(parent.span_id, "016x") if parent is not None else None,
        span.name,
        span.start_time or 0,
        span.end_time or 0,
        span.status.status_code.value,
        span.status.description or "",
        dict(span.attributes or {}),
        [OtelEvent(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events],
        span.kind.value + 1,
        scope.name if scope is not None else "",
    )


def test_conversion_matches_the_public_properties() -> None:
    """Ids, times, status (with the failed span's exception event), kind, scope and
    attributes read in place equal the public properties, and map the same."""
    spans = record_trace()
    assert any(span.events for span in spans)  # the failed tool span's exception
    for span in spans:
        fast, public = to_otel_span(span), _public(span)
        assert fast.trace_id == public.trace_id
        assert fast.span_id == public.span_id
        assert fast.parent_span_id == public.parent_span_id
        assert (fast.name, fast.start_ns, fast.end_ns) == (
            public.name,
            public.start_ns,
            public.end_ns,
        )
        assert (fast.status_code, fast.status_message) == (
            public.status_code,
            public.status_message,
        )
        assert dict(fast.attributes) == public.attributes
        assert [(e.name, e.time_ns, dict(e.attributes)) for e in fast.events] == [
            (e.name, e.time_ns, e.attributes) for e in public.events
        ]
        assert (fast.kind, fast.scope_name) == (public.kind, public.scope_name)
        assert map_span(fast) == map_span(public)


def test_spans_built_by_hand_are_read_through_the_public_api() -> None:
    """A ``ReadableSpan`` made directly (plain dict attributes, a tuple of events) is
    converted too."""
    [recorded] = [span for span in record_trace() if span.events]
    span = ReadableSpan(
        name=recorded.name,
        context=recorded.context,
        parent=recorded.parent,
        attributes={"gen_ai.operation.name": "execute_tool"},
        events=tuple(recorded.events),
        status=recorded.status,
        start_time=1,
        end_time=2,
    )
    otel = to_otel_span(span)
    assert otel.attributes == {"gen_ai.operation.name": "execute_tool"}
    assert [event.name for event in otel.events] == ["exception"]
    assert otel.status_code == 2
    assert map_span(otel).result["error"]["type"] == "TimeoutError"
