"""SQL for the viewer's reads (run list, compact span rows, search), mixed into the sessions.

Portable SQL except one expression: a run's duration in seconds (``julianday`` here; a
PostgreSQL backend writes ``EXTRACT(EPOCH FROM ...)``). Text matching uses ``LIKE`` with
an escape character; SQLite's LIKE is case-insensitive for ASCII (PostgreSQL: ``ILIKE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import orjson

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import RUN_SORTS, RunPage, RunQuery, RunRow, SpanViewRow

__all__ = ["ViewerReads"]

_IN_CHUNK = 500

# A span's params or result may hold LLM facts only if it mentions one of these; the
# others are never parsed (see prefactor_server.traces.llm.HINTS). Model names, token
# counts and costs sit in either (OTel attributes are in the params).
_HINT = "({col} LIKE '%token%' OR {col} LIKE '%cost%' OR {col} LIKE '%model%')"

_SPAN_COUNT = (
    "(SELECT count(*) FROM agent_spans s INDEXED BY agent_spans_instance_status "
    "WHERE s.account_id = i.account_id AND s.agent_instance_id = i.id{extra})"
)
_SORT_KEYS = {
    "started": "COALESCE(i.started_at, i.inserted_at)",
    "duration": "COALESCE((julianday(i.finished_at) - julianday(i.started_at)) * 86400.0, -1)",
    "spans": _SPAN_COUNT.format(extra=""),
    "errors": _SPAN_COUNT.format(extra=" AND s.status = 'failed'"),
}


def _decode(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


class ViewerReads:
    """The viewer's queries (part of :class:`~prefactor_server.storage.base.ReadSession`)."""

    conn: sqlite3.Connection

    def list_runs(self, account_id: str, query: RunQuery) -> RunPage[RunRow]:
        if query.sort not in RUN_SORTS:  # pragma: no cover - the route validates first
            raise ValueError(f"cannot sort runs by {query.sort}")
        clause, params = q.run_filters(q.SQLITE, account_id, query)
        total = self.conn.execute(
            f"SELECT count(*) FROM agent_instances i WHERE {clause}", params
        ).fetchone()[0]
        key = _SORT_KEYS[query.sort]
        # Going back (``before``) walks the other way and flips the page afterwards.
        backwards = query.before is not None and query.after is None
        descending = query.descending != backwards
        op, direction = ("<", "DESC") if descending else (">", "ASC")
        cursor = query.before if backwards else query.after
        outer = ""
        outer_params: list[Any] = []
        if cursor is not None:
            outer = f"WHERE (sort_key {op} ? OR (sort_key = ? AND id {op} ?))"
            outer_params = [cursor[0], cursor[0], cursor[1]]
        rows = self.conn.execute(
            f"SELECT * FROM (SELECT i.*, {key} AS sort_key FROM agent_instances i "
            f"WHERE {clause}) r {outer} ORDER BY sort_key {direction}, id {direction} LIMIT ?",
            [*params, *outer_params, query.limit + 1],
        ).fetchall()
        more = len(rows) > query.limit
        records: list[RunRow] = []
        for row in rows[: query.limit]:
            record: dict[str, Any] = dict(row)
            record["quality_payloads"] = orjson.loads(record["quality_payloads"])
            record["quality_summaries"] = orjson.loads(record["quality_summaries"])
            records.append(cast(RunRow, record))
        if backwards:
            records.reverse()
            return RunPage(total, records, has_before=more, has_after=True)
        return RunPage(total, records, has_before=cursor is not None, has_after=more)

    def run_span_rows(
        self,
        account_id: str,
        instance_id: str,
        *,
        after_id: str | None,
        limit: int,
        updated_since: str | None = None,
    ) -> list[SpanViewRow]:
        where = "account_id = ? AND agent_instance_id = ?"
        params: list[Any] = [account_id, instance_id]
        if after_id is not None:
            where += " AND id > ?"
            params.append(after_id)
        order = "id"
        if updated_since is not None:
            where += " AND updated_at >= ?"
            params.append(updated_since)
            order = "updated_at, id"  # so a page's last update time is a safe next cursor
        rows = self.conn.execute(
            "SELECT id, parent_span_id, schema_name, schema_title, status, summary, "
            "started_at, finished_at, updated_at, "
            f"CASE WHEN {_HINT.format(col='payload')} THEN payload END AS payload, "
            "CASE WHEN status IN ('failed', 'cancelled') OR "
            f"{_HINT.format(col='result_payload')} "
            "THEN result_payload END AS result_payload "
            f"FROM agent_spans INDEXED BY agent_spans_instance WHERE {where} "
            f"ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        records: list[SpanViewRow] = []
        for row in rows:
            record: dict[str, Any] = dict(row)
            record["payload"] = _decode(record["payload"])
            record["result_payload"] = _decode(record["result_payload"])
            records.append(cast(SpanViewRow, record))
        return records

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
                f"CASE WHEN {_HINT.format(col='payload')} THEN payload END, "
                f"CASE WHEN {_HINT.format(col='result_payload')} THEN result_payload END "
                "FROM agent_spans INDEXED BY agent_spans_instance "
                f"WHERE account_id = ? AND agent_instance_id IN ({marks}) AND "
                f"({_HINT.format(col='payload')} OR {_HINT.format(col='result_payload')})",
                [account_id, *chunk],
            )
            found.extend((str(i), _decode(p), _decode(r)) for i, p, r in rows)
        return found
