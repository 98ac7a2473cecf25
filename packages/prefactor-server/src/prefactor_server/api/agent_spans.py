"""Span endpoints: create, finish, get, list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_http.models.types import (
    ACTION_CREATE_SPAN,
    ACTION_FINISH_SPAN,
    FINISH_STATUSES,
    SPAN_STATUSES,
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
from prefactor_server.domain.resources import span_resource
from prefactor_server.errors import invalid, not_found
from prefactor_server.storage.base import LISTS

__all__ = ["router"]

router = APIRouter(prefix="/agent_spans", tags=["agent_spans"])

_KEY = {"type": "string", "minLength": 1, "maxLength": 64}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_SPAN_FIELDS = {
    "agent_instance_id": {"type": "string"},
    "schema_name": {"type": "string"},
    "status": {"enum": list(SPAN_STATUSES)},
    "payload": {"type": "object"},
    "result_payload": {"type": ["object", "null"]},
    "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "parent_span_id": {"type": "string"},
    "started_at": _TIMESTAMP,
    "finished_at": _TIMESTAMP,
    "idempotency_key": _KEY,
}


@router.post(
    "",
    status_code=201,
    summary="Create a span (fields wrapped in details)",
    openapi_extra=body_doc(
        {
            "details": {
                "type": "object",
                "properties": _SPAN_FIELDS,
                "required": ["agent_instance_id", "schema_name"],
            }
        },
        ("details",),
    ),
)
async def create_span(request: Request, account: CurrentAccount) -> Response:
    """Create a span; a terminated instance adds top-level ``control``."""
    body = await read_json(request)
    details = body.get("details", body)
    if not isinstance(details, dict):
        raise invalid("details", "must be an object")
    key = request_key(request, details.get("idempotency_key"))
    return await run_action(request, account, ACTION_CREATE_SPAN, details, key)


@router.post(
    "/{span_id}/finish",
    summary="Finish a span",
    openapi_extra=body_doc(
        {
            "status": {"enum": list(FINISH_STATUSES)},
            "result_payload": {"type": ["object", "null"]},
            "timestamp": _TIMESTAMP,
            "idempotency_key": _KEY,
        }
    ),
)
async def finish_span(request: Request, span_id: str, account: CurrentAccount) -> Response:
    """Finish a span; a terminated instance adds top-level ``control``."""
    body = await read_json(request, allow_empty=True)
    key = request_key(request, body.get("idempotency_key"))
    return await run_action(
        request, account, ACTION_FINISH_SPAN, {**body, "agent_span_id": span_id}, key
    )


@router.get("/{span_id}", summary="Get a span")
async def get_span(request: Request, span_id: str, account: CurrentAccount) -> Response:
    """Answer with one span."""
    record = await storage(request).read(lambda session: session.get_span(account.id, span_id))
    if record is None:
        raise not_found("Span")
    return json_response({"status": "success", "details": span_resource(record)})


@router.get("", summary="List spans (filters: agent_instance_id, agent_id, status, schema_name)")
async def list_spans(
    request: Request,
    account: CurrentAccount,
    agent_instance_id: str | None = None,
    agent_id: str | None = None,
    status: str | None = None,
    schema_name: str | None = None,
) -> Response:
    """Answer with a page of full span resources in the list envelope."""
    query = list_query(request, LISTS["agent_spans"])
    page = await storage(request).read(lambda session: session.list_spans(account.id, query))
    summaries: list[dict[str, Any]] = [span_resource(row) for row in page.rows]
    return list_response(page, query, summaries)
