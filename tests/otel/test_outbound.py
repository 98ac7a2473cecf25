"""The conversion behind OtelSpanMirror, operation by operation: ids, the tree's edge
cases, and the bounds of its state."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from prefactor_core._engine.optable import (
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
    finish_instance_op,
    register_op,
    start_instance_op,
)
from prefactor_core.operations import Operation, OperationType
from prefactor_core.otel._outbound import Outbound, otel_span_id, otel_trace_id


def _outbound(max_open: int = 100) -> tuple[Outbound, list[ReadableSpan]]:
    out: list[ReadableSpan] = []
    return Outbound(Resource.create({"service.name": "t"}), out.append, max_open), out


def _create(
    span_id: str, parent: str | None = None, status: str = "active", **more: Any
) -> Operation:
    payload = {
        SPAN_ID: span_id,
        INSTANCE_ID: "inst-1",
        SCHEMA_NAME: "agent:step",
        STATUS: status,
        PAYLOAD_JSON: '{"a":1}',
        PARENT_SPAN_ID: parent,
        STARTED_AT: 100.0,
        **more,
    }
    return Operation(OperationType.CREATE_SPAN, payload, time.time(), f"c-{span_id}")


def _finish(span_id: str, status: str = "complete", result: str | None = None) -> Operation:
    payload = {
        SPAN_ID: span_id,
        INSTANCE_ID: "inst-1",
        STATUS: status,
        RESULT_JSON: result,
        TIMESTAMP: 101.5,
    }
    return Operation(OperationType.FINISH_SPAN, payload, time.time(), f"f-{span_id}")


def test_ids_are_kept_when_they_are_otel_shaped_else_digested() -> None:
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert otel_trace_id(uuid) == int(uuid.replace("-", ""), 16)
    assert otel_trace_id("a" * 32) == int("a" * 32, 16)
    assert otel_span_id("00f067aa0ba902b7") == 0x00F067AA0BA902B7
    digested = otel_span_id("span-1")
    assert digested == otel_span_id("span-1")  # stable
    assert 0 < digested < 2**64
    assert digested != otel_span_id("span-2")
    assert 0 < otel_trace_id("inst-1") < 2**128
    assert otel_trace_id("0" * 32) != 0  # zero is invalid in OTel: digested instead


def test_a_span_is_emitted_when_it_finishes_with_its_times() -> None:
    outbound, out = _outbound()
    outbound.take(_create("s1"))
    assert out == []
    outbound.take(_finish("s1", result='{"ok":true}'))
    (span,) = out
    assert span.start_time == 100_000_000_000
    assert span.end_time == 101_500_000_000
    assert span.attributes is not None
    assert span.attributes["input.value"] == '{"a":1}'
    assert span.attributes["output.value"] == '{"ok":true}'
    assert span.parent is not None  # under the run's root span
    assert span.context is not None
    assert span.context.trace_id == otel_trace_id("inst-1")


def test_a_create_that_carries_its_finish_is_emitted_at_once() -> None:
    outbound, out = _outbound()
    outbound.take(_create("s1", status="cancelled", **{FINISHED_AT: 102.0, RESULT_JSON: None}))
    (span,) = out
    assert span.end_time == 102_000_000_000
    assert span.status.status_code.name == "UNSET"
    assert span.attributes is not None
    assert span.attributes["prefactor.status"] == "cancelled"
    assert "output.value" not in span.attributes


def test_spool_reloads_bridged_spans_and_unknown_finishes_are_skipped() -> None:
    outbound, out = _outbound()
    recovered = _create("s1", status="complete", **{FINISHED_AT: 102.0})
    outbound.take(
        Operation(recovered.type, recovered.payload, time.time(), "c-s1", {RECOVERED: True})
    )
    outbound.take(_create("otel-" + "1" * 32 + "-" + "2" * 16, status="complete"))
    outbound.take(_finish("never-created"))
    assert out == []
    assert outbound.unmatched == 1


def test_a_span_under_a_bridged_otel_span_joins_its_trace() -> None:
    outbound, out = _outbound()
    bridged = "otel-" + "ab" * 16 + "-" + "cd" * 8
    outbound.take(_create("mine", parent=bridged))
    outbound.take(_create("child", parent="mine"))
    outbound.take(_finish("child"))
    outbound.take(_finish("mine"))
    child, mine = out
    assert mine.parent is not None
    assert mine.parent.span_id == int("cd" * 8, 16)
    assert mine.context is not None
    assert mine.context.trace_id == int("ab" * 16, 16)
    assert child.context is not None
    assert child.context.trace_id == int("ab" * 16, 16)  # the trace is inherited
    assert child.parent is not None
    assert child.parent.span_id == mine.context.span_id


def test_the_run_becomes_the_root_span_when_it_finishes() -> None:
    outbound, out = _outbound()
    body = {"agent_version": {"name": "Planner"}, "agent_id": "agent-7", "id": "inst-1"}
    outbound.take(register_op("inst-1", body, 99.0, "k1"))
    outbound.take(start_instance_op("inst-1", 99.5, 99.5, "k2"))
    outbound.take(_create("s1", status="complete", **{FINISHED_AT: 100.5}))
    outbound.take(finish_instance_op("inst-1", "failed", 103.0, 103.0, "k3"))
    span, root = out
    assert root.name == "Planner"
    assert root.parent is None
    assert (root.start_time, root.end_time) == (99_500_000_000, 103_000_000_000)
    assert root.status.status_code.name == "ERROR"
    assert root.attributes is not None
    assert root.attributes["prefactor.agent_id"] == "agent-7"
    assert root.context is not None
    assert span.parent is not None
    assert span.parent.span_id == root.context.span_id


def test_open_spans_are_bounded() -> None:
    outbound, out = _outbound(max_open=2)
    for name in ("a", "b", "c"):
        outbound.take(_create(name))
    assert outbound.forgotten == 1
    outbound.take(_finish("a"))  # forgotten: the oldest
    outbound.take(_finish("c"))
    assert [span.attributes["prefactor.span_id"] for span in out if span.attributes] == ["c"]
    assert outbound.unmatched == 1


@pytest.mark.parametrize(
    ("schema", "kind"),
    [("agent:llm", "LLM"), ("langchain:tool", "TOOL"), ("retriever", "RETRIEVER"), ("x:y", None)],
)
def test_the_openinference_kind_comes_from_the_schema_names_last_segment(
    schema: str, kind: str | None
) -> None:
    outbound, out = _outbound()
    outbound.take(_create("s1", status="complete", **{SCHEMA_NAME: schema}))
    assert out[0].attributes is not None
    assert out[0].attributes.get("openinference.span.kind") == kind
