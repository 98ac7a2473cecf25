"""Agent endpoints of wire spec 2.10: create, show, get, update, list, retire, reinstate, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_server.api._common import (
    CurrentAccount,
    body_doc,
    json_response,
    list_query,
    list_response,
    read_json,
    request_key,
    run_action,
    storage,
)
from prefactor_server.domain.resources import agent_resource
from prefactor_server.errors import ApiError, not_found
from prefactor_server.storage.base import LISTS, ReadSession

__all__ = ["router"]

router = APIRouter(prefix="/agent", tags=["agent"])

_KEY = {"type": "string", "minLength": 1, "maxLength": 64}
_DETAILS = {
    "name": {"type": "string"},
    "description": {"type": "string"},
    "owner_person_id": {"type": "string"},
    "risk_profile_id": {"type": "string"},
    "team_id": {"type": "string"},
}
_KEY_ONLY = body_doc({"idempotency_key": _KEY}, description="Optional; the SDK may send no body.")


async def _action(request: Request, account: Any, action: str, agent_id: str | None) -> Response:
    body = await read_json(request, allow_empty=agent_id is not None)
    key = request_key(request, body.get("idempotency_key"))
    fields = dict(body) if agent_id is None else {**body, "agent_id": agent_id}
    return await run_action(request, account, action, fields, key)


@router.post(
    "",
    status_code=201,
    summary="Create an agent",
    openapi_extra=body_doc(
        {
            "details": {
                "type": "object",
                "properties": {
                    **_DETAILS,
                    "external_identifier": {"type": "string"},
                    "id": {"type": "string"},
                },
                "required": ["name"],
            },
            "idempotency_key": _KEY,
        },
        ("details",),
    ),
)
async def create_agent(request: Request, account: CurrentAccount) -> Response:
    """Create an agent."""
    return await _action(request, account, "agents/create", None)


# Declared before /{agent_id} so "show" is never taken for an id (wire spec 2.0).
@router.get("/show", summary="Find an agent by agent_id or external_identifier")
async def show_agent(
    request: Request,
    account: CurrentAccount,
    agent_id: str | None = None,
    external_identifier: str | None = None,
    environment_id: str | None = None,
    include_counts: bool = False,
) -> Response:
    """Answer with one agent, with ``instance_counts`` when ``include_counts=true``."""
    if (agent_id is None) == (external_identifier is None):
        message = "give exactly one of agent_id and external_identifier"
        raise ApiError(422, "validation_error", message, {"agent_id": [message]})

    def load(session: ReadSession) -> dict[str, Any] | None:
        if agent_id is not None:
            record = session.get_agent(account.id, agent_id)
        else:
            assert external_identifier is not None  # checked above
            record = session.find_agent(account.id, external_identifier)
        if record is None:
            return None
        counts = (
            session.instance_counts(account.id, record["id"], environment_id)
            if include_counts
            else None
        )
        return agent_resource(record, counts)

    resource = await storage(request).read(load)
    if resource is None:
        raise not_found("Agent")
    return json_response({"status": "success", "details": resource})


@router.get("/{agent_id}", summary="Get an agent")
async def get_agent(request: Request, agent_id: str, account: CurrentAccount) -> Response:
    """Answer with one agent."""
    record = await storage(request).read(lambda session: session.get_agent(account.id, agent_id))
    if record is None:
        raise not_found("Agent")
    return json_response({"status": "success", "details": agent_resource(record)})


@router.put(
    "/{agent_id}",
    summary="Update an agent",
    openapi_extra=body_doc(
        {"details": {"type": "object", "properties": _DETAILS}, "idempotency_key": _KEY}
    ),
)
async def update_agent(request: Request, agent_id: str, account: CurrentAccount) -> Response:
    """Update an agent's editable fields."""
    return await _action(request, account, "agents/update", agent_id)


@router.get("", summary="List agents")
async def list_agents(
    request: Request,
    account: CurrentAccount,
    team_id: str | None = None,
    owner_person_id: str | None = None,
    risk_profile_id: str | None = None,
) -> Response:
    """Answer with a page of agents in the list envelope."""
    query = list_query(request, LISTS["agents"])
    page = await storage(request).read(lambda session: session.list_agents(account.id, query))
    return list_response(page, query, [agent_resource(row) for row in page.rows])


@router.post("/{agent_id}/retire", summary="Retire an agent", openapi_extra=_KEY_ONLY)
async def retire_agent(request: Request, agent_id: str, account: CurrentAccount) -> Response:
    """Retire an agent."""
    return await _action(request, account, "agents/retire", agent_id)


@router.post("/{agent_id}/reinstate", summary="Reinstate a retired agent", openapi_extra=_KEY_ONLY)
async def reinstate_agent(request: Request, agent_id: str, account: CurrentAccount) -> Response:
    """Reinstate an agent."""
    return await _action(request, account, "agents/reinstate", agent_id)


@router.delete("/{agent_id}", summary="Delete an agent", openapi_extra=_KEY_ONLY)
async def delete_agent(request: Request, agent_id: str, account: CurrentAccount) -> Response:
    """Delete an agent; answers with the deleted agent."""
    return await _action(request, account, "agents/delete", agent_id)
