"""The viewer's JSON reads, signed in by the viewer's cookie (not part of ``/api/v1``).

* ``GET /viewer/api/runs/{run}/tree?after=&limit=``: a page of the span tree as compact
  columns (:mod:`.tree_data`), gzip-compressed when the browser accepts it.
* ``GET /viewer/api/runs/{run}/spans/{span}``: one span in full, with its LLM facts and
  conversation.
* ``GET /viewer/api/runs/{run}/search?q=``: ids of spans whose text matches.
* ``GET /viewer/api/runs/{run}/changes?since=``: spans updated since a cursor (live runs).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_server.domain.resources import instance_resource, span_resource
from prefactor_server.storage.base import Account, InstanceRow, ReadSession, Storage
from prefactor_server.traces.llm import chat_messages, llm_facts
from prefactor_server.traces.tree import parse_time
from prefactor_server.viewer.auth import COOKIE, account_for
from prefactor_server.viewer.tree_data import CHUNK, TreeCache, build_tree_json, span_row

__all__ = ["build_api_router", "run_origin"]

_SEARCH_LIMIT = 2000
_TREE_PAGE = 100_000
_TREE_PAGE_MAX = 200_000
_QUERY_CHARS = 200


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(status_code: int, code: str, message: str) -> Response:
    return _json({"status": "error", "code": code, "message": message}, status_code)


def run_origin(instance: Mapping[str, Any]) -> Any:
    """The moment a run's times are measured from: its start, else its creation."""
    return parse_time(instance.get("started_at")) or parse_time(instance.get("inserted_at"))


def build_api_router() -> APIRouter:
    """The viewer's JSON routes (kept out of the OpenAPI document)."""
    router = APIRouter(prefix="/viewer/api", include_in_schema=False)

    def storage(request: Request) -> Storage:
        result: Storage = request.app.state.storage
        return result

    async def signed_in(request: Request) -> Account | None:
        return await account_for(request, request.cookies.get(COOKIE))

    async def run_of(request: Request, instance_id: str) -> tuple[Account, InstanceRow] | Response:
        account = await signed_in(request)
        if account is None:
            return _error(401, "unauthorized", "sign in to the viewer first")
        record = await storage(request).read(lambda s: s.get_instance(account.id, instance_id))
        if record is None:
            return _error(404, "not_found", f"no run with id {instance_id[:64]!r}")
        return account, record

    @router.get("/runs/{instance_id}/tree")
    async def tree(
        request: Request, instance_id: str, after: str | None = None, limit: int = _TREE_PAGE
    ) -> Response:
        found = await run_of(request, instance_id)
        if isinstance(found, Response):
            return found
        if not 1 <= limit <= _TREE_PAGE_MAX:
            return _error(422, "validation_error", f"limit: from 1 to {_TREE_PAGE_MAX}")
        account, record = found
        cache: TreeCache = request.app.state.viewer_trees
        counts = await storage(request).read(
            lambda s: s.span_counts(account.id, [instance_id])[instance_id]
        )
        validator = (sorted(counts.items()), record["status"], record["updated_at"])
        key = (account.id, instance_id, after or "", limit)
        packed = cache.get(key, validator)
        if packed is None:
            gate: asyncio.Semaphore = request.app.state.viewer_builds
            t0 = run_origin(record)
            packed = await build_tree_json(
                storage(request), gate, account.id, instance_id, t0, after=after, limit=limit
            )
            cache.put(key, validator, packed)
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type="application/json", headers=headers)
        raw = await asyncio.to_thread(gzip.decompress, packed)
        return Response(raw, media_type="application/json", headers=headers)

    @router.get("/runs/{instance_id}/spans/{span_id}")
    async def span(request: Request, instance_id: str, span_id: str) -> Response:
        found = await run_of(request, instance_id)
        if isinstance(found, Response):
            return found
        account, _ = found
        record = await storage(request).read(lambda s: s.get_span(account.id, span_id))
        if record is None or record["agent_instance_id"] != instance_id:
            return _error(404, "not_found", f"no span with id {span_id[:64]!r} in this run")
        resource = span_resource(record)
        params, result = resource["payload"], resource["result_payload"]
        return _json(
            {
                "span": resource,
                "llm": llm_facts(params, result).as_dict(),
                "messages": chat_messages(params, result),
            }
        )

    @router.get("/runs/{instance_id}/search")
    async def search(request: Request, instance_id: str, q: str = "") -> Response:
        found = await run_of(request, instance_id)
        if isinstance(found, Response):
            return found
        account, _ = found
        text = q.strip()
        if not text:
            return _error(422, "validation_error", "q: give some text to search for")
        if len(text) > _QUERY_CHARS:
            return _error(422, "validation_error", f"q: at most {_QUERY_CHARS} characters")
        async with request.app.state.viewer_builds:  # a scan: one viewer scan at a time
            ids = await storage(request).read(
                lambda s: s.search_run_spans(account.id, instance_id, text, _SEARCH_LIMIT + 1)
            )
        return _json({"ids": ids[:_SEARCH_LIMIT], "truncated": len(ids) > _SEARCH_LIMIT})

    @router.get("/runs/{instance_id}/changes")
    async def changes(request: Request, instance_id: str, since: str = "") -> Response:
        found = await run_of(request, instance_id)
        if isinstance(found, Response):
            return found
        account, record = found
        if parse_time(since) is None:
            return _error(422, "validation_error", "since: an ISO timestamp (the last cursor)")
        t0 = run_origin(record)

        def load(session: ReadSession) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
            rows = session.run_span_rows(
                account.id, instance_id, after_id=None, limit=CHUNK, updated_since=since
            )
            counts = session.span_counts(account.id, [instance_id])[instance_id]
            # ">= since" sends the spans of the cursor's own instant again: merging is
            # idempotent, and a span updated in that same instant is never missed.
            cursor = max([since, *(str(row["updated_at"]) for row in rows)])
            return [span_row(row, t0) for row in rows], cursor, counts

        rows, cursor, counts = await storage(request).read(load)
        return _json(
            {
                "run": instance_resource(record, counts),
                "spans": rows,
                "cursor": cursor,
                "more": len(rows) >= CHUNK,
            }
        )

    return router
