"""Read side: list envelopes, filters, pagination, both sorting forms, full rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Api


async def test_span_list_filters_and_full_rows(api: Api, client: httpx.AsyncClient) -> None:
    """Spans filter by instance, agent, status and schema name; rows are full resources."""
    first = await api.register()
    second = await api.register(agent_id="other-agent")
    llm = await api.span(
        first["id"], schema_name="agent:llm", payload={"model": "m", "prompt": "p"}
    )
    await api.span(first["id"])
    await api.span(second["id"], status="pending")
    await api.finish_span(llm.json()["details"]["id"], result_payload={"response": "r"})

    async def ids(**params: str) -> int:
        body = (await client.get("/api/v1/agent_spans", params=params)).json()
        return int(body["pagination"]["item_count"])

    assert await ids(agent_instance_id=first["id"]) == 2
    assert await ids(agent_id="other-agent") == 1
    assert await ids(status="pending") == 1
    assert await ids(schema_name="agent:llm") == 1
    row = (await client.get("/api/v1/agent_spans", params={"schema_name": "agent:llm"})).json()[
        "summaries"
    ][0]
    assert row["payload"] == {"model": "m", "prompt": "p"}
    assert row["result_payload"] == {"response": "r"}
    assert row["summary"] == "m: p → r"
    assert row["finished_at"].endswith("Z")


async def test_instance_list_filters(api: Api, client: httpx.AsyncClient) -> None:
    """Instances filter by agent_id and status and carry span counts."""
    first = await api.register()
    await api.register(agent_id="other-agent")
    await client.post(f"/api/v1/agent_instance/{first['id']}/start", json={})
    await api.span(first["id"])
    by_agent = (await client.get("/api/v1/agent_instance", params={"agent_id": "my-agent"})).json()
    assert [row["id"] for row in by_agent["summaries"]] == [first["id"]]
    assert by_agent["summaries"][0]["span_counts"]["active"] == 1
    active = (await client.get("/api/v1/agent_instance", params={"status": "active"})).json()
    assert active["pagination"]["item_count"] == 1


async def test_pagination_and_sorting(api: Api, client: httpx.AsyncClient) -> None:
    """Pages follow offset/page_size; -id and sorting[field]/[direction] both sort newest first."""
    instance = await api.register()
    created = [(await api.span(instance["id"])).json()["details"]["id"] for _ in range(5)]
    page = (
        await client.get(
            "/api/v1/agent_spans", params={"pagination[offset]": "2", "pagination[page_size]": "2"}
        )
    ).json()
    assert [row["id"] for row in page["summaries"]] == created[2:4]
    assert page["pagination"] == {
        "item_count": 5, "item_start": 3, "item_end": 4, "page_count": 3, "page_index": 2,
        "page_offset": 2, "page_size": 2, "next_page_offset": 4, "previous_page_offset": 0,
    }  # fmt: skip
    assert page["sorting"] == {"field": "id", "direction": "asc"}
    newest = (await client.get("/api/v1/agent_spans", params={"sorting": "-id"})).json()
    assert [row["id"] for row in newest["summaries"]] == created[::-1]
    bracketed = (
        await client.get(
            "/api/v1/agent_spans", params={"sorting[field]": "id", "sorting[direction]": "desc"}
        )
    ).json()
    assert bracketed["summaries"] == newest["summaries"]
    assert bracketed["sorting"] == {"field": "id", "direction": "desc"}
    last = (await client.get("/api/v1/agent_spans", params={"pagination[offset]": "4"})).json()
    assert last["pagination"]["next_page_offset"] is None


async def test_list_query_errors(client: httpx.AsyncClient) -> None:
    """A page size over 100, a bad offset or an unknown sort field is 422 naming the parameter."""
    big = await client.get("/api/v1/agent_spans", params={"pagination[page_size]": "101"})
    assert big.status_code == 422
    assert "pagination[page_size]" in big.json()["errors"]
    bad = await client.get("/api/v1/agent_instance", params={"pagination[offset]": "x"})
    assert "pagination[offset]" in bad.json()["errors"]
    sort = await client.get("/api/v1/agent", params={"sorting": "payload"})
    assert "sorting" in sort.json()["errors"]


async def test_get_span(api: Api, client: httpx.AsyncClient) -> None:
    """GET agent_spans/{id} returns the span; an unknown id is 404."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    got = await client.get(f"/api/v1/agent_spans/{span['id']}")
    assert got.json()["details"] == span
    assert (await client.get("/api/v1/agent_spans/nope")).json()["code"] == "not_found"


async def test_account(client: httpx.AsyncClient) -> None:
    """GET account answers with the local account."""
    details = (await client.get("/api/v1/account")).json()["details"]
    assert details["type"] == "account"
    assert details["name"] == "local"
