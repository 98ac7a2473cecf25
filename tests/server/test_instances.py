"""Agent instance endpoints: register, transitions, idempotency, client ids, quality."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Api


async def test_register_creates_pending_instance_and_agent(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Register answers 201 with a pending instance under a newly created agent."""
    details = await api.register()
    assert details["type"] == "agent_instance"
    assert details["status"] == "pending"
    assert details["agent_id"] == "my-agent"
    assert details["agent_deployment_id"]
    assert details["inserted_at"].endswith("Z")
    counts = details["span_counts"]
    assert set(counts) == {
        "total",
        "pending",
        "active",
        "complete",
        "failed",
        "cancelled",
        "finished",
    }
    assert set(counts.values()) == {0}
    agent = (await client.get("/api/v1/agent/my-agent")).json()["details"]
    assert agent["name"] == "My Agent"
    assert agent["status"] == "active"


async def test_register_without_agent_id_uses_default_agent(api: Api) -> None:
    """Two registers without agent_id land on the same default agent."""
    first = await api.register(agent_id=None)
    second = await api.register(agent_id=None)
    assert first["agent_id"] == second["agent_id"]
    assert len(first["id"]) == 32


async def test_reregistering_a_version_identifier_reuses_it(api: Api) -> None:
    """The same agent_version external_identifier maps to one stored version."""
    first = await api.register()
    second = await api.register()
    assert first["agent_version_id"] == second["agent_version_id"]
    assert first["agent_schema_version_id"] == second["agent_schema_version_id"]
    assert first["id"] != second["id"]


