"""Tests for ``client.agent_instances``: request bodies and response parsing (spec 2.2–2.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from prefactor_http import (
    AgentInstance,
    AgentSchemaVersionForRegister,
    AgentVersionForRegister,
    PrefactorConflictError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    RuntimeEnvironment,
    SpanTypeSchemaForCreate,
)

T0 = datetime(2026, 8, 10, 9, 0, 1, tzinfo=UTC)

AGENT_VERSION = {
    "name": "support-bot",
    "external_identifier": "langchain-agt_0001-1a2b3c4d",
    "runtime_environment": {
        "agent_sdk": ["prefactor-langchain@0.3.0"],
        "os": "linux",
        "prefactor_sdk": ["prefactor-core@0.5.3", "prefactor-http@0.4.3"],
        "runtime": "cpython@3.12",
    },
}
SCHEMA_VERSION = {
    "external_identifier": "langchain-agt_0001-1a2b3c4d",
    "span_type_schemas": [
        {
            "name": "langchain:llm",
            "params_schema": {"type": "object", "properties": {"model_name": {"type": "string"}}},
            "result_schema": {"type": "object"},
            "title": "LLM Call",
            "template": "{{model_name}}",
        }
    ],
}


async def test_register_sends_the_spec_example_body(client, api, instance_details) -> None:
    """Register posts the flat body of the spec example and parses the instance (2.2)."""
    api.success(instance_details)
    instance = await client.agent_instances.register(
        agent_version=AGENT_VERSION,
        agent_schema_version=SCHEMA_VERSION,
        agent_id="agt_0001",
        environment_id="env_0001",
        idempotency_key="5b0b7c3e-2f0e-4f5e-9d8e-6a1c0e2b7f10",
    )
    assert api.last.method == "POST"
    assert api.last.url.path == "/api/v1/agent_instance/register"
    assert api.body() == {
        "agent_id": "agt_0001",
        "environment_id": "env_0001",
        "agent_version": AGENT_VERSION,
        "agent_schema_version": SCHEMA_VERSION,
        "update_current_version": True,
        "idempotency_key": "5b0b7c3e-2f0e-4f5e-9d8e-6a1c0e2b7f10",
    }
    assert "idempotency-key" not in api.last.headers
    assert isinstance(instance, AgentInstance)
    assert instance.id == "ins_0001"
    assert instance.agent_deployment_id == "dep_0001"
    assert instance.status == "pending"
    assert instance.purpose == "live"
    assert instance.inserted_at == datetime(2026, 8, 10, 9, 0, tzinfo=UTC)
    assert instance.span_counts is not None
    assert instance.span_counts.total == 0
    assert instance.quality_payloads == {}


async def test_register_minimal_body_leaves_out_nulls(client, api, instance_details) -> None:
    """Without optional arguments only the versions and update_current_version are sent."""
    api.success(instance_details)
    await client.agent_instances.register({}, {})
    assert api.body() == {
        "agent_version": {},
        "agent_schema_version": {},
        "update_current_version": True,
    }


async def test_register_sends_every_optional_field(client, api, instance_details) -> None:
    """id, purpose, external_identifier and update_current_version=False are sent as given."""
    api.success(instance_details)
    await client.agent_instances.register(
        {"v": 1},
        {"s": 2},
        id="ins_custom",
        update_current_version=False,
        purpose="smoke_test",
        external_identifier="run-42",
    )
    assert api.body() == {
        "agent_version": {"v": 1},
        "agent_schema_version": {"s": 2},
        "update_current_version": False,
        "id": "ins_custom",
        "purpose": "smoke_test",
        "external_identifier": "run-42",
    }


async def test_register_accepts_models_for_the_versions(client, api, instance_details) -> None:
    """Version models are dumped by alias with nulls left out."""
    api.success(instance_details)
    await client.agent_instances.register(
        AgentVersionForRegister(name="bot", runtime_environment=RuntimeEnvironment(os="linux")),
        AgentSchemaVersionForRegister(
            span_type_schemas=[SpanTypeSchemaForCreate(name="a:b", params_schema={})]
        ),
    )
    body = api.body()
    assert body["agent_version"] == {"name": "bot", "runtime_environment": {"os": "linux"}}
    assert body["agent_schema_version"] == {
        "span_type_schemas": [{"name": "a:b", "params_schema": {}}]
    }


async def test_register_tolerates_extra_response_fields(client, api, instance_details) -> None:
    """Unknown keys in the details are ignored."""
    instance_details["brand_new_field"] = {"x": 1}
    api.success(instance_details, request_id="req_1")
    instance = await client.agent_instances.register({}, {})
    assert instance.id == "ins_0001"


@pytest.mark.parametrize("missing", ["agent_deployment_id", "environment_id", "inserted_at"])
async def test_instance_without_required_field_is_contract_error(
    client, api, instance_details, missing: str
) -> None:
    """An instance missing a required field (spec 2.13) raises a contract error."""
    del instance_details[missing]
    api.success(instance_details)
    with pytest.raises(PrefactorResponseContractError, match=missing):
        await client.agent_instances.register({}, {})


async def test_start_sends_timestamp_and_key(client, api, instance_details) -> None:
    """Start sends the isoformat timestamp and the idempotency key (2.3)."""
    instance_details.update(status="active", started_at="2026-08-10T09:00:01Z")
    api.success(instance_details)
    instance = await client.agent_instances.start("ins_0001", T0, idempotency_key="8c1d-key")
    assert api.last.url.path == "/api/v1/agent_instance/ins_0001/start"
    assert api.body() == {"timestamp": "2026-08-10T09:00:01+00:00", "idempotency_key": "8c1d-key"}
    assert instance.status == "active"
    assert instance.started_at == T0


async def test_start_always_sends_timestamp_key(client, api, instance_details) -> None:
    """Without a timestamp, start still sends ``"timestamp": null``."""
    api.success(instance_details)
    await client.agent_instances.start("ins_0001")
    assert api.body() == {"timestamp": None}


async def test_start_keeps_non_utc_offsets(client, api, instance_details) -> None:
    """An aware timestamp in another zone is sent with its own offset."""
    api.success(instance_details)
    tz = timezone(timedelta(hours=2))
    await client.agent_instances.start("ins_0001", datetime(2026, 8, 10, 11, 0, tzinfo=tz))
    assert api.body()["timestamp"] == "2026-08-10T11:00:00+02:00"


async def test_finish_sends_only_given_fields(client, api, instance_details) -> None:
    """Finish sends status, timestamp and key when given and ``{}`` when not (2.4)."""
    instance_details.update(status="failed", finished_at="2026-08-10T09:05:00Z")
    api.success(instance_details)
    api.success(instance_details)
    ts = datetime(2026, 8, 10, 9, 5, tzinfo=UTC)
    instance = await client.agent_instances.finish(
        "ins_0001", status="failed", timestamp=ts, idempotency_key="0f9e-key"
    )
    assert api.body() == {
        "status": "failed",
        "timestamp": "2026-08-10T09:05:00+00:00",
        "idempotency_key": "0f9e-key",
    }
    assert instance.finished_at == ts
    await client.agent_instances.finish("ins_0001")
    assert api.last.url.path == "/api/v1/agent_instance/ins_0001/finish"
    assert api.body() == {}


async def test_finish_on_terminated_instance_raises_conflict(client, api) -> None:
    """A 409 on finish raises PrefactorConflictError, not retried."""
    api.reply(409, {"status": "error", "code": "conflict", "message": "already terminated"})
    with pytest.raises(PrefactorConflictError, match="already terminated"):
        await client.agent_instances.finish("ins_0001", status="complete")
    assert len(api.requests) == 1


async def test_get_parses_a_terminated_instance(client, api, instance_details) -> None:
    """Get parses status and termination_reason, with the time keys absent (2.5)."""
    instance_details.update(status="terminated", termination_reason="admin terminated")
    del instance_details["started_at"], instance_details["finished_at"]
    api.success(instance_details)
    instance = await client.agent_instances.get("ins_0001")
    assert api.last.method == "GET"
    assert api.last.url.path == "/api/v1/agent_instance/ins_0001"
    assert api.last.content == b""
    assert instance.status == "terminated"
    assert instance.termination_reason == "admin terminated"
    assert instance.started_at is None


async def test_get_unknown_instance_raises_not_found(client, api) -> None:
    """The spec's 404 example raises PrefactorNotFoundError."""
    api.reply(404, {"status": "error", "code": "not_found", "message": "Agent instance not found"})
    with pytest.raises(PrefactorNotFoundError) as info:
        await client.agent_instances.get("ins_missing")
    assert info.value.path == "/api/v1/agent_instance/ins_missing"


