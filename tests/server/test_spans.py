"""Span endpoints: create, finish, transitions, validation, summaries, parents, control."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Api

LLM = {"model": "gpt-4", "prompt": "Hello"}


async def test_create_and_finish_renders_summary(api: Api) -> None:
    """A span gets schema_title and a summary rendered over params and result."""
    instance = await api.register()
    created = await api.span(instance["id"], schema_name="agent:llm", payload=LLM)
    assert created.status_code == 201
    span = created.json()["details"]
    assert span["type"] == "agent_span"
    assert span["schema_title"] == "LLM Call"
    assert span["summary"] == "gpt-4: Hello → "
    assert span["started_at"].endswith("Z")
    assert "control" not in created.json()
    finished = await api.finish_span(span["id"], result_payload={"response": "Hi"})
    assert finished.status_code == 200
    details = finished.json()["details"]
    assert details["status"] == "complete"
    assert details["summary"] == "gpt-4: Hello → Hi"
    assert details["result_payload"] == {"response": "Hi"}


async def test_dotted_template_paths(api: Api, client: httpx.AsyncClient) -> None:
    """A template placeholder may be a dotted path into nested params."""
    schema = {
        "external_identifier": "nested",
        "span_type_schemas": [
            {"name": "t", "params_schema": {"type": "object"}, "template": "{{a.b}}/{{c}}"}
        ],
    }
    instance = await api.register(agent_schema_version=schema)
    created = await api.span(instance["id"], schema_name="t", payload={"a": {"b": 1}})
    assert created.json()["details"]["summary"] == "1/"
    assert created.json()["details"]["schema_title"] == "t"


async def test_unknown_span_type_is_422(api: Api) -> None:
    """A schema name the schema version does not define is 422 unknown_span_type."""
    instance = await api.register()
    response = await api.span(instance["id"], schema_name="agent:nope")
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_span_type"
    assert "schema_name" in response.json()["errors"]


async def test_payload_validation_names_fields(api: Api) -> None:
    """Params and results are validated against their schemas with field paths."""
    instance = await api.register()
    bad = await api.span(instance["id"], schema_name="agent:llm", payload={"model": 3})
    assert bad.status_code == 422
    errors = bad.json()["errors"]
    assert "payload.model" in errors
    assert errors["payload.prompt"] == ["is required"]
    span = (await api.span(instance["id"], schema_name="agent:llm", payload=LLM)).json()["details"]
    result = await api.finish_span(span["id"], result_payload={"response": 5})
    assert result.status_code == 422
    assert "result_payload.response" in result.json()["errors"]


async def test_failed_span_result_is_not_held_to_result_schema(api: Api) -> None:
    """A failed span may carry error details that do not match result_schema."""
    instance = await api.register()
    span = (await api.span(instance["id"], schema_name="agent:llm", payload=LLM)).json()["details"]
    response = await api.finish_span(span["id"], status="failed", result_payload={"response": 5})
    assert response.status_code == 200
    assert response.json()["details"]["status"] == "failed"


async def test_schemaless_instance_accepts_any_span(api: Api) -> None:
    """Without span types in the schema version, any schema name and payload is accepted."""
    instance = await api.register(agent_schema_version={})
    response = await api.span(instance["id"], schema_name="anything", payload={"x": 1})
    assert response.status_code == 201
    assert response.json()["details"]["schema_title"] == "anything"


async def test_pending_span_cancel_only(api: Api) -> None:
    """A pending span may only be cancelled; other finishes are 409 naming its status."""
    instance = await api.register()
    span = (
        await api.span(instance["id"], schema_name="agent:llm", status="pending", payload={})
    ).json()["details"]
    assert span["status"] == "pending"
    assert span["started_at"] is None
    wrong = await api.finish_span(span["id"], status="complete")
    assert wrong.status_code == 409
    assert "pending" in wrong.json()["message"]
    cancelled = await api.finish_span(span["id"], status="cancelled")
    assert cancelled.json()["details"]["status"] == "cancelled"
    again = await api.finish_span(span["id"], status="cancelled")
    assert again.status_code == 409
    assert "cancelled" in again.json()["message"]


async def test_create_directly_terminal(api: Api) -> None:
    """A span can be created complete, with result and finished_at."""
    instance = await api.register()
    response = await api.span(
        instance["id"],
        status="complete",
        result_payload={"n": 1},
        started_at="2026-08-10T09:00:00+00:00",
        finished_at="2026-08-10T09:00:01.5+00:00",
    )
    span = response.json()["details"]
    assert span["status"] == "complete"
    assert span["finished_at"] == "2026-08-10T09:00:01.500000Z"


async def test_span_replay_and_client_id(api: Api, client: httpx.AsyncClient) -> None:
    """Same key replays with 200; the same client id with another key is 409."""
    instance = await api.register()
    first = await api.span(instance["id"], id="span-1", idempotency_key="key-1")
    assert first.json()["details"]["id"] == "span-1"
    replay = await api.span(instance["id"], id="span-other", idempotency_key="key-1")
    assert replay.status_code == 200
    assert replay.json() == first.json()
    clash = await api.span(instance["id"], id="span-1", idempotency_key="key-2")
    assert clash.status_code == 409
    listing = (await client.get("/api/v1/agent_spans")).json()
    assert listing["pagination"]["item_count"] == 1


async def test_span_finish_replay(api: Api) -> None:
    """A finish replay (same key) answers 200 with the stored body, not 409."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    first = await api.finish_span(span["id"], idempotency_key="finish-key")
    replay = await api.finish_span(span["id"], status="failed", idempotency_key="finish-key")
    assert replay.status_code == 200
    assert replay.json() == first.json()


