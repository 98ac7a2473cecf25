"""``POST /api/v1/bulk``: many write actions in one request and one transaction.

The body is parsed once with orjson and items stay plain dicts (no per-item pydantic):
this is the ingestion hot path. Each item runs in a savepoint, so it is atomic on its own,
and the request commits once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_server import _time
from prefactor_server.api._common import (
    CurrentAccount,
    body_doc,
    json_response,
    read_json,
    settings,
    storage,
)
from prefactor_server.domain.actions import BULK_ACTIONS, BulkRun, run_bulk
from prefactor_server.domain.context import WriteContext
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import WriteSession

__all__ = ["router"]

router = APIRouter(tags=["bulk"])


def _request_error(errors: dict[str, list[str]]) -> ApiError:
    first = next(iter(errors))
    return ApiError(422, "validation_errors", f"{first}: {errors[first][0]}", errors)


def _preferences(request: Request) -> set[str]:
    """The client's ``Prefer`` preferences (RFC 7240), as ``name=value`` without quotes,
    blanks or parameters, lower-cased (any number of headers, comma-separated)."""
    return {
        preference.split(";", 1)[0].replace(" ", "").replace("\t", "").replace('"', "").lower()
        for header in request.headers.getlist("prefer")
        for preference in header.split(",")
    }


OMIT_SUCCESS = "omit=success"
"""Our own preference: an answer that lists only the outputs that are no plain success
(see ``bulk``)."""


def _check_items(body: dict[str, Any], max_items: int) -> list[dict[str, Any]]:
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise _request_error({"items": ["must be a non-empty list"]})
    if len(items) > max_items:
        raise ApiError(
            422,
            "too_many_items",
            f"items: at most {max_items} items per request, got {len(items)}",
            {"items": [f"must have at most {max_items} items"]},
        )
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _request_error({f"items.{index}": ["must be an object"]})
        key = item.get("idempotency_key")
        if not isinstance(key, str) or not 8 <= len(key) <= 64:
            raise _request_error(
                {f"items.{index}.idempotency_key": ["must be a string of 8 to 64 characters"]}
            )
        if key in seen:
            raise _request_error(
                {f"items.{index}.idempotency_key": ["must be unique within the request"]}
            )
        seen.add(key)
        if not isinstance(item.get("_type"), str):
            raise _request_error({f"items.{index}._type": ["is required"]})
    return items


@router.post(
    "/bulk",
    summary="Run many write actions; stops at the first failing item",
    openapi_extra=body_doc(
        {
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "_type": {"enum": list(BULK_ACTIONS)},
                        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 64},
                    },
                    "required": ["_type", "idempotency_key"],
                    "additionalProperties": True,
                },
            }
        },
        ("items",),
        "Each item carries the single endpoint's body fields, path parameters as fields.",
    ),
)
async def bulk(request: Request, account: CurrentAccount) -> Response:
    """Run the items in order; ``outputs`` is keyed by idempotency key.

    With ``Prefer: return=minimal`` each success output is ``{"status": "success", "id":
    ...}`` (plus ``control`` when present) and the answer carries ``Preference-Applied``.

    With ``Prefer: omit=success`` (ours; other servers ignore it) ``outputs`` lists only
    the items that did not succeed, the successes that carry a ``control`` and the
    replays of earlier requests' items; the answer says so with ``"omitted": "success"``
    and ``"processed": <n>``: the first ``n`` items ran (each a success unless listed),
    the others did not run (no output, as in the full form).
    """
    body = await read_json(request)
    items = _check_items(body, settings(request).bulk_max_items)
    schemas = request.app.state.schemas
    preferences = _preferences(request)
    minimal = "return=minimal" in preferences
    omit = OMIT_SUCCESS in preferences

    def job(session: WriteSession) -> BulkRun:
        # One clock reading per request, taken when the transaction runs: every item of
        # the request is written at the same instant.
        stamp = _time.now()
        ctx = WriteContext(account=account, schemas=schemas, clock=lambda: stamp)
        return run_bulk(session, ctx, items, minimal=minimal, omit_success=omit)

    run = await storage(request).write(job)
    answer: dict[str, Any] = {"status": "success", "outputs": run.outputs}
    if omit:
        answer["omitted"], answer["processed"] = "success", run.processed
    response = json_response(answer)
    applied = [name for name, on in (("return=minimal", minimal), (OMIT_SUCCESS, omit)) if on]
    if applied:
        response.headers["Preference-Applied"] = ", ".join(applied)
        response.headers["Vary"] = "Prefer"
    return response