async def test_span_counts_tolerate_pending_and_default_missing(
    client, api, instance_details
) -> None:
    """``span_counts`` ignores ``pending`` and defaults missing counts to 0."""
    instance_details["span_counts"] = {"total": 4, "pending": 1, "complete": 3}
    api.success(instance_details)
    counts = (await client.agent_instances.get("ins_0001")).span_counts
    assert counts is not None
    assert (counts.total, counts.complete, counts.active, counts.finished) == (4, 3, 0, 0)


async def test_record_quality_always_sends_name_and_payload(client, api, instance_details) -> None:
    """record_quality sends name and payload (null included) and the key (2.6)."""
    instance_details.update(
        quality_payloads={"summary_quality": {"score": 0.95}},
        quality_summaries={"summary_quality": "Score 0.95"},
    )
    api.success(instance_details)
    api.success(instance_details)
    instance = await client.agent_instances.record_quality(
        "ins_0001", "summary_quality", {"score": 0.95}, idempotency_key="c0ffee00-key"
    )
    assert api.last.url.path == "/api/v1/agent_instance/ins_0001/record_quality"
    assert api.body() == {
        "name": "summary_quality",
        "payload": {"score": 0.95},
        "idempotency_key": "c0ffee00-key",
    }
    assert instance.quality_summaries == {"summary_quality": "Score 0.95"}
    await client.agent_instances.record_quality("ins_0001", "summary_quality")
    assert api.body() == {"name": "summary_quality", "payload": None}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.agent_instances.register({}, {}, idempotency_key="k" * 65), "at most 64"),
        (lambda c: c.agent_instances.register({}, {}, idempotency_key=""), "must not be empty"),
        (lambda c: c.agent_instances.register({}, {}, purpose="prod"), "purpose"),
        (lambda c: c.agent_instances.start("ins_1", datetime(2026, 1, 1)), "timezone-aware"),
        (lambda c: c.agent_instances.start("", T0), "agent_instance_id"),
        (lambda c: c.agent_instances.start("a/b", T0), "agent_instance_id"),
        (lambda c: c.agent_instances.finish("ins_1", status="done"), "status"),
        (lambda c: c.agent_instances.finish("ins_1", idempotency_key="x" * 65), "at most 64"),
        (
            lambda c: c.agent_instances.finish("ins_1", timestamp=datetime(2026, 1, 1)),
            "timezone-aware",
        ),
        (lambda c: c.agent_instances.get("ins?x"), "agent_instance_id"),
        (lambda c: c.agent_instances.record_quality("ins_1", "q", None, "k" * 65), "at most 64"),
    ],
)
async def test_bad_arguments_raise_before_sending(client, api, call, message: str) -> None:
    """Bad keys, ids, statuses and naive timestamps raise ValueError and send nothing."""
    with pytest.raises(ValueError, match=message):
        await call(client)
    assert api.requests == []


async def test_key_of_exactly_64_characters_is_accepted(client, api, instance_details) -> None:
    """The 64-character boundary is allowed."""
    api.success(instance_details)
    await client.agent_instances.start("ins_0001", idempotency_key="k" * 64)
    assert api.body()["idempotency_key"] == "k" * 64
