"""POST /api/v1/bulk: every action, per-item semantics, stop at first error, caps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from prefactor_server.testing import LocalServer

if TYPE_CHECKING:
    from conftest import Api

SCHEMA = {"external_identifier": "bulk-schema", "span_schemas": {"step": {"type": "object"}}}


def _item(action: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"_type": action, "idempotency_key": key, **fields}


async def test_bulk_runs_every_action(client: httpx.AsyncClient) -> None:
    """A whole lifecycle in one bulk request, with client ids and flat and details span forms."""
    items = [
        _item("agent_instances/register", "register-1", id="inst-1", agent_id="bulk-agent",
              agent_schema_version=SCHEMA),
        _item("agent_instances/start", "start-0001", agent_instance_id="inst-1"),
        _item("agent_spans/create", "create-001", id="span-1", agent_instance_id="inst-1",
              schema_name="step", status="active", payload={"a": 1}),
        _item("agent_spans/create", "create-002", details={
            "id": "span-2", "agent_instance_id": "inst-1", "schema_name": "step",
            "status": "active", "parent_span_id": "span-1"}),
        _item("agent_spans/finish", "finish-002", agent_span_id="span-2", status="complete"),
        _item("agent_spans/finish", "finish-001", agent_span_id="span-1", status="failed"),
        _item("agent_instances/record_quality", "quality-1", agent_instance_id="inst-1",
              name="q", payload={"x": 1}),
        _item("agent_instances/finish", "finish-ins", agent_instance_id="inst-1"),
    ]  # fmt: skip
    response = await client.post("/api/v1/bulk", json={"items": items})
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert list(outputs) == [item["idempotency_key"] for item in items]
    assert all(output["status"] == "success" for output in outputs.values())
    assert outputs["create-002"]["details"]["parent_span_id"] == "span-1"
    assert outputs["create-002"]["details"]["orphaned"] is False
    instance = (await client.get("/api/v1/agent_instance/inst-1")).json()["details"]
    assert instance["status"] == "complete"
    assert instance["span_counts"]["complete"] == 1
    assert instance["span_counts"]["failed"] == 1


async def test_bulk_stops_at_first_error_and_keeps_earlier_items(
    api: Api, client: httpx.AsyncClient
) -> None:
    """The failing item's error is the last output; earlier items commit, later are absent."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [
        _item("agent_spans/create", "good-span", agent_instance_id=instance["id"],
              schema_name="step", status="active"),
        _item("agent_spans/create", "bad-span-", agent_instance_id="missing",
              schema_name="step", status="active"),
        _item("agent_spans/create", "never-run", agent_instance_id=instance["id"],
              schema_name="step", status="active"),
    ]  # fmt: skip
    outputs = (await client.post("/api/v1/bulk", json={"items": items})).json()["outputs"]
    assert list(outputs) == ["good-span", "bad-span-"]
    assert outputs["bad-span-"]["status"] == "error"
    assert outputs["bad-span-"]["code"] == "not_found"
    spans = (await client.get("/api/v1/agent_spans")).json()["summaries"]
    assert len(spans) == 1


async def test_bulk_item_is_atomic_on_its_own(api: Api, client: httpx.AsyncClient) -> None:
    """A failing register leaves none of its partial writes (agent, versions) behind."""
    items = [
        _item("agent_instances/register", "bad-register", agent_id="half-made",
              agent_schema_version={"span_schemas": {"x": {"type": "nonsense"}}}),
    ]  # fmt: skip
    outputs = (await client.post("/api/v1/bulk", json={"items": items})).json()["outputs"]
    assert outputs["bad-register"]["code"] == "invalid_schema"
    assert (await client.get("/api/v1/agent/half-made")).status_code == 404


async def test_bulk_and_single_share_idempotency(api: Api, client: httpx.AsyncClient) -> None:
    """A bulk item with a key already used by the single endpoint replays its response."""
    instance = await api.register(agent_schema_version=SCHEMA)
    single = await api.span(instance["id"], schema_name="step", idempotency_key="shared-key-1")
    items = [_item("agent_spans/create", "shared-key-1", agent_instance_id=instance["id"],
                   schema_name="step", status="pending")]  # fmt: skip
    outputs = (await client.post("/api/v1/bulk", json={"items": items})).json()["outputs"]
    assert outputs["shared-key-1"] == single.json()


async def test_bulk_unknown_action_is_an_item_error(client: httpx.AsyncClient) -> None:
    """An unknown _type stops processing with an unknown_action output."""
    items = [_item("agents/list", "list-agents")]
    outputs = (await client.post("/api/v1/bulk", json={"items": items})).json()["outputs"]
    assert outputs["list-agents"]["code"] == "unknown_action"


async def test_bulk_request_validation(client: httpx.AsyncClient) -> None:
    """Bad item lists are 422 validation_errors with the item path."""
    empty = await client.post("/api/v1/bulk", json={"items": []})
    assert empty.status_code == 422
    assert empty.json()["code"] == "validation_errors"
    short = await client.post(
        "/api/v1/bulk", json={"items": [_item("agent_spans/create", "short")]}
    )
    assert "items.0.idempotency_key" in short.json()["errors"]
    dup = [_item("agent_spans/create", "same-key-1"), _item("agent_spans/create", "same-key-1")]
    duplicated = await client.post("/api/v1/bulk", json={"items": dup})
    assert "items.1.idempotency_key" in duplicated.json()["errors"]


async def test_bulk_caps(database: str | Path) -> None:
    """Too many items is 422 too_many_items; a body over the limit is 413."""
    server = LocalServer(database, token="tok-12345678", bulk_max_items=2, max_body_bytes=2048)
    async with (
        server,
        server.client() as client,
    ):
        items = [_item("agent_spans/create", f"key-{i:05d}") for i in range(3)]
        many = await client.post("/api/v1/bulk", json={"items": items})
        assert many.status_code == 422
        assert many.json()["code"] == "too_many_items"
        big = await client.post("/api/v1/bulk", content=b'{"items": [' + b" " * 4096 + b"]}")
        assert big.status_code == 413
        assert big.json()["code"] == "payload_too_large"
