"""Tests for prefactor_core.models, prefactor_core.operations and prefactor_core.exceptions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from prefactor_core import (
    AgentInstance,
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    InstanceNotFoundError,
    Operation,
    OperationError,
    OperationType,
    PrefactorCoreError,
    PrefactorTelemetryFailureError,
    Span,
    SpanNotFoundError,
)

# -- AgentInstance -------------------------------------------------------------------


def test_agent_instance_defaults() -> None:
    """An AgentInstance starts pending, unstarted, unfinished, with empty metadata."""
    before = datetime.now(UTC)
    instance = AgentInstance(id="ins-1", agent_id="agt-1")
    after = datetime.now(UTC)
    assert instance.id == "ins-1"
    assert instance.agent_id == "agt-1"
    assert instance.status == "pending"
    assert instance.started_at is None
    assert instance.finished_at is None
    assert instance.metadata == {}
    assert before <= instance.created_at <= after
    assert instance.created_at.utcoffset() == timedelta(0)


def test_agent_instance_metadata_is_not_shared() -> None:
    """Each AgentInstance gets its own metadata dict."""
    first = AgentInstance(id="a", agent_id="x")
    second = AgentInstance(id="b", agent_id="x")
    first.metadata["k"] = "v"
    assert second.metadata == {}


def test_agent_instance_is_mutable_and_comparable() -> None:
    """AgentInstance fields can be updated, and equal fields compare equal."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    instance = AgentInstance(id="a", agent_id="x", created_at=created)
    instance.status = "active"
    assert instance.status == "active"
    assert instance == AgentInstance(id="a", agent_id="x", status="active", created_at=created)


def test_agent_instance_field_order_matches_the_published_sdk() -> None:
    """The constructor takes the fields in the published 0.5.3 order (the seed's 0.2.2
    fields, with ``purpose`` after ``status`` and ``quality_payloads`` last)."""
    names = [f.name for f in dataclasses.fields(AgentInstance)]
    assert names == [
        "id",
        "agent_id",
        "status",
        "purpose",
        "created_at",
        "started_at",
        "finished_at",
        "metadata",
        "quality_payloads",
    ]


# -- Span ----------------------------------------------------------------------------


def test_span_defaults() -> None:
    """A Span starts pending, without parent, payload or finish time."""
    before = datetime.now(UTC)
    span = Span(id="spn-1", instance_id="ins-1", schema_name="agent:llm")
    after = datetime.now(UTC)
    assert span.parent_span_id is None
    assert span.status == "pending"
    assert span.payload == {}
    assert before <= span.created_at <= after
    assert span.created_at.tzinfo is not None
    assert span.started_at is None
    assert span.finished_at is None


def test_span_payload_is_not_shared() -> None:
    """Each Span gets its own payload dict."""
    first = Span(id="a", instance_id="i", schema_name="s")
    first.payload["x"] = 1
    assert Span(id="b", instance_id="i", schema_name="s").payload == {}


def test_span_field_order_matches_the_seed() -> None:
    """The constructor takes the documented fields in the documented order."""
    names = [f.name for f in dataclasses.fields(Span)]
    assert names == [
        "id",
        "instance_id",
        "schema_name",
        "parent_span_id",
        "status",
        "payload",
        "created_at",
        "started_at",
        "finished_at",
    ]


# -- Operation -----------------------------------------------------------------------


def test_operation_seed_example() -> None:
    """The seed's Operation example builds, with the given key and default metadata."""
    stamp = datetime.now(UTC)
    operation = Operation(
        type=OperationType.CREATE_SPAN,
        payload={"instance_id": "inst-123", "schema_name": "agent:llm", "span_id": "span-456"},
        timestamp=stamp,
        idempotency_key="span-456",
    )
    assert operation.type is OperationType.CREATE_SPAN
    assert operation.payload["span_id"] == "span-456"
    assert operation.timestamp == stamp
    assert operation.idempotency_key == "span-456"
    assert operation.metadata == {}


def test_operation_defaults() -> None:
    """idempotency_key defaults to None and metadata to a fresh empty dict."""
    stamp = datetime.now(UTC)
    first = Operation(OperationType.FINISH_SPAN, {}, stamp)
    second = Operation(OperationType.FINISH_SPAN, {}, stamp)
    assert first.idempotency_key is None
    assert first.metadata == {}
    assert first.metadata is not second.metadata


