"""The ASGI app factory.

``create_app(settings)`` opens the storage right away (not in a lifespan handler):
``httpx.ASGITransport`` runs no lifespan events, and tests and the SDK's test suite drive
the app through it. The lifespan only closes what the factory opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prefactor_server._version import __version__
from prefactor_server.api import build_router, otlp
from prefactor_server.api._common import envelope as _envelope
from prefactor_server.api._common import error_response
from prefactor_server.api.lean import LeanRoutes
from prefactor_server.api.otlp_journal import Applier, PendingSpans, replay
from prefactor_server.domain.accounts import Bootstrap, bootstrap_local_account
from prefactor_server.domain.auth_guard import AuthGuard
from prefactor_server.domain.schemas import SchemaCache
from prefactor_server.errors import ApiError
from prefactor_server.security_headers import SecurityHeaders
from prefactor_server.settings import Settings
from prefactor_server.storage.base import Storage
from prefactor_server.storage.open import open_storage
from prefactor_server.viewer import mount_viewer
from prefactor_server.viewer.routes import not_found as viewer_not_found

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


def _wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API): it gets the viewer's HTML 404."""
    path = request.url.path
    accept = request.headers.get("accept", "")
    return not path.startswith(("/api/", "/viewer/api/")) and "text/html" in accept


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    if exc.status_code == 404 and _wants_page(request):
        return viewer_not_found(request, f"There is no page at {request.url.path[:200]}.")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route for {request.method} {request.url.path}"
    response = _envelope(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        location = [
            str(part)
            for part in error.get("loc", ())
            if part not in ("body", "query", "path", "header")
        ]
        errors.setdefault(".".join(location) or "request", []).append(
            str(error.get("msg", "invalid"))
        )
    first = next(iter(errors), "request")
    return _envelope(
        422, "validation_error", f"{first}: {errors.get(first, ['invalid'])[0]}", errors
    )


class _CatchAll:
    """Turn any exception that escaped the routes into a 500 JSON envelope.

    Starlette's own server-error handler re-raises after answering (and answers HTML
    without a handler), so this sits inside it and never lets an exception through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            response = _envelope(500, "internal_error", "Internal server error")
            await response(scope, receive, send)


def create_app(settings: Settings, *, storage: Storage | None = None) -> FastAPI:
    """Build the API app on ``settings``.

    Args:
        settings: The server settings.
        storage: A storage to use instead of opening the settings' database (the app then
            does not close it).

    Returns:
        The FastAPI app; ``app.state`` holds ``settings``, ``storage``, ``bootstrap``.
    """
    owned = storage is None
    store: Storage = open_storage(settings) if storage is None else storage
    try:
        bootstrap: Bootstrap = store.write_sync(
            lambda session: bootstrap_local_account(session, settings.api_token)
        )
    except BaseException:
        if owned:  # e.g. a revoked PREFACTOR_API_TOKEN: no threads or pool left behind
            store.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        journal: Applier | None = getattr(app.state, "otlp_journal", None)
        if journal is not None:  # answered exports stored before the storage closes
            await journal.caught_up()
        if owned:
            store.close()

    with _BUILDING:
        app = _build(settings, store, bootstrap, lifespan)
    if getattr(store, "keeps_otlp_journal", False):
        # Exports answered before the last stop but not stored then: stored before the
        # first request (storing twice stores nothing twice).
        replayed = replay(store, app.state.schemas)
        if replayed:
            logger.info("stored %d OTLP export(s) left in the journal", replayed)
    return app


# FastAPI (through pydantic) completes its models' schemas lazily, and not thread-safely:
# two apps built at once in two threads of one process (tests, embedders) could see a
# half-built schema. Building is quick, so apps are built one at a time; opening the
# storage and the bootstrap before it still run side by side.
_BUILDING = threading.Lock()


def _build(
    settings: Settings,
    store: Storage,
    bootstrap: Bootstrap,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """The app's routes, handlers and middleware on an opened storage."""
    app = FastAPI(
        title="Prefactor local API",
        version=__version__,
        description="A local, Prefactor-compatible API server on SQLite or PostgreSQL.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.storage = store
    app.state.bootstrap = bootstrap
    app.state.schemas = SchemaCache()
    app.state.guard = AuthGuard(store)
    pending = app.state.otlp_pending = PendingSpans()
    if getattr(store, "keeps_otlp_journal", False):
        # (Reads wait for it once authenticated: otlp_journal.read_after_exports.)
        app.state.otlp_journal = Applier(store, app.state.schemas, pending)
    app.include_router(build_router())
    app.include_router(otlp.router)  # POST /v1/traces, the OTLP/HTTP default path
    mount_viewer(app)  # the web viewer at / (the API stays under /api/v1)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Compressed answers (the viewer's pages and JSON); a body already gzipped (a run's
    # tree, compressed off the event loop) passes through untouched.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(LeanRoutes)  # the ingest hot path, past FastAPI's routing and gzip
    app.add_middleware(_CatchAll)
    app.add_middleware(SecurityHeaders)  # outermost: the 500 envelope gets the headers too
    return app
