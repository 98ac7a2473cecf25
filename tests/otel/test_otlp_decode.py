"""The protobuf decoder and the mapping to rows on shapes the fast paths take shortcuts on
(the spans of one trace one after another, repeated keys, cut-off traces)."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from prefactor_server.domain.otlp_protobuf import decode_protobuf

_TRACE = bytes.fromhex("ab" * 16)
_OTHER = bytes.fromhex("cd" * 16)


def _body(*spans: tuple[bytes, bytes]) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id in spans:
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = trace_id, span_id, "op"
    return request.SerializeToString()


def test_a_rejected_trace_id_between_spans_of_one_trace_does_not_stick() -> None:
    """A span with an unusable trace id between two of one trace is rejected alone: the
    next span keeps its own trace id (the decoder remembers the last good one)."""
    export = decode_protobuf(
        _body(
            (_TRACE, b"\x01" * 8),
            (b"\x00" * 16, b"\x02" * 8),
            (b"\x07" * 15, b"\x03" * 8),
            (_TRACE, b"\x04" * 8),
            (_OTHER, b"\x05" * 8),
            (_TRACE, b"\x06" * 8),
        )
    )
    assert export.rejected == 2
    assert [(span.trace_id, span.span_id) for span in export.resources[0].spans] == [
        ("ab" * 16, "01" * 8),
        ("ab" * 16, "04" * 8),
        ("cd" * 16, "05" * 8),
        ("ab" * 16, "06" * 8),
    ]
    assert export.errors[0].startswith("resource_spans.0.scope_spans.0.spans.1: trace_id")
    assert export.errors[1].startswith("resource_spans.0.scope_spans.0.spans.2: trace_id")
