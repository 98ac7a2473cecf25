"""POST /api/v1/bulk with ``Prefer: omit=success`` (our own preference): the answer lists
only the outputs that are no plain success and says how many items ran."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import Api

SCHEMA = {"external_identifier": "omit-schema", "span_schemas": {"step": {"type": "object"}}}
BOTH = "return=minimal, omit=success"


def _span(key: str, instance_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "_type": "agent_spans/create",
        "idempotency_key": key,
        "agent_instance_id": instance_id,
        "schema_name": "step",
        "status": "active",
        **fields,
    }


async def test_plain_successes_are_left_out(api: Api, client: httpx.AsyncClient) -> None:
    """Everything succeeded: no output listed, every item counted as run, the writes made."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [_span(f"omit-key-{n}", instance["id"], id=f"omit-span-{n}") for n in range(3)]
    response = await client.post("/api/v1/bulk", json={"items": items}, headers={"Prefer": BOTH})
    assert response.status_code == 200
    assert response.headers["preference-applied"] == BOTH
    assert response.json() == {"status": "success", "outputs": {}, "omitted": "success",
                               "processed": 3}  # fmt: skip
    for n in range(3):
        assert (await client.get(f"/api/v1/agent_spans/omit-span-{n}")).status_code == 200


async def test_the_failing_item_is_listed_and_counted(api: Api, client: httpx.AsyncClient) -> None:
    """The refused item is listed as in the full answer; the items after it did not run."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [
        _span("good-span", instance["id"], id="omit-good"),
        _span("bad-span-", "missing"),
        _span("never-run", instance["id"], id="omit-never"),
    ]
    full = await client.post("/api/v1/bulk", json={"items": items[1:2]})
    response = await client.post("/api/v1/bulk", json={"items": items}, headers={"Prefer": BOTH})
    body = response.json()
    assert body["outputs"] == {"bad-span-": full.json()["outputs"]["bad-span-"]}
    assert body["outputs"]["bad-span-"]["code"] == "not_found"
    assert (body["omitted"], body["processed"]) == ("success", 2)
    assert (await client.get("/api/v1/agent_spans/omit-never")).status_code == 404


async def test_a_success_with_control_is_listed(api: Api, client: httpx.AsyncClient) -> None:
    """A success that carries a ``control`` (a terminated instance) stays in the answer;
    the plain success beside it does not. Without ``return=minimal`` the listed output
    is the full one."""
    live = await api.register(agent_schema_version=SCHEMA)
    stopped = await api.register(agent_schema_version=SCHEMA)
    terminate = await client.post(
        f"/api/v1/agent_instance/{stopped['id']}/terminate", json={"reason": "stop now"}
    )
    assert terminate.status_code == 200
    items = [_span("plain-one", live["id"]), _span("after-term", stopped["id"], id="late")]
    response = await client.post(
        "/api/v1/bulk", json={"items": items}, headers={"Prefer": "omit=success"}
    )
    assert response.headers["preference-applied"] == "omit=success"
    body = response.json()
    assert list(body["outputs"]) == ["after-term"]
    output = body["outputs"]["after-term"]
    assert output["control"] == {"terminate": True, "reason": "stop now"}
    assert output["details"]["id"] == "late"
    assert body["processed"] == 2


async def test_without_the_preference_every_output_is_listed(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Asked only for ``return=minimal`` (or nothing), the answer lists each item, with no
    marker: what other servers answer, and what the SDK still reads."""
    instance = await api.register(agent_schema_version=SCHEMA)
    items = [_span(f"full-key-{n}", instance["id"]) for n in range(2)]
    response = await client.post(
        "/api/v1/bulk", json={"items": items}, headers={"Prefer": "return=minimal"}
    )
    body = response.json()
    assert response.headers["preference-applied"] == "return=minimal"
    assert set(body) == {"status", "outputs"}
    assert [output["status"] for output in body["outputs"].values()] == ["success"] * 2


async def test_terminal_creates_and_their_replays(api: Api, client: httpx.AsyncClient) -> None:
    """Terminal span creates (the fast path, keyed as our SDK keys them or otherwise) are
    plain successes: none listed. Sent again, the request's items are replays, which are
    listed as the successes they were, and still counted as run."""
    instance = await api.register(agent_schema_version=SCHEMA)
    done = {
        "status": "complete",
        "payload": {"q": 1},
        "result_payload": {"a": 2},
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
    }
    child = {**done, "parent_span_id": "omit-fast-0"}
    items = [
        _span("c-omit-fast-0", instance["id"], id="omit-fast-0", **done),
        _span("omit-fast-key-1", instance["id"], id="omit-fast-1", **done),
        _span("c-omit-fast-2", instance["id"], id="omit-fast-2", **child),
    ]
    first = await client.post("/api/v1/bulk", json={"items": items}, headers={"Prefer": BOTH})
    assert first.json() == {"status": "success", "outputs": {}, "omitted": "success",
                            "processed": 3}  # fmt: skip
    for n in range(3):
        span = (await client.get(f"/api/v1/agent_spans/omit-fast-{n}")).json()["details"]
        assert span["status"] == "complete"
    again = (
        await client.post("/api/v1/bulk", json={"items": items}, headers={"Prefer": BOTH})
    ).json()
    assert again["processed"] == 3
    assert {key: output["status"] for key, output in again["outputs"].items()} == {
        item["idempotency_key"]: "success" for item in items
    }
    assert [output["id"] for output in again["outputs"].values()] == [
        "omit-fast-0",
        "omit-fast-1",
        "omit-fast-2",
    ]
