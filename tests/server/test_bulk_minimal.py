"""POST /api/v1/bulk with ``Prefer: return=minimal`` (RFC 7240): compact success outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import Api

SCHEMA = {"external_identifier": "bulk-schema", "span_schemas": {"step": {"type": "object"}}}
MINIMAL = {"Prefer": "return=minimal"}


def _item(action: str, key: str, **fields: Any) -> dict[str, Any]:
    if action == "agent_spans/create":
        fields.setdefault("status", "active")
    return {"_type": action, "idempotency_key": key, **fields}


def _lifecycle() -> list[dict[str, Any]]:
    return [
        _item("agent_instances/register", "register-1", id="inst-1", agent_id="bulk-agent",
              agent_schema_version=SCHEMA),
        _item("agent_instances/start", "start-0001", agent_instance_id="inst-1"),
        _item("agent_spans/create", "create-001", id="span-1", agent_instance_id="inst-1",
              schema_name="step", status="active", payload={"a": 1}),
        _item("agent_spans/create", "create-002", details={
            "id": "span-2", "agent_instance_id": "inst-1", "schema_name": "step",
            "status": "complete", "parent_span_id": "span-1"}),
        _item("agent_spans/finish", "finish-001", agent_span_id="span-1", status="failed"),
        _item("agent_instances/record_quality", "quality-1", agent_instance_id="inst-1",
              name="q", payload={"x": 1}),
        _item("agent_instances/finish", "finish-ins", agent_instance_id="inst-1"),
    ]  # fmt: skip


async def test_minimal_outputs_are_status_and_id(client: httpx.AsyncClient) -> None:
    """Every success output is just status and the resource id; the header says so."""
    items = _lifecycle()
    response = await client.post("/api/v1/bulk", json={"items": items}, headers=MINIMAL)
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "return=minimal"
    body = response.json()
    assert body["status"] == "success"
    assert body["outputs"] == {
        "register-1": {"status": "success", "id": "inst-1"},
        "start-0001": {"status": "success", "id": "inst-1"},
        "create-001": {"status": "success", "id": "span-1"},
        "create-002": {"status": "success", "id": "span-2"},
        "finish-001": {"status": "success", "id": "span-1"},
        "quality-1": {"status": "success", "id": "inst-1"},
        "finish-ins": {"status": "success", "id": "inst-1"},
    }
    # The writes are the same as without the preference.
    span = (await client.get("/api/v1/agent_spans/span-1")).json()["details"]
    assert span["status"] == "failed"
    assert span["payload"] == {"a": 1}


async def test_without_the_header_outputs_are_full(client: httpx.AsyncClient) -> None:
    """No Prefer header (or another preference): full outputs, no Preference-Applied."""
    items = _lifecycle()
    response = await client.post(
        "/api/v1/bulk", json={"items": items}, headers={"Prefer": "return=representation"}
    )
    assert response.status_code == 200
    assert "preference-applied" not in response.headers
    outputs = response.json()["outputs"]
    assert outputs["create-001"]["details"]["id"] == "span-1"
    assert outputs["create-001"]["details"]["type"] == "agent_span"
    assert outputs["register-1"]["details"]["type"] == "agent_instance"


async def test_prefer_header_forms(api: Api, client: httpx.AsyncClient) -> None:
    """The preference is found among others, case-insensitively, with parameters."""
    instance = await api.register(agent_schema_version=SCHEMA)
    for index, header in enumerate(
        ["respond-async, RETURN=Minimal", 'return="minimal"; foo=bar', "wait=5,return=minimal"]
    ):
        items = [_item("agent_spans/create", f"form-key-{index}", agent_instance_id=instance["id"],
                       schema_name="step", status="active")]  # fmt: skip
        response = await client.post("/api/v1/bulk", json={"items": items}, headers={
            "Prefer": header})  # fmt: skip
        assert response.headers["preference-applied"] == "return=minimal", header
        output = response.json()["outputs"][f"form-key-{index}"]
        assert set(output) == {"status", "id"}


async def test_errors_stay_full_under_minimal(api: Api, client: httpx.AsyncClient) -> None:
    """The failing item's error output is unchanged; processing still stops there."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [
        _item("agent_spans/create", "good-span", agent_instance_id=instance["id"],
              schema_name="step", status="active"),
        _item("agent_spans/create", "bad-span-", agent_instance_id="missing",
              schema_name="step", status="active"),
        _item("agent_spans/create", "never-run", agent_instance_id=instance["id"],
              schema_name="step", status="active"),
    ]  # fmt: skip
    full = await client.post("/api/v1/bulk", json={"items": items[1:2]})
    minimal = await client.post("/api/v1/bulk", json={"items": items}, headers=MINIMAL)
    outputs = minimal.json()["outputs"]
    assert list(outputs) == ["good-span", "bad-span-"]
    assert set(outputs["good-span"]) == {"status", "id"}
    assert outputs["bad-span-"] == full.json()["outputs"]["bad-span-"]
    assert outputs["bad-span-"]["code"] == "not_found"


async def test_minimal_keeps_control(api: Api, client: httpx.AsyncClient) -> None:
    """A span on a terminated instance answers minimal output plus top-level control."""
    instance = await api.register(agent_schema_version=SCHEMA)
    terminate = await client.post(
        f"/api/v1/agent_instance/{instance['id']}/terminate", json={"reason": "stop now"}
    )
    assert terminate.status_code == 200
    items = [_item("agent_spans/create", "after-term", id="late-span",
                   agent_instance_id=instance["id"], schema_name="step")]  # fmt: skip
    response = await client.post("/api/v1/bulk", json={"items": items}, headers=MINIMAL)
    assert response.json()["outputs"]["after-term"] == {
        "status": "success",
        "id": "late-span",
        "control": {"terminate": True, "reason": "stop now"},
    }


async def test_replays_follow_the_preference_of_the_replay(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A minimal request replays minimal, a full request replays the stored full answer,
    whichever form the first request asked for; a replay changes nothing."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [_item("agent_spans/create", "replay-key", id="replayed",
                   agent_instance_id=instance["id"], schema_name="step")]  # fmt: skip
    first = await client.post("/api/v1/bulk", json={"items": items}, headers=MINIMAL)
    assert first.json()["outputs"]["replay-key"] == {"status": "success", "id": "replayed"}
    again = await client.post("/api/v1/bulk", json={"items": items}, headers=MINIMAL)
    assert again.headers["preference-applied"] == "return=minimal"
    assert again.json()["outputs"]["replay-key"] == {"status": "success", "id": "replayed"}
    full = await client.post("/api/v1/bulk", json={"items": items})
    details = full.json()["outputs"]["replay-key"]["details"]
    assert details["id"] == "replayed"
    assert details["status"] == "active"
    # And the other way round: a full first answer, replayed minimal.
    other = [_item("agent_spans/create", "replay-two", id="replayed-2",
                   agent_instance_id=instance["id"], schema_name="step")]  # fmt: skip
    first_full = await client.post("/api/v1/bulk", json={"items": other})
    assert first_full.json()["outputs"]["replay-two"]["details"]["id"] == "replayed-2"
    replay_minimal = await client.post("/api/v1/bulk", json={"items": other}, headers=MINIMAL)
    assert replay_minimal.json()["outputs"]["replay-two"] == {
        "status": "success",
        "id": "replayed-2",
    }
    replay_full = await client.post("/api/v1/bulk", json={"items": other})
    assert replay_full.json() == first_full.json()
    spans = (await client.get(f"/api/v1/agent_spans?agent_instance_id={instance['id']}")).json()
    assert spans["pagination"]["item_count"] == 2
