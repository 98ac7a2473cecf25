"""SQL for the viewer's reads (run list, compact span rows, search), mixed into the sessions.

Portable SQL except one expression: a run's duration in seconds (``julianday`` here; a
PostgreSQL backend writes ``EXTRACT(EPOCH FROM ...)``). Text matching uses ``LIKE`` with
an escape character; SQLite's LIKE is case-insensitive for ASCII (PostgreSQL: ``ILIKE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import RunPage, RunQuery, RunRow, RunWalk, SpanViewRow
from prefactor_server.storage.sqlite.decode import instance_row, loads, span_view_row

__all__ = ["ViewerReads"]

_IN_CHUNK = 500

# Model names, token counts and costs sit in either payload (OTel attributes are in the
# params): a span may hold LLM facts only if one of them mentions a hint.
_HINT = q.SQLITE.hint

_SPAN_COUNT = (
    "(SELECT count(*) FROM agent_spans s INDEXED BY agent_spans_instance "
    "WHERE s.account_id = i.account_id AND s.agent_instance_id = i.id{extra})"
)
_SORT_KEYS = {
    "started": "COALESCE(i.started_at, i.inserted_at)",
    "duration": "COALESCE((julianday(i.finished_at) - julianday(i.started_at)) * 86400.0, -1)",
    "spans": _SPAN_COUNT.format(extra=""),
    "errors": _SPAN_COUNT.format(extra=" AND s.status = 'failed'"),
}


class ViewerReads:
    """The viewer's queries (part of :class:`~prefactor_server.storage.base.ReadSession`)."""

    conn: sqlite3.Connection

    def list_runs(self, account_id: str, query: RunQuery) -> RunPage[RunRow]:
        walk = RunWalk.of(query)
        clause, params = q.run_filters(q.SQLITE, account_id, query)
        total = self.conn.execute(
            f"SELECT count(*) FROM agent_instances i WHERE {clause}", params
        ).fetchone()[0]
        key = _SORT_KEYS[query.sort]
        op, direction = walk.op, walk.direction
        outer = ""
        outer_params: list[Any] = []
        if walk.cursor is not None:
            outer = f"WHERE (sort_key {op} ? OR (sort_key = ? AND id {op} ?))"
            outer_params = [walk.cursor[0], walk.cursor[0], walk.cursor[1]]
        rows = self.conn.execute(
            f"SELECT * FROM (SELECT i.*, {key} AS sort_key FROM agent_instances i "
            f"WHERE {clause}) r {outer} ORDER BY sort_key {direction}, id {direction} LIMIT ?",
            [*params, *outer_params, query.limit + 1],
        ).fetchall()
        return walk.page(total, [cast(RunRow, instance_row(row)) for row in rows], query.limit)

    def run_span_rows(
        self,
        account_id: str,
        instance_id: str,
        *,
        after_id: str | None,
        limit: int,
        updated_since: str | None = None,
    ) -> list[SpanViewRow]:
        statement, params = q.run_span_rows(
            q.SQLITE, account_id, instance_id, after_id, limit, updated_since
        )
        return [span_view_row(row) for row in self.conn.execute(statement, params)]

    def search_run_spans(
        self, account_id: str, instance_id: str, text: str, limit: int
    ) -> list[str]:
        statement, params = q.search_run_spans(q.SQLITE, account_id, instance_id, text, limit)
        rows = self.conn.execute(statement, params)
        return [str(row[0]) for row in rows]

    def llm_payloads(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> list[tuple[str, Any, Any]]:
        found: list[tuple[str, Any, Any]] = []
        for start in range(0, len(instance_ids), _IN_CHUNK):
            chunk = list(instance_ids[start : start + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT agent_instance_id, "
                f"CASE WHEN {_HINT.format('payload')} THEN payload END, "
                f"CASE WHEN {_HINT.format('result_payload')} THEN result_payload END "
                "FROM agent_spans INDEXED BY agent_spans_instance "
                f"WHERE account_id = ? AND agent_instance_id IN ({marks}) AND "
                f"({_HINT.format('payload')} OR {_HINT.format('result_payload')})",
                [account_id, *chunk],
            )
            found.extend((str(i), loads(p), loads(r)) for i, p, r in rows)
        return found
