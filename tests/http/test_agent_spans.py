"""Tests for ``client.agent_spans``: bodies, parsing and the control signal (spec 2.8, 2.9, 6)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prefactor_http import AgentSpan, PrefactorResponseContractError

STARTED = datetime(2026, 8, 10, 9, 0, 2, tzinfo=UTC)


async def test_create_wraps_the_spec_example_in_details(client, api, span_details) -> None:
    """Create posts the spec example inside ``details`` and parses the span (2.8)."""
    api.success(span_details)
    span = await client.agent_spans.create(
        agent_instance_id="ins_0001",
        schema_name="langchain:llm",
        status="active",
        payload={"model_name": "claude-haiku-4-5", "inputs": {"messages": []}},
        parent_span_id="spn_0001",
        started_at=STARTED,
        idempotency_key="3e8a8d3c-6a55-4b1e-8f6e-2a7b8f7f2c11",
    )
    assert api.last.method == "POST"
    assert api.last.url.path == "/api/v1/agent_spans"
    assert api.body() == {
        "details": {
            "agent_instance_id": "ins_0001",
            "schema_name": "langchain:llm",
            "status": "active",
            "payload": {"model_name": "claude-haiku-4-5", "inputs": {"messages": []}},
            "parent_span_id": "spn_0001",
            "started_at": "2026-08-10T09:00:02+00:00",
            "idempotency_key": "3e8a8d3c-6a55-4b1e-8f6e-2a7b8f7f2c11",
        }
    }
    assert isinstance(span, AgentSpan)
    assert span.id == "spn_0002"
    assert span.schema_title == "LLM Call"
    assert span.started_at == STARTED
    assert span.finished_at is None


async def test_create_minimal_sends_empty_payload(client, api, span_details) -> None:
    """Without a payload, ``details.payload`` is ``{}`` and no null keys are sent."""
    api.success(span_details)
    await client.agent_spans.create("ins_0001", "agent:llm", "pending")
    assert api.body() == {
        "details": {
            "agent_instance_id": "ins_0001",
            "schema_name": "agent:llm",
            "status": "pending",
            "payload": {},
        }
    }


async def test_create_sends_optional_fields(client, api, span_details) -> None:
    """id, result_payload and finished_at are sent when given (a span created finished)."""
    api.success(span_details)
    finished = datetime(2026, 8, 10, 9, 0, 3, tzinfo=UTC)
    await client.agent_spans.create(
        "ins_0001",
        "agent:tool",
        "complete",
        payload={},
        result_payload={"ok": True},
        id="spn_custom",
        finished_at=finished,
    )
    details = api.body()["details"]
    assert details["result_payload"] == {"ok": True}
    assert details["id"] == "spn_custom"
    assert details["finished_at"] == "2026-08-10T09:00:03+00:00"
    assert "started_at" not in details
    assert "parent_span_id" not in details


async def test_span_payload_defaults_when_absent_but_null_is_rejected(
    client, api, span_details
) -> None:
    """A missing ``payload`` parses as {}; an explicit null is a contract error (2.13)."""
    del span_details["payload"]
    api.success(span_details)
    assert (await client.agent_spans.create("ins_0001", "a:b", "active")).payload == {}
    span_details["payload"] = None
    api.success(span_details)
    with pytest.raises(PrefactorResponseContractError, match=r"agent_spans\.create"):
        await client.agent_spans.create("ins_0001", "a:b", "active")


async def test_finish_sends_flat_body_with_given_fields(client, api, span_details) -> None:
    """Finish posts a flat body with the spec example's fields (2.9)."""
    span_details.update(
        status="complete",
        result_payload={"outputs": {"content": "Hi"}},
        finished_at="2026-08-10T09:00:04.5Z",
        summary="claude-haiku-4-5",
    )
    api.success(span_details)
    ts = datetime(2026, 8, 10, 9, 0, 4, 500000, tzinfo=UTC)
    span = await client.agent_spans.finish(
        "spn_0002",
        status="complete",
        result_payload={"outputs": {"content": "Hi"}},
        timestamp=ts,
        idempotency_key="7a7c-key",
    )
    assert api.last.url.path == "/api/v1/agent_spans/spn_0002/finish"
    assert api.body() == {
        "status": "complete",
        "result_payload": {"outputs": {"content": "Hi"}},
        "timestamp": "2026-08-10T09:00:04.500000+00:00",
        "idempotency_key": "7a7c-key",
    }
    assert span.finished_at == ts
    assert span.summary == "claude-haiku-4-5"


async def test_finish_without_fields_sends_empty_object(client, api, span_details) -> None:
    """Finish with no optional fields sends ``{}``."""
    api.success(span_details)
    await client.agent_spans.finish("spn_0002")
    assert api.body() == {}


@pytest.mark.parametrize("method", ["create", "finish"])
async def test_control_terminate_calls_the_callback(client, api, span_details, method) -> None:
    """``control.terminate`` in a span response calls the callback with the reason (6.1)."""
    reasons: list[str | None] = []
    api.success(span_details, control={"terminate": True, "reason": "manual stop from ops"})
    if method == "create":
        await client.agent_spans.create(
            "ins_0001", "a:b", "active", control_signal_callback=reasons.append
        )
    else:
        await client.agent_spans.finish("spn_0002", control_signal_callback=reasons.append)
    assert reasons == ["manual stop from ops"]


@pytest.mark.parametrize(
    "control",
    [
        {"terminate": False, "reason": "x"},
        "terminate",
        ["terminate"],
        None,
    ],
)
async def test_control_without_terminate_is_ignored(client, api, span_details, control) -> None:
    """A falsy ``terminate`` or a non-object ``control`` does not call the callback."""
    reasons: list[str | None] = []
    api.success(span_details, control=control)
    await client.agent_spans.finish("spn_0002", control_signal_callback=reasons.append)
    assert reasons == []


async def test_control_reason_may_be_missing(client, api, span_details) -> None:
    """A terminate without a reason passes None."""
    reasons: list[str | None] = []
    api.success(span_details, control={"terminate": True})
    await client.agent_spans.finish("spn_0002", control_signal_callback=reasons.append)
    assert reasons == [None]


async def test_control_is_checked_before_model_validation(client, api) -> None:
    """The callback fires even when the details then fail validation."""
    reasons: list[str | None] = []
    api.reply(200, {"status": "success", "details": {}, "control": {"terminate": True}})
    with pytest.raises(PrefactorResponseContractError):
        await client.agent_spans.finish("spn_0002", control_signal_callback=reasons.append)
    assert reasons == [None]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.agent_spans.create("i", "s", "running"), "status"),
        (lambda c: c.agent_spans.create("i", "s", "active", idempotency_key="k" * 65), "64"),
        (
            lambda c: c.agent_spans.create("i", "s", "active", started_at=datetime(2026, 1, 1)),
            "started_at",
        ),
        (
            lambda c: c.agent_spans.create("i", "s", "active", finished_at=datetime(2026, 1, 1)),
            "finished_at",
        ),
        (lambda c: c.agent_spans.finish("spn_1", status="active"), "status"),
        (lambda c: c.agent_spans.finish("spn_1", timestamp=datetime(2026, 1, 1)), "timestamp"),
        (lambda c: c.agent_spans.finish("spn_1", idempotency_key=""), "empty"),
        (lambda c: c.agent_spans.finish("spn/1"), "agent_span_id"),
    ],
)
async def test_bad_arguments_raise_before_sending(client, api, call, message: str) -> None:
    """Bad statuses, keys, ids and naive timestamps raise ValueError and send nothing."""
    with pytest.raises(ValueError, match=message):
        await call(client)
    assert api.requests == []
