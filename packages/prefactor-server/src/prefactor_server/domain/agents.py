"""Agent operations of wire spec 2.10: create, update, retire, reinstate, delete.

An agent starts ``pending`` and becomes ``active`` with its first instance; retire makes it
``retired`` (reinstate undoes that); delete hides it for good (soft delete, answering the
deleted agent as the SDK's model expects).
"""

from __future__ import annotations

from typing import Any, cast

from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import (
    client_id,
    object_field,
    optional_str,
    required_str,
    shown,
)
from prefactor_server.domain.resources import agent_resource
from prefactor_server.errors import conflict, not_found
from prefactor_server.storage.base import AgentRow, Fields, IdTaken, WriteSession

__all__ = ["create", "delete", "reinstate", "retire", "update"]

Outcome = tuple[int, dict[str, Any]]

_EDITABLE = ("name", "description", "owner_person_id", "risk_profile_id", "team_id")


def _get(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> AgentRow:
    agent = session.get_agent(ctx.account.id, required_str(fields, "agent_id"))
    if agent is None:
        raise not_found("Agent")
    return agent


def _ok(record: AgentRow, status_code: int = 200) -> Outcome:
    return status_code, {"status": "success", "details": agent_resource(record)}


def create(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Create an agent from ``details`` (``name`` required)."""
    details = object_field(fields, "details")
    prefix = "details."
    external_identifier = optional_str(details, "external_identifier", prefix)
    if (
        external_identifier is not None
        and session.find_agent(ctx.account.id, external_identifier) is not None
    ):
        raise conflict(
            f"An agent with external_identifier {shown(external_identifier)} already exists"
        )
    now = ctx.clock()
    record: dict[str, Any] = {
        "account_id": ctx.account.id,
        "id": client_id(details, "id", prefix) or ctx.new_id(),
        "name": required_str(details, "name", prefix),
        "external_identifier": external_identifier,
        "status": "pending",
        "deleted_at": None,
        "inserted_at": now,
        "updated_at": now,
    }
    for name in _EDITABLE[1:]:
        record[name] = optional_str(details, name, prefix)
    try:
        session.insert_agent(cast(AgentRow, record))
    except IdTaken:
        raise conflict(f"Agent {record['id']} already exists") from None
    return _ok(cast(AgentRow, record), 201)


def update(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Change an agent's editable fields (``external_identifier`` is fixed at create)."""
    agent = _get(session, ctx, fields)
    details = object_field(fields, "details")
    changes: Fields = {}
    for name in _EDITABLE:
        if name in details:
            value = (
                required_str(details, name, "details.")
                if name == "name"
                else optional_str(details, name, "details.")
            )
            changes[name] = value
    changes["updated_at"] = ctx.clock()
    session.update_agent(ctx.account.id, agent["id"], changes)
    return _ok(cast(AgentRow, {**agent, **changes}))


def _set_status(session: WriteSession, ctx: WriteContext, agent: AgentRow, status: str) -> Outcome:
    changes = {"status": status, "updated_at": ctx.clock()}
    session.update_agent(ctx.account.id, agent["id"], changes)
    return _ok(cast(AgentRow, {**agent, **changes}))


def retire(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Retire an agent."""
    agent = _get(session, ctx, fields)
    if agent["status"] == "retired":
        raise conflict("Agent is already retired")
    return _set_status(session, ctx, agent, "retired")


def reinstate(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Reinstate a retired agent (``active`` when it has instances, else ``pending``)."""
    agent = _get(session, ctx, fields)
    if agent["status"] != "retired":
        raise conflict(f"Agent is {agent['status']}; only a retired agent can be reinstated")
    counts = session.instance_counts(ctx.account.id, agent["id"], None)
    return _set_status(session, ctx, agent, "active" if sum(counts.values()) else "pending")


def delete(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Delete an agent (its instances and spans stay readable)."""
    agent = _get(session, ctx, fields)
    now = ctx.clock()
    session.update_agent(ctx.account.id, agent["id"], {"deleted_at": now, "updated_at": now})
    return _ok({**agent, "updated_at": now})
