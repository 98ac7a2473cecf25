"""Shared request plumbing: body reading with a size cap, auth, running actions, lists."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from prefactor_server.domain.accounts import hash_token
from prefactor_server.domain.actions import Result, execute
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import idempotency_key
from prefactor_server.domain.schemas import SchemaCache
from prefactor_server.errors import ApiError
from prefactor_server.settings import Settings
from prefactor_server.storage.base import Account, ListQuery, Page, Storage

__all__ = [
    "CurrentAccount",
    "JSONBytesResponse",
    "body_doc",
    "json_response",
    "list_query",
    "list_response",
    "read_json",
    "run_action",
]

_bearer = HTTPBearer(auto_error=False, description="An API token of the account.")


class JSONBytesResponse(Response):
    """A JSON response whose body is already encoded (stored replays, orjson output)."""

    media_type = "application/json"


def json_response(body: Any, status_code: int = 200) -> Response:
    """Encode ``body`` with orjson."""
    return JSONBytesResponse(orjson.dumps(body), status_code=status_code)


def storage(request: Request) -> Storage:
    """Return the app's storage."""
    result: Storage = request.app.state.storage
    return result


def settings(request: Request) -> Settings:
    """Return the app's settings."""
    result: Settings = request.app.state.settings
    return result


async def current_account(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    """Authenticate the bearer token and return its account.

    Raises:
        ApiError: 401 ``unauthorized`` when the token is missing, malformed or unknown.
    """
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401, "unauthorized", "Missing bearer token: send 'Authorization: Bearer <token>'"
        )
    token_hash = hash_token(credentials.credentials)
    account = await storage(request).read(lambda session: session.account_for_token(token_hash))
    if account is None:
        raise ApiError(401, "unauthorized", "Invalid or revoked API token")
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


async def read_body(request: Request) -> bytes:
    """Read the body, refusing it with 413 as soon as it passes ``max_body_bytes``."""
    limit = settings(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """Parse the body as one JSON object.

    Args:
        request: The request.
        allow_empty: Treat an empty body as ``{}`` (retire/reinstate/delete send none).

    Raises:
        ApiError: 413 when too large, 400 ``invalid_json`` when not JSON or not an object.
    """
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "Request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "Request body must be a JSON object")
    return body


def request_key(request: Request, body_key: Any) -> str | None:
    """Return the idempotency key: the body field, else the ``Idempotency-Key`` header."""
    key = idempotency_key(body_key)
    if key is None:
        key = idempotency_key(request.headers.get("idempotency-key"), "Idempotency-Key")
    return key


async def run_action(
    request: Request, account: Account, action: str, fields: dict[str, Any], key: str | None
) -> Response:
    """Run a write action on the writer path and answer with its (possibly stored) result."""
    schemas: SchemaCache = request.app.state.schemas
    ctx = WriteContext(account=account, schemas=schemas)
    result: Result = await storage(request).write(
        lambda session: execute(session, ctx, action, fields, key)
    )
    return JSONBytesResponse(result.body, status_code=result.status_code)


def _int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalid_value", f"{name} must be an integer", {name: ["must be an integer"]}
        ) from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(
            422, "invalid_value", f"{name} must be {bounds}", {name: [f"must be {bounds}"]}
        )
    return value


def list_query(
    request: Request,
    *,
    filters: tuple[str, ...],
    sortable: tuple[str, ...],
    default_sort: str = "id",
) -> ListQuery:
    """Parse filters, ``pagination[offset]``/``pagination[page_size]`` (≤ 100) and sorting.

    Sorting comes as ``sorting=-id`` (the SDK) or ``sorting[field]=id&sorting[direction]=desc``
    (the dashboard); both are accepted (wire spec 1.5).

    Raises:
        ApiError: 422 for a bad page, an unknown sort field or direction.
    """
    params = request.query_params
    offset = _int(request, "pagination[offset]", 0, 0, None)
    limit = _int(request, "pagination[page_size]", 25, 1, 100)
    field = default_sort
    descending = False
    if params.get("sorting"):
        raw = params["sorting"]
        descending = raw.startswith("-")
        field = raw.lstrip("-+")
    elif params.get("sorting[field]"):
        field = params["sorting[field]"]
        direction = params.get("sorting[direction]", "asc").lower()
        if direction not in ("asc", "desc"):
            raise ApiError(
                422,
                "invalid_value",
                "sorting[direction] must be asc or desc",
                {"sorting[direction]": ["must be asc or desc"]},
            )
        descending = direction == "desc"
    if field not in sortable:
        message = f"must be one of {', '.join(sortable)}"
        raise ApiError(422, "invalid_value", f"sorting: {message}", {"sorting": [message]})
    chosen = {name: params[name] for name in filters if params.get(name)}
    return ListQuery(
        filters=chosen, sort_field=field, descending=descending, offset=offset, limit=limit
    )


def list_response(page: Page, query: ListQuery, summaries: list[dict[str, Any]]) -> Response:
    """Answer with the list envelope of wire spec 1.5 (all nine pagination keys)."""
    size = query.limit
    total = page.total
    count = len(summaries)
    next_offset = query.offset + count if query.offset + count < total else None
    previous = max(query.offset - size, 0) if query.offset > 0 else None
    body = {
        "status": "success",
        "summaries": summaries,
        "pagination": {
            "item_count": total,
            "item_start": query.offset + 1 if count else 0,
            "item_end": query.offset + count,
            "page_count": (total + size - 1) // size,
            "page_index": query.offset // size + 1,
            "page_offset": query.offset,
            "page_size": size,
            "next_page_offset": next_offset,
            "previous_page_offset": previous,
        },
        "sorting": {"field": query.sort_field, "direction": "desc" if query.descending else "asc"},
    }
    return json_response(body)


def body_doc(
    properties: dict[str, Any], required: tuple[str, ...] = (), description: str = ""
) -> dict[str, Any]:
    """Return ``openapi_extra`` documenting a JSON request body (bodies are parsed by hand)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {
        "requestBody": {
            "required": bool(required),
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }
