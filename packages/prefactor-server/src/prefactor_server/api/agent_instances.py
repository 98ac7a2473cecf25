"""Agent instance endpoints: register, start, finish, record_quality, terminate, get, list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_http.models.types import (
    ACTION_FINISH_INSTANCE,
    ACTION_RECORD_QUALITY,
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
    FINISH_STATUSES,
    INSTANCE_STATUSES,
)
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
from prefactor_server.domain.resources import instance_resource
from prefactor_server.errors import not_found
from prefactor_server.storage.base import LISTS, ReadSession

__all__ = ["router"]

router = APIRouter(prefix="/agent_instance", tags=["agent_instance"])

_KEY = {"type": "string", "minLength": 1, "maxLength": 64}
_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
_STATUSES = INSTANCE_STATUSES


async def _action(
    request: Request, account: Any, action: str, path: dict[str, str], allow_empty: bool = False
) -> Response:
    body = await read_json(request, allow_empty=allow_empty)
    key = request_key(request, body.get("idempotency_key"))
    return await run_action(request, account, action, {**body, **path}, key)


@router.post(
    "/register",
    status_code=201,
    summary="Register an agent instance (pending)",
    openapi_extra=body_doc(
        {
            "agent_version": {"type": "object"},
            "agent_schema_version": {"type": "object"},
            "update_current_version": {"type": "boolean", "default": True},
            "agent_id": {"type": "string"},
            "environment_id": {"type": "string"},
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "purpose": {"enum": ["live", "smoke_test", "eval"]},
            "external_identifier": {"type": "string"},
            "idempotency_key": _KEY,
        },
        description=(
            "An unknown agent_id creates the agent; no agent_id uses the account's default agent."
        ),
    ),
)
async def register(request: Request, account: CurrentAccount) -> Response:
    """Register an agent instance."""
    return await _action(request, account, ACTION_REGISTER_INSTANCE, {})


@router.post(
    "/{instance_id}/start",
    summary="Start a pending instance",
    openapi_extra=body_doc({"timestamp": _TIMESTAMP, "idempotency_key": _KEY}),
)
async def start(request: Request, instance_id: str, account: CurrentAccount) -> Response:
    """Start an instance."""
    return await _action(
        request, account, ACTION_START_INSTANCE, {"agent_instance_id": instance_id}, True
    )


@router.post(
    "/{instance_id}/finish",
    summary="Finish a pending or active instance",
    openapi_extra=body_doc(
        {
            "status": {"enum": list(FINISH_STATUSES)},
            "timestamp": _TIMESTAMP,
            "idempotency_key": _KEY,
        }
    ),
)
async def finish(request: Request, instance_id: str, account: CurrentAccount) -> Response:
    """Finish an instance."""
    return await _action(
        request, account, ACTION_FINISH_INSTANCE, {"agent_instance_id": instance_id}, True
    )


@router.post(
    "/{instance_id}/record_quality",
    summary="Set or remove one named quality payload",
    openapi_extra=body_doc(
        {
            "name": {"type": "string"},
            "payload": {"type": ["object", "null"]},
            "idempotency_key": _KEY,
        },
        ("name",),
    ),
)
async def record_quality(request: Request, instance_id: str, account: CurrentAccount) -> Response:
    """Record quality for an instance."""
    return await _action(
        request, account, ACTION_RECORD_QUALITY, {"agent_instance_id": instance_id}
    )


@router.post(
    "/{instance_id}/terminate",
    summary="Terminate a pending or active instance",
    openapi_extra=body_doc({"reason": {"type": "string"}, "idempotency_key": _KEY}, ("reason",)),
)
async def terminate(request: Request, instance_id: str, account: CurrentAccount) -> Response:
    """Terminate an instance; later span traffic is answered with ``control.terminate``."""
    return await _action(
        request, account, "agent_instances/terminate", {"agent_instance_id": instance_id}
    )


@router.get("/{instance_id}", summary="Get an agent instance")
async def get_instance(request: Request, instance_id: str, account: CurrentAccount) -> Response:
    """Answer with one instance, including its span counts."""

    def load(session: ReadSession) -> dict[str, Any] | None:
        record = session.get_instance(account.id, instance_id)
        if record is None:
            return None
        return instance_resource(
            record, session.span_counts(account.id, [instance_id])[instance_id]
        )

    resource = await storage(request).read(load)
    if resource is None:
        raise not_found("Agent instance")
    return json_response({"status": "success", "details": resource})


@router.get("", summary="List agent instances (filters: agent_id, status)")
async def list_instances(
    request: Request,
    account: CurrentAccount,
    agent_id: str | None = None,
    status: str | None = None,
) -> Response:
    """Answer with a page of instances in the list envelope."""
    query = list_query(request, LISTS["agent_instances"])

    def load(session: ReadSession) -> tuple[Any, list[dict[str, Any]]]:
        page = session.list_instances(account.id, query)
        counts = session.span_counts(account.id, [row["id"] for row in page.rows])
        return page, [instance_resource(row, counts[row["id"]]) for row in page.rows]

    page, summaries = await storage(request).read(load)
    return list_response(page, query, summaries)