async def test_register_with_client_id(api: Api, client: httpx.AsyncClient) -> None:
    """A client-chosen id is used; the same id with another key is 409."""
    details = await api.register(id="run-1")
    assert details["id"] == "run-1"
    response = await client.post(
        "/api/v1/agent_instance/register",
        json={"agent_id": "my-agent", "id": "run-1", "idempotency_key": "another-key"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


async def test_register_rejects_a_bad_client_id(client: httpx.AsyncClient) -> None:
    """An id with characters outside letters, digits, _ and - is 422 naming the field."""
    response = await client.post("/api/v1/agent_instance/register", json={"id": "a/b"})
    assert response.status_code == 422
    assert "id" in response.json()["errors"]


async def test_register_replay_returns_stored_response(client: httpx.AsyncClient) -> None:
    """The same key again answers 200 with the stored body, even with a different body."""
    body = {"agent_id": "my-agent", "idempotency_key": "register-key-1"}
    first = await client.post("/api/v1/agent_instance/register", json=body)
    replay = await client.post(
        "/api/v1/agent_instance/register", json={**body, "agent_id": "other", "id": "x"}
    )
    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json() == first.json()
    listing = (await client.get("/api/v1/agent_instance")).json()
    assert listing["pagination"]["item_count"] == 1


async def test_start_then_finish(api: Api, client: httpx.AsyncClient) -> None:
    """Start makes the instance active, finish makes it terminal with finished_at."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}"
    started = await client.post(
        f"{url}/start", json={"timestamp": "2026-08-10T11:00:01+02:00", "idempotency_key": "s1"}
    )
    assert started.status_code == 200
    assert started.json()["details"]["status"] == "active"
    assert started.json()["details"]["started_at"] == "2026-08-10T09:00:01.000000Z"
    finished = await client.post(
        f"{url}/finish", json={"status": "failed", "idempotency_key": "f1"}
    )
    assert finished.json()["details"]["status"] == "failed"
    assert finished.json()["details"]["finished_at"].endswith("Z")


async def test_finish_defaults_to_complete_from_pending(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Finish without status from pending completes the instance."""
    instance = await api.register()
    response = await client.post(f"/api/v1/agent_instance/{instance['id']}/finish", json={})
    assert response.status_code == 200
    assert response.json()["details"]["status"] == "complete"


async def test_finish_of_finished_instance_with_new_key_is_409(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A second finish with a new key is 409 naming the current status."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}/finish"
    await client.post(url, json={"idempotency_key": "finish-1"})
    response = await client.post(url, json={"idempotency_key": "finish-2"})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "complete" in response.json()["message"]


async def test_finish_replay_with_other_body_is_200(api: Api, client: httpx.AsyncClient) -> None:
    """The SDK's stable finish key with a new timestamp and status replays, unchanged."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}/finish"
    first = await client.post(url, json={"status": "complete", "idempotency_key": "finish-1"})
    replay = await client.post(
        url,
        json={
            "status": "failed",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "idempotency_key": "finish-1",
        },
    )
    assert replay.status_code == 200
    assert replay.json() == first.json()


async def test_start_twice_is_409_and_a_late_start_changes_nothing(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A second start of an active instance (new key) is 409 naming the status; a start
    that arrives after the finish (a retried start, delivered out of order) answers 200
    with the instance still finished."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}"
    await client.post(f"{url}/start", json={"idempotency_key": "s1"})
    again = await client.post(f"{url}/start", json={"idempotency_key": "s2"})
    assert again.status_code == 409
    assert "active" in again.json()["message"]
    finished = await client.post(f"{url}/finish", json={"idempotency_key": "f1"})
    late = await client.post(f"{url}/start", json={"idempotency_key": "s3"})
    assert late.status_code == 200
    assert late.json()["details"]["status"] == "complete"
    assert late.json()["details"]["finished_at"] == finished.json()["details"]["finished_at"]
    assert late.json()["details"]["started_at"] == finished.json()["details"]["started_at"]


async def test_a_start_after_the_finish_records_when_it_started(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Finish first (the start was delayed), then the start: the instance stays finished
    and gets the start's time; a terminated instance still refuses a start."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}"
    done = await client.post(
        f"{url}/finish", json={"status": "failed", "timestamp": "2026-08-10T09:00:05+00:00"}
    )
    assert done.json()["details"]["started_at"] is None
    late = await client.post(f"{url}/start", json={"timestamp": "2026-08-10T09:00:01+00:00"})
    assert late.status_code == 200
    details = late.json()["details"]
    assert details["status"] == "failed"
    assert details["started_at"].startswith("2026-08-10T09:00:01")
    read = await client.get(url)
    assert read.json()["details"]["started_at"] == details["started_at"]

    other = await api.register()
    other_url = f"/api/v1/agent_instance/{other['id']}"
    await client.post(f"{other_url}/terminate", json={"reason": "stop"})
    refused = await client.post(f"{other_url}/start", json={})
    assert refused.status_code == 409
    assert "terminated" in refused.json()["message"]


async def test_naive_timestamp_is_invalid_value(api: Api, client: httpx.AsyncClient) -> None:
    """A timestamp without offset is 422 invalid_value on the field."""
    instance = await api.register()
    response = await client.post(
        f"/api/v1/agent_instance/{instance['id']}/start", json={"timestamp": "2026-08-10T09:00:00"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_value"
    assert "timestamp" in response.json()["errors"]


async def test_terminate_then_finish_is_409(api: Api, client: httpx.AsyncClient) -> None:
    """Terminate sets status and reason; a later finish is 409; terminate needs a reason."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}"
    missing = await client.post(f"{url}/terminate", json={})
    assert missing.status_code == 422
    assert "reason" in missing.json()["errors"]
    response = await client.post(f"{url}/terminate", json={"reason": "runaway loop"})
    assert response.status_code == 200
    assert response.json()["details"]["status"] == "terminated"
    assert response.json()["details"]["termination_reason"] == "runaway loop"
    finish = await client.post(f"{url}/finish", json={"idempotency_key": "f-after-terminate"})
    assert finish.status_code == 409
    again = await client.post(f"{url}/terminate", json={"reason": "twice"})
    assert again.status_code == 409
    got = (await client.get(url)).json()["details"]
    assert got["status"] == "terminated"


async def test_record_quality_renders_summary_and_removes(
    api: Api, client: httpx.AsyncClient
) -> None:
    """record_quality stores the payload and rendered summary; a null payload removes it."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}/record_quality"
    response = await client.post(url, json={"name": "accuracy", "payload": {"score": 0.95}})
    details = response.json()["details"]
    assert details["quality_payloads"] == {"accuracy": {"score": 0.95}}
    assert details["quality_summaries"] == {"accuracy": "Score 0.95"}
    removed = await client.post(url, json={"name": "accuracy", "payload": None})
    assert removed.json()["details"]["quality_payloads"] == {}


async def test_record_quality_validates(api: Api, client: httpx.AsyncClient) -> None:
    """An unknown quality name and a payload not matching its schema are 422."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}/record_quality"
    unknown = await client.post(url, json={"name": "nope", "payload": {}})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_quality_schema"
    bad = await client.post(url, json={"name": "accuracy", "payload": {"score": "high"}})
    assert bad.status_code == 422
    assert "payload.score" in bad.json()["errors"]


async def test_unknown_instance_is_404(client: httpx.AsyncClient) -> None:
    """Every instance endpoint answers 404 not_found for an unknown id."""
    for path in ("start", "finish", "record_quality", "terminate"):
        response = await client.post(
            f"/api/v1/agent_instance/nope/{path}", json={"name": "x", "reason": "r"}
        )
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert (await client.get("/api/v1/agent_instance/nope")).status_code == 404


async def test_invalid_schema_in_register_is_422(client: httpx.AsyncClient) -> None:
    """A span type whose params_schema is not a JSON Schema is 422 with its path."""
    body = {
        "agent_schema_version": {
            "span_type_schemas": [{"name": "x", "params_schema": {"type": "nonsense"}}]
        }
    }
    response = await client.post("/api/v1/agent_instance/register", json=body)
    assert response.status_code == 422
    assert "agent_schema_version.span_type_schemas.0.params_schema" in response.json()["errors"]
