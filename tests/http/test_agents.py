"""Tests for ``client.agents``: the eight agent calls (spec 2.10)."""

from __future__ import annotations

import pytest

from prefactor_http import PrefactorResponseContractError
from prefactor_http.models import Agent, AgentForCreate, AgentForUpdate, AgentSummary

PAGE = {
    "status": "success",
    "summaries": [
        {"type": "agent", "id": "agt_0002", "name": "Research Analyst", "status": "active"}
    ],
    "pagination": {
        "item_count": 2,
        "item_start": 1,
        "item_end": 1,
        "page_count": 2,
        "page_index": 1,
        "page_offset": 0,
        "page_size": 1,
        "next_page_offset": 1,
        "previous_page_offset": None,
    },
    "sorting": {"field": "id", "direction": "desc"},
}


async def test_create_puts_key_beside_details(client, api, agent_details) -> None:
    """Create sends ``{details, idempotency_key}`` with nulls dropped and parses the agent."""
    api.success(agent_details)
    agent = await client.agents.create(
        AgentForCreate(name="Support Concierge", external_identifier="support"),
        idempotency_key="agent-create-0001",
    )
    assert (api.last.method, api.last.url.path) == ("POST", "/api/v1/agent")
    assert api.body() == {
        "details": {"name": "Support Concierge", "external_identifier": "support"},
        "idempotency_key": "agent-create-0001",
    }
    assert isinstance(agent, Agent)
    assert agent.status == "pending"
    assert agent.available_actions is not None
    assert agent.available_actions.delete


async def test_get_fetches_by_id(client, api, agent_details) -> None:
    """Get sends ``GET /api/v1/agent/{id}`` without a body."""
    api.success(agent_details)
    agent = await client.agents.get("agt_0001")
    assert (api.last.method, api.last.url.path, api.last.content) == (
        "GET",
        "/api/v1/agent/agt_0001",
        b"",
    )
    assert agent.name == "Support Concierge"


async def test_update_puts_details_without_nulls(client, api, agent_details) -> None:
    """Update sends ``PUT`` with only the given fields."""
    api.success(agent_details)
    await client.agents.update("agt_0001", AgentForUpdate(description="v2"))
    assert (api.last.method, api.last.url.path) == ("PUT", "/api/v1/agent/agt_0001")
    assert api.body() == {"details": {"description": "v2"}}


async def test_list_sends_pagination_and_sorting_and_returns_summaries(client, api) -> None:
    """list_agents sends the bracketed query keys and returns the summaries."""
    api.reply(200, PAGE)
    summaries = await client.agents.list_agents(sorting="-id", offset=0, page_size=1, team_id="t1")
    assert api.last.url.path == "/api/v1/agent"
    assert dict(api.last.url.params) == {
        "team_id": "t1",
        "sorting": "-id",
        "pagination[offset]": "0",
        "pagination[page_size]": "1",
    }
    assert [type(s) for s in summaries] == [AgentSummary]
    assert summaries[0].id == "agt_0002"


async def test_list_without_filters_sends_no_query(client, api) -> None:
    """Without arguments the list request has no query string."""
    api.reply(200, {**PAGE, "pagination": None, "sorting": None})
    await client.agents.list_agents(risk_profile_id="r", owner_person_id="p")
    assert dict(api.last.url.params) == {"risk_profile_id": "r", "owner_person_id": "p"}
    api.reply(200, {**PAGE, "pagination": None, "sorting": None})
    await client.agents.list_agents()
    assert api.last.url.query == b""


async def test_list_requires_pagination_and_sorting_keys(client, api) -> None:
    """A list envelope without the pagination key is a contract error (1.5)."""
    api.reply(200, {"status": "success", "summaries": [], "sorting": None})
    with pytest.raises(PrefactorResponseContractError, match="pagination"):
        await client.agents.list_agents()


async def test_show_by_external_identifier_with_counts(client, api, agent_details) -> None:
    """Show sends the lookup key and ``include_counts=true`` and parses the counts."""
    agent_details["instance_counts"] = {"total": 12, "active": 1, "complete": 9, "finished": 11}
    api.success(agent_details)
    agent = await client.agents.show(
        external_identifier="support", environment_id="env_1", include_counts=True
    )
    assert api.last.url.path == "/api/v1/agent/show"
    assert dict(api.last.url.params) == {
        "external_identifier": "support",
        "environment_id": "env_1",
        "include_counts": "true",
    }
    assert agent.instance_counts is not None
    assert agent.instance_counts.total == 12


async def test_show_by_id_with_risk_rollup(client, api, agent_details) -> None:
    """Show by id sends ``include_risk_rollup=true`` when asked."""
    api.success(agent_details)
    await client.agents.show(agent_id="agt_0001", include_risk_rollup=True)
    assert dict(api.last.url.params) == {"agent_id": "agt_0001", "include_risk_rollup": "true"}


@pytest.mark.parametrize(
    ("method", "http_method", "suffix"),
    [("retire", "POST", "/retire"), ("reinstate", "POST", "/reinstate"), ("delete", "DELETE", "")],
)
async def test_lifecycle_calls_send_key_or_no_body(
    client, api, agent_details, method: str, http_method: str, suffix: str
) -> None:
    """retire/reinstate/delete send ``{idempotency_key}`` or no body at all."""
    api.success(agent_details)
    api.success(agent_details)
    call = getattr(client.agents, method)
    await call("agt_0001", idempotency_key="lifecycle-0001")
    assert (api.last.method, api.last.url.path) == (http_method, f"/api/v1/agent/agt_0001{suffix}")
    assert api.body() == {"idempotency_key": "lifecycle-0001"}
    await call("agt_0001")
    assert api.last.content == b""


async def test_agent_type_must_be_agent(client, api, agent_details) -> None:
    """An agent whose ``type`` is not ``"agent"`` is a contract error."""
    agent_details["type"] = "assistant"
    api.success(agent_details)
    with pytest.raises(PrefactorResponseContractError):
        await client.agents.get("agt_0001")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.agents.show(), "exactly one"),
        (lambda c: c.agents.show(agent_id="a", external_identifier="b"), "exactly one"),
        (lambda c: c.agents.list_agents(page_size=0), "page_size"),
        (lambda c: c.agents.list_agents(page_size=101), "page_size"),
        (lambda c: c.agents.list_agents(offset=-1), "offset"),
        (lambda c: c.agents.get(""), "agent_id"),
        (lambda c: c.agents.retire("agt_1", idempotency_key="k" * 65), "64"),
        (lambda c: c.agents.create(AgentForCreate(name="n"), idempotency_key="k" * 65), "64"),
        (lambda c: c.agents.update("agt_1", AgentForUpdate(), idempotency_key=""), "empty"),
    ],
)
async def test_bad_arguments_raise_before_sending(client, api, call, message: str) -> None:
    """Bad lookups, pagination, ids and keys raise ValueError and send nothing."""
    with pytest.raises(ValueError, match=message):
        await call(client)
    assert api.requests == []
