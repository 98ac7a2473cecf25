"""The viewer's pages: login, logout, the run list and a run page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from prefactor_server.api._common import read_body
from prefactor_server.domain.resources import instance_resource, span_resource
from prefactor_server.errors import ApiError, excerpt
from prefactor_server.storage.base import Account, ListQuery, ReadSession, Storage
from prefactor_server.traces.tree import (
    build_tree,
    duration_seconds,
    format_duration,
    parse_time,
    walk,
)
from prefactor_server.viewer.auth import (
    COOKIE,
    account_for,
    clear_cookie,
    cross_site,
    safe_next,
    set_cookie,
)
from prefactor_server.viewer.timeline import layout

__all__ = ["mount_viewer"]

_HERE = Path(__file__).parent
_STATUSES = ("pending", "active", "complete", "failed", "cancelled", "terminated")
_LIVE = ("pending", "active")
_PAGE = 500
_LIST_LIMIT = 100
REFRESH_SECONDS = 2


def _when(value: object) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "–"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.filters["duration"] = format_duration
    templates.env.filters["pretty"] = _pretty
    templates.env.globals["server_url"] = _server_url
    return templates


def _storage(request: Request) -> Storage:
    result: Storage = request.app.state.storage
    return result


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _cross_site_refused() -> Response:
    return PlainTextResponse("Refused: this form was posted from another site.", status_code=403)


def _server_url(request: Request) -> str:
    """This server's URL as the connection reached it (never the client's Host header)."""
    server = request.scope.get("server")
    if not server:
        return ""
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{host}" + ("" if port in (80, 443, None) else f":{port}")


def _agent_names(session: ReadSession, account_id: str) -> dict[str, str]:
    page = session.list_agents(account_id, ListQuery(limit=_PAGE))
    return {str(row["id"]): str(row.get("name") or row["id"]) for row in page.rows}


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
    async def runs(request: Request, agent: str = "", status: str = "") -> Response:
        account = await signed_in(request)
        if account is None:
            return _login_redirect(request)
        filters = {"agent_id": agent} if agent else {}
        if status in _STATUSES:
            filters["status"] = status

        def load(session: ReadSession) -> tuple[int, list[dict[str, Any]], dict[str, str]]:
            query = ListQuery(filters=filters, sort_field="id", descending=True, limit=_LIST_LIMIT)
            page = session.list_instances(account.id, query)
            counts = session.span_counts(account.id, [row["id"] for row in page.rows])
            rows = [instance_resource(row, counts.get(row["id"])) for row in page.rows]
            return page.total, rows, _agent_names(session, account.id)

        total, instances, agents = await _storage(request).read(load)
        for instance in instances:
            instance["duration"] = duration_seconds(instance["started_at"], instance["finished_at"])
            instance["agent_name"] = agents.get(instance["agent_id"], instance["agent_id"])
        live = any(instance["status"] in _LIVE for instance in instances)
        return templates.TemplateResponse(
            request,
            "runs.html",
            {
                "instances": instances,
                "total": total,
                "agents": agents,
                "statuses": _STATUSES,
                "agent": agent,
                "status": status,
                "refresh": REFRESH_SECONDS if live else None,
            },
        )

    @router.get("/runs/{instance_id}")
    async def run(request: Request, instance_id: str) -> Response:
        account = await signed_in(request)
        if account is None:
            return _login_redirect(request)

        def load(
            session: ReadSession,
        ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]] | None:
            record = session.get_instance(account.id, instance_id)
            if record is None:
                return None
            counts = session.span_counts(account.id, [instance_id]).get(instance_id)
            spans: list[dict[str, Any]] = []
            while True:
                query = ListQuery(
                    filters={"agent_instance_id": instance_id},
                    sort_field="id",
                    offset=len(spans),
                    limit=_PAGE,
                )
                page = session.list_spans(account.id, query)
                spans.extend(span_resource(row) for row in page.rows)
                if not page.rows or len(spans) >= page.total:
                    break
            return instance_resource(record, counts), spans, _agent_names(session, account.id)

        loaded = await _storage(request).read(load)
        if loaded is None:
            return templates.TemplateResponse(
                request,
                "not_found.html",
                {"what": f"No run with id {excerpt(instance_id, 80)}."},
                status_code=404,
            )
        instance, spans, agents = loaded
        nodes = list(walk(build_tree(spans)))
        timeline = layout(nodes, instance["started_at"])
        live = instance["status"] in _LIVE or any(node.status in _LIVE for node in nodes)
        return templates.TemplateResponse(
            request,
            "run.html",
            {
                "instance": instance,
                "agent_name": agents.get(instance["agent_id"], instance["agent_id"]),
                "duration": duration_seconds(instance["started_at"], instance["finished_at"]),
                "nodes": nodes,
                "timeline": timeline,
                "failed": [node for node in nodes if node.status == "failed"],
                "refresh": REFRESH_SECONDS if live else None,
            },
        )

    return router


def mount_viewer(app: FastAPI) -> None:
    """Serve the viewer at ``/`` and its assets at ``/static`` on ``app``."""
    app.include_router(build_router(_templates()))
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="viewer-static")
