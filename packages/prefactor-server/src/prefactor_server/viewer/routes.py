"""The viewer's pages: login, logout, the run list and a run page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from prefactor_http.models.types import INSTANCE_STATUSES, OPEN_STATUSES
from prefactor_server.api._common import read_body
from prefactor_server.domain.resources import instance_resource
from prefactor_server.errors import ApiError, excerpt
from prefactor_server.storage.base import Account, ReadSession, Storage
from prefactor_server.traces.tree import duration_seconds, format_duration, parse_time
from prefactor_server.viewer.api import build_api_router
from prefactor_server.viewer.auth import (
    COOKIE,
    account_for,
    clear_cookie,
    cross_site,
    safe_next,
    set_cookie,
)
from prefactor_server.viewer.run_list import SORT_LABELS, RunList, RunListForm, load_run_list
from prefactor_server.viewer.tree_data import TreeCache

__all__ = ["mount_viewer", "not_found"]

_HERE = Path(__file__).parent
_STATUSES = INSTANCE_STATUSES
_LIVE = OPEN_STATUSES


def _when(value: object) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "–"


def _money(value: object) -> str:
    if not isinstance(value, int | float) or not value:
        return "–"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.001 else f"${value:.2g}"


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and value else "–"


def _server_url(request: Request) -> str:
    """This server's URL as the connection reached it (never the client's Host header)."""
    server = request.scope.get("server")
    if not server:
        return ""
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{host}" + ("" if port in (80, 443, None) else f":{port}")


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.globals["server_url"] = _server_url
    templates.env.filters["duration"] = format_duration
    templates.env.filters["money"] = _money
    templates.env.filters["count"] = _count
    return templates


_TEMPLATES = _templates()


def not_found(request: Request, what: str) -> Response:
    """The viewer's HTML 404 page."""
    return _TEMPLATES.TemplateResponse(
        request, "not_found.html", {"title": "Not found", "what": what}, status_code=404
    )


def _storage(request: Request) -> Storage:
    result: Storage = request.app.state.storage
    return result


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _cross_site_refused() -> Response:
    return PlainTextResponse("Refused: this form was posted from another site.", status_code=403)


def build_router(templates: Jinja2Templates) -> APIRouter:
    """The viewer's routes (kept out of the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)

    async def signed_in(request: Request) -> Account | None:
        try:
            return await account_for(request, request.cookies.get(COOKIE))
        except ApiError:
            return None  # the address is waiting after wrong tokens: sign in again later

    @router.get("/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        return templates.TemplateResponse(
            request, "login.html", {"next": safe_next(next), "error": None}
        )

    @router.post("/login")
    async def login(request: Request) -> Response:
        if cross_site(request):
            return _cross_site_refused()
        # A urlencoded form parsed by hand: no python-multipart dependency for one field.
        # Read with the API's size cap and time limit: the login form needs no token.
        form = parse_qs((await read_body(request)).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = safe_next((form.get("next") or ["/"])[0])
        try:
            account = await account_for(request, token)
        except ApiError as exc:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": target, "error": exc.message},
                status_code=exc.status_code,
                headers=exc.headers,
            )
        if account is None:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": target, "error": "That token is not valid (unknown or revoked)."},
                status_code=401,
            )
        response = RedirectResponse(target, status_code=303)
        set_cookie(response, request, token)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        if cross_site(request):
            return _cross_site_refused()
        response = RedirectResponse("/login", status_code=303)
        clear_cookie(response)
        return response

    @router.get("/")
    async def runs(request: Request) -> Response:
        account = await signed_in(request)
        if account is None:
            return _login_redirect(request)
        try:
            form = RunListForm.parse(request.query_params)
        except ValueError as exc:
            return templates.TemplateResponse(
                request, "not_found.html", {"title": "Bad request", "what": str(exc)}, 400
            )

        def load(session: ReadSession) -> RunList:
            return load_run_list(session, account.id, form)

        # The viewer's scans take turns (app.state.viewer_builds), so they never hold more
        # than one of the storage's readers and API requests always find one free.
        async with request.app.state.viewer_builds:
            listing = await _storage(request).read(load)
        return templates.TemplateResponse(
            request,
            "runs.html",
            {
                "form": form,
                "listing": listing,
                "statuses": _STATUSES,
                "sorts": SORT_LABELS,
                "refresh": listing.live and not (form.after or form.before),
            },
        )

    @router.get("/runs/{instance_id}")
    async def run(request: Request, instance_id: str) -> Response:
        account = await signed_in(request)
        if account is None:
            return _login_redirect(request)

        def load(session: ReadSession) -> tuple[dict[str, Any], str] | None:
            record = session.get_instance(account.id, instance_id)
            if record is None:
                return None
            counts = session.span_counts(account.id, [instance_id]).get(instance_id)
            agent = session.get_agent(account.id, record["agent_id"])
            name = str(agent.get("name") or agent["id"]) if agent else record["agent_id"]
            return instance_resource(record, counts), name

        loaded = await _storage(request).read(load)
        if loaded is None:
            return not_found(request, f"No run with id {excerpt(instance_id, 80)}.")
        instance, agent_name = loaded
        return templates.TemplateResponse(
            request,
            "run.html",
            {
                "instance": instance,
                "agent_name": agent_name,
                "duration": duration_seconds(instance["started_at"], instance["finished_at"]),
                "live": instance["status"] in _LIVE,
            },
        )

    return router


def mount_viewer(app: FastAPI) -> None:
    """Serve the viewer at ``/``, its JSON at ``/viewer/api`` and its assets at ``/static``."""
    app.state.viewer_builds = asyncio.Semaphore(1)  # one viewer scan (tree, search, list) at a time
    app.state.viewer_trees = TreeCache()  # built trees of unchanged runs, reused
    app.include_router(build_router(_TEMPLATES))
    app.include_router(build_api_router())
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="viewer-static")
