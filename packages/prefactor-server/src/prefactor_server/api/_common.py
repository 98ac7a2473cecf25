"""Shared request plumbing: body reading with a size cap, auth, running actions, lists."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from prefactor_server._json import parse_json
from prefactor_server.api.otlp_journal import read_after_exports
from prefactor_server.domain.actions import Result, execute
from prefactor_server.domain.auth_guard import AuthGuard
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import idempotency_key, shown
from prefactor_server.domain.schemas import SchemaCache
from prefactor_server.errors import ApiError
from prefactor_server.settings import Settings
from prefactor_server.storage.base import Account, ListQuery, ListSpec, Page, Storage

__all__ = [
    "CurrentAccount",
    "JSONBytesResponse",
    "account_of",
    "body_doc",
    "envelope",
    "error_response",
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


def envelope(
    status_code: int, code: str, message: str, errors: dict[str, list[str]] | None = None
) -> Response:
    """The JSON error envelope; through ApiError, so framework errors are cut to short
    excerpts like our own."""
    body = ApiError(status_code, code, message, errors).body()
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def error_response(exc: ApiError) -> Response:
    """The answer of an :class:`ApiError` (its headers included)."""
    response = envelope(exc.status_code, exc.code, exc.message, exc.errors)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def storage(request: Request) -> Storage:
    """Return the app's storage."""
    result: Storage = request.app.state.storage
    return result


def settings(request: Request) -> Settings:
    """Return the app's settings."""
    result: Settings = request.app.state.settings
    return result


def client_address(request: Request) -> str:
    """The peer address a request came from (the key of the failed-token brake)."""
    return request.client.host if request.client is not None else "unknown"


async def current_account(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Account:
    """Authenticate the bearer token and return its account.

    Raises:
        ApiError: 401 ``unauthorized`` when the token is missing, malformed or unknown;
            429 ``rate_limited`` after too many wrong tokens from the client's address.
    """
    guard: AuthGuard = request.app.state.guard
    token = credentials.credentials if credentials is not None else None
    account = await guard.authenticate(token, client_address(request))
    await read_after_exports(request, account)
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]


async def account_of(request: Request) -> Account:
    """:func:`current_account` without FastAPI's dependency injection (the lean routes)."""
    return await current_account(request, await _bearer(request))


async def read_body(request: Request) -> bytes:
    """Read the body, refusing it with 413 as soon as it passes ``max_body_bytes``.

    Raises:
        ApiError: 413 when too large; 408 when the whole body has not arrived within
            ``body_timeout`` seconds (a body trickled in byte by byte would otherwise hold
            the connection and its memory open for as long as the client likes).
    """
    config = settings(request)
    limit = config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(config.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413, "payload_too_large", f"Request body is larger than {limit} bytes"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"The request body did not arrive within {config.body_timeout:g} seconds",
        ) from None
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    # No Content-Type at all is taken as JSON (a raw body from a script); a declared
    # form, text or other type is not (both SDKs always send application/json).
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """Parse the body as one JSON object.

    Args:
        request: The request.
        allow_empty: Treat an empty body as ``{}`` (retire/reinstate/delete send none).

    Raises:
        ApiError: 413 when too large, 408 when it trickles in, 415 when a body comes with
            a Content-Type other than JSON or with a Content-Encoding (the JSON API reads
            bodies as sent; only ``POST /v1/traces`` takes compressed ones), 400
            ``invalid_json`` when not JSON or not an object.
    """
    encoding = request.headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"content-encoding: the JSON API takes uncompressed bodies, got {shown(encoding)}",
            {"content-encoding": ["must be absent or identity"]},
        )
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "Request body is empty; expected a JSON object")
    content_type = request.headers.get("content-type")
    if not _is_json(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {shown(content_type)}",
        )
    # Integers outside 64 bits stay exact and are refused per item with a 422 naming the
    # field (``check_storable``), so a bulk request keeps its items before that one.
    body = parse_json(raw)
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


def list_query(request: Request, spec: ListSpec, *, default_sort: str = "id") -> ListQuery:
    """Parse ``spec``'s filters, ``pagination[offset]``/``pagination[page_size]`` (≤ 100)
    and sorting by one of ``spec``'s sortable columns (the declaration storage uses too).

    Sorting comes as ``sorting=-id`` (the SDK) or ``sorting[field]=id&sorting[direction]=desc``
    (the dashboard); both are accepted (wire spec 1.5).

    Raises:
        ApiError: 422 for a bad page, an unknown sort field or direction.
    """
    params = request.query_params
    # SQLite (and PostgreSQL) offsets are signed 64-bit integers.
    offset = _int(request, "pagination[offset]", 0, 0, 2**63 - 1)
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
    if field not in spec.sortable:
        message = f"must be one of {', '.join(spec.sortable)}"
        raise ApiError(422, "invalid_value", f"sorting: {message}", {"sorting": [message]})
    chosen = {name: params[name] for name in spec.filters if params.get(name)}
    return ListQuery(
        filters=chosen, sort_field=field, descending=descending, offset=offset, limit=limit
    )


def list_response(page: Page[Any], query: ListQuery, summaries: list[dict[str, Any]]) -> Response:
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