async def test_orphan_parent_is_kept_then_adopted(api: Api, client: httpx.AsyncClient) -> None:
    """An unknown parent id is stored and marked orphaned until that parent arrives."""
    instance = await api.register()
    child = (await api.span(instance["id"], parent_span_id="later-parent")).json()["details"]
    assert child["parent_span_id"] == "later-parent"
    assert child["orphaned"] is True
    await api.span(instance["id"], id="later-parent")
    got = (await client.get(f"/api/v1/agent_spans/{child['id']}")).json()["details"]
    assert got["orphaned"] is False


async def test_parent_in_other_instance_is_422(api: Api) -> None:
    """A parent span that belongs to another instance is 422 on parent_span_id."""
    first = await api.register()
    second = await api.register()
    parent = (await api.span(first["id"])).json()["details"]
    response = await api.span(second["id"], parent_span_id=parent["id"])
    assert response.status_code == 422
    assert "parent_span_id" in response.json()["errors"]


async def test_span_traffic_for_pending_and_finished_instances(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Spans are accepted before start and finished after the instance finished."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    await client.post(f"/api/v1/agent_instance/{instance['id']}/finish", json={})
    response = await api.finish_span(span["id"])
    assert response.status_code == 200


async def test_terminated_instance_answers_with_control(
    api: Api, client: httpx.AsyncClient
) -> None:
    """After terminate, span create and finish are 2xx with top-level control."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    await client.post(
        f"/api/v1/agent_instance/{instance['id']}/terminate", json={"reason": "stop now"}
    )
    control = {"terminate": True, "reason": "stop now"}
    created = await api.span(instance["id"])
    assert created.status_code == 201
    assert created.json()["control"] == control
    finished = await api.finish_span(span["id"])
    assert finished.status_code == 200
    assert finished.json()["control"] == control


async def test_span_create_errors(api: Api, client: httpx.AsyncClient) -> None:
    """Missing fields, unknown instance and malformed bodies answer in the error envelope."""
    missing = await client.post("/api/v1/agent_spans", json={"details": {"schema_name": "x"}})
    assert missing.status_code == 422
    assert "agent_instance_id" in missing.json()["errors"]
    unknown = await api.span("nope")
    assert unknown.status_code == 404
    instance = await api.register()
    not_object = await api.span(instance["id"], payload=[1])
    assert not_object.status_code == 422
    assert "payload" in not_object.json()["errors"]
    bad_status = await api.span(instance["id"], status="weird")
    assert bad_status.status_code == 422
    assert (await api.finish_span("nope")).status_code == 404