def test_operation_is_frozen() -> None:
    """Assigning to an Operation field raises FrozenInstanceError."""
    operation = Operation(OperationType.START_AGENT_INSTANCE, {}, datetime.now(UTC), "k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        operation.idempotency_key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        operation.type = OperationType.FINISH_SPAN  # type: ignore[misc]
    assert operation.idempotency_key == "k"


def test_operation_replace_makes_a_new_operation() -> None:
    """replace() gives a changed copy and leaves the original alone."""
    operation = Operation(OperationType.CREATE_SPAN, {"a": 1}, datetime.now(UTC), "k")
    merged = operation.replace(payload={"a": 2})
    with pytest.raises(TypeError, match="no field"):
        operation.replace(colour="red")
    assert merged.payload == {"a": 2}
    assert operation.payload == {"a": 1}
    assert merged.idempotency_key == "k"


def test_operation_equality() -> None:
    """Operations with equal fields are equal."""
    stamp = datetime.now(UTC)
    assert Operation(OperationType.CREATE_SPAN, {"a": 1}, stamp, "k") == Operation(
        OperationType.CREATE_SPAN, {"a": 1}, stamp, "k"
    )
    assert Operation(OperationType.CREATE_SPAN, {}, stamp, "k") != Operation(
        OperationType.FINISH_SPAN, {}, stamp, "k"
    )


def test_operation_types() -> None:
    """OperationType has one member per API write action."""
    assert {member.name for member in OperationType} == {
        "REGISTER_AGENT_INSTANCE",
        "START_AGENT_INSTANCE",
        "FINISH_AGENT_INSTANCE",
        "RECORD_QUALITY",
        "CREATE_SPAN",
        "FINISH_SPAN",
    }
    assert len({member.value for member in OperationType}) == len(OperationType)


# -- exceptions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "error_class",
    [
        ClientNotInitializedError,
        ClientAlreadyInitializedError,
        OperationError,
        InstanceNotFoundError,
        SpanNotFoundError,
        PrefactorTelemetryFailureError,
    ],
)
def test_every_error_is_a_prefactor_core_error(error_class: type[Exception]) -> None:
    """Every prefactor-core exception derives from PrefactorCoreError."""
    assert issubclass(error_class, PrefactorCoreError)


def test_prefactor_core_error_is_an_exception() -> None:
    """The root error is a plain Exception."""
    assert issubclass(PrefactorCoreError, Exception)
    assert str(PrefactorCoreError("boom")) == "boom"


def test_span_not_found_is_also_a_key_error() -> None:
    """SpanNotFoundError is caught both as PrefactorCoreError and as KeyError."""
    with pytest.raises(KeyError):
        raise SpanNotFoundError("span 'spn-1' is not open")
    with pytest.raises(PrefactorCoreError):
        raise SpanNotFoundError("span 'spn-1' is not open")


def test_span_not_found_message_is_not_quoted() -> None:
    """SpanNotFoundError's str is its message, without KeyError's quotes."""
    assert str(SpanNotFoundError("no span spn-1")) == "no span spn-1"
    assert str(SpanNotFoundError()) == ""
    assert str(KeyError("no span spn-1")) == "'no span spn-1'"


def test_instance_not_found_is_not_a_key_error() -> None:
    """InstanceNotFoundError is a PrefactorCoreError only."""
    assert not issubclass(InstanceNotFoundError, KeyError)


def test_operation_error_carries_operation_type() -> None:
    """OperationError keeps its message and the operation type."""
    error = OperationError("could not send", operation_type="FINISH_SPAN")
    assert str(error) == "could not send"
    assert error.message == "could not send"
    assert error.operation_type == "FINISH_SPAN"
    assert OperationError("x").operation_type is None


def test_telemetry_failure_carries_its_context() -> None:
    """PrefactorTelemetryFailureError carries cause, operation type and drop count."""
    cause = PermissionError("401 unauthorized")
    error = PrefactorTelemetryFailureError(
        "telemetry failed", cause=cause, operation_type="START_AGENT_INSTANCE", dropped_operations=3
    )
    assert error.cause is cause
    assert error.__cause__ is cause
    assert error.operation_type == "START_AGENT_INSTANCE"
    assert error.dropped_operations == 3
    assert error.message == "telemetry failed"
    assert "telemetry failed" in str(error)
    assert "3" in str(error)


def test_telemetry_failure_drop_count_keeps_counting() -> None:
    """The drop count can grow after the error was made, and str shows the new count."""
    error = PrefactorTelemetryFailureError("failed", cause=RuntimeError("x"))
    assert error.dropped_operations == 0
    assert error.operation_type is None
    error.dropped_operations += 5
    assert "5" in str(error)


def test_telemetry_failure_requires_keyword_cause() -> None:
    """cause is a required keyword-only argument."""
    with pytest.raises(TypeError):
        PrefactorTelemetryFailureError("failed")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        PrefactorTelemetryFailureError("failed", RuntimeError("x"))  # type: ignore[misc]
