"""Agent endpoints of wire spec 2.10."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Api


async def test_agent_lifecycle(client: httpx.AsyncClient) -> None:
    """Create, get, update, list, retire, reinstate and delete an agent."""
    created = await client.post(
        "/api/v1/agent",
        json={
            "details": {"name": "Support", "external_identifier": "support"},
            "idempotency_key": "a1",
        },
    )
    assert created.status_code == 201
    agent = created.json()["details"]
    assert agent["type"] == "agent"
    assert agent["status"] == "pending"
    assert agent["available_actions"] == {
        "update": True, "retire": True, "reinstate": False, "delete": True,
    }  # fmt: skip
    url = f"/api/v1/agent/{agent['id']}"
    assert (await client.get(url)).json()["details"]["name"] == "Support"
    updated = await client.put(url, json={"details": {"name": "Support 2", "team_id": "t1"}})
    assert updated.json()["details"]["name"] == "Support 2"
    listed = (await client.get("/api/v1/agent", params={"team_id": "t1"})).json()
    assert [row["id"] for row in listed["summaries"]] == [agent["id"]]
    retired = await client.post(f"{url}/retire")
    assert retired.json()["details"]["status"] == "retired"
    assert (await client.post(f"{url}/retire")).status_code == 409
    reinstated = await client.post(f"{url}/reinstate", json={"idempotency_key": "r1"})
    assert reinstated.json()["details"]["status"] == "pending"
    deleted = await client.delete(url)
    assert deleted.status_code == 200
    assert deleted.json()["details"]["id"] == agent["id"]
    assert (await client.get(url)).status_code == 404


async def test_agent_create_conflicts_and_replay(client: httpx.AsyncClient) -> None:
    """A taken external_identifier or id is 409; the same key replays with 200."""
    body = {
        "details": {"name": "A", "id": "agent-a", "external_identifier": "ext"},
        "idempotency_key": "k1",
    }
    first = await client.post("/api/v1/agent", json=body)
    replay = await client.post("/api/v1/agent", json=body)
    assert replay.status_code == 200
    assert replay.json() == first.json()
    taken = await client.post(
        "/api/v1/agent", json={"details": {"name": "B", "external_identifier": "ext"}}
    )
    assert taken.status_code == 409
    same_id = await client.post("/api/v1/agent", json={"details": {"name": "C", "id": "agent-a"}})
    assert same_id.status_code == 409
    missing = await client.post("/api/v1/agent", json={"details": {}})
    assert "details.name" in missing.json()["errors"]


async def test_show_with_counts(api: Api, client: httpx.AsyncClient) -> None:
    """show finds by agent_id or external_identifier and can include instance counts."""
    instance = await api.register()
    await client.post(f"/api/v1/agent_instance/{instance['id']}/finish", json={})
    await api.register()
    shown = await client.get(
        "/api/v1/agent/show", params={"agent_id": "my-agent", "include_counts": "true"}
    )
    counts = shown.json()["details"]["instance_counts"]
    assert counts["total"] == 2
    assert counts["pending"] == 1
    assert counts["finished"] == 1
    neither = await client.get("/api/v1/agent/show")
    assert neither.status_code == 422
    unknown = await client.get("/api/v1/agent/show", params={"external_identifier": "nope"})
    assert unknown.status_code == 404
