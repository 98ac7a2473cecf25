"""Lean routes: the ingest hot path without FastAPI's routing and dependency injection.

FastAPI walks the included routers' routes, builds a request and solves the dependencies
of every request: about 75 µs before the endpoint runs, and then the answer passes through
the gzip middleware, which compresses a bulk answer of 500 outputs for about 1.4 ms when
the client accepts gzip (httpx, so our SDK, always does). :class:`LeanRoutes` sits outside
both (inside :class:`~prefactor_server.security_headers.SecurityHeaders` and the app's
catch-all) and runs the listed endpoints directly: the same functions the FastAPI routes
run (which stay, for the OpenAPI document), the same authentication, body caps and error
answers. Bulk answers are acknowledgements of the client's own items and are no longer
compressed. OTLP exports (``POST /v1/traces``) take the same path; their answers (at most
a 500-character message) were already too small for the gzip middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from prefactor_server.api import API_PREFIX, bulk, otlp
from prefactor_server.api._common import account_of, error_response
from prefactor_server.errors import ApiError

__all__ = ["ROUTES", "LeanRoutes"]

Endpoint = Callable[[Request], Awaitable[Response]]


async def _bulk(request: Request) -> Response:
    return await bulk.bulk(request, await account_of(request))


async def _otlp(request: Request) -> Response:
    return await otlp.export_traces(request, await account_of(request))


ROUTES: dict[tuple[str, str], Endpoint] = {
    ("POST", f"{API_PREFIX}/bulk"): _bulk,
    ("POST", otlp.PATH): _otlp,
}
"""(method, path) → the endpoint that answers it."""


class LeanRoutes:
    """ASGI middleware answering the requests of :data:`ROUTES` itself; every other
    request goes on to the app. An :class:`ApiError` answers as the app's handler answers
    it; any other exception propagates to the catch-all (500)."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Endpoint] = ROUTES) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):  # mounted under a prefix: as Starlette routes
                path = path[len(root) :]
            endpoint = self.routes.get((scope["method"], path))
            if endpoint is not None:
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except ApiError as exc:
                    response = error_response(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
