"""PostgreSQL SQL for the viewer's reads (run list, compact span rows, search): a mixin.

The same semantics as the SQLite twin (:mod:`..sqlite.viewer_queries`), in PostgreSQL's
dialect: a run's duration is ``EXTRACT(EPOCH FROM …)`` of the text timestamps (a double,
so a page cursor round-trips through JSON exactly), text matching is ``ILIKE`` (SQLite's
LIKE is case-insensitive for ASCII; the LLM hints are one ``~*``), and payloads are
matched as the text of their jsonb (``payload::text``, which writes ``{"a": 1}`` with a
space after the colon). Indexes:
the run list by ``(account, COALESCE(started_at, inserted_at), id)`` and by agent or
status; a run's spans by ``(account, instance, id)``, by ``updated_at`` for the live
page's polls, and by status for the span-count sorts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString, cast

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import (
    RUN_SORTS,
    Record,
    RunPage,
    RunQuery,
    RunRow,
    SpanViewRow,
)

__all__ = ["PgViewerReads"]

_IN_CHUNK = 500


def _hint(column: LiteralString) -> LiteralString:
    # A span's params or result may hold LLM facts only if it mentions one of these; the
    # others are never decoded (see prefactor_server.traces.llm.HINTS). One
    # case-insensitive regular expression: the jsonb is rendered as text once, not once
    # per word (the rendering is most of the cost).
    return "(" + column + "::text ~* 'token|cost|model')"


_SPAN_COUNT: LiteralString = (
    "(SELECT count(*) FROM agent_spans s "
    "WHERE s.account_id = i.account_id AND s.agent_instance_id = i.id"
)
_SORT_KEYS: dict[str, LiteralString] = {
    "started": "COALESCE(i.started_at, i.inserted_at)",
    "duration": (
        "COALESCE(EXTRACT(EPOCH FROM (i.finished_at::timestamptz - i.started_at::timestamptz))"
        "::double precision, -1)"
    ),
    "spans": _SPAN_COUNT + ")",
    "errors": _SPAN_COUNT + " AND s.status = 'failed')",
}


def _cursor_key(sort: str, key: Any) -> Any:
    """The cursor's sort key in the column's type (a forged cursor is a ValueError)."""
    if sort == "started":
        if isinstance(key, str):
            return key
    elif isinstance(key, int | float) and not isinstance(key, bool):
        return float(key) if sort == "duration" else int(key)
    raise ValueError("after/before: not a valid page cursor")


class PgViewerReads:
    """The viewer's queries (part of the :class:`ReadSession` protocol)."""

    def _one(self, query: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def _all(self, query: LiteralString, params: Sequence[Any]) -> list[Record]:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def list_runs(self, account_id: str, query: RunQuery) -> RunPage[RunRow]:
        if query.sort not in RUN_SORTS:  # pragma: no cover - the route validates first
            raise ValueError(f"cannot sort runs by {query.sort}")
        filters, params = q.run_filters(q.POSTGRES, account_id, query)
        clause = q.pg(filters)
        counted = self._one("SELECT count(*) AS n FROM agent_instances i WHERE " + clause, params)
        total = int(counted["n"]) if counted is not None else 0
        key = _SORT_KEYS[query.sort]
        # Going back (``before``) walks the other way and flips the page afterwards.
        backwards = query.before is not None and query.after is None
        descending = query.descending != backwards
        op: LiteralString = "<" if descending else ">"
        direction: LiteralString = "DESC" if descending else "ASC"
        cursor = query.before if backwards else query.after
        keyset: LiteralString = ""
        keyset_params: list[Any] = []
        if cursor is not None:
            # Row comparison: one index range over (sort key, id), both in one direction.
            keyset = " AND (" + key + ", i.id) " + op + " (%s, %s)"
            keyset_params = [_cursor_key(query.sort, cursor[0]), cursor[1]]
        rows = self._all(
            "SELECT i.*, " + key + " AS sort_key FROM agent_instances i WHERE " + clause
            + keyset + " ORDER BY " + key + " " + direction + ", i.id " + direction + " LIMIT %s",
            [*params, *keyset_params, query.limit + 1],
        )  # fmt: skip
        more = len(rows) > query.limit
        records = cast(list[RunRow], rows[: query.limit])  # jsonb columns arrive decoded
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
        where: LiteralString = "account_id = %s AND agent_instance_id = %s"
        params: list[Any] = [account_id, instance_id]
        if after_id is not None:
            where += " AND id > %s"
            params.append(after_id)
        order: LiteralString = "id"
        if updated_since is not None:
            where += " AND updated_at >= %s"
            params.append(updated_since)
            order = "updated_at, id"  # so a page's last update time is a safe next cursor
        rows = self._all(
            "SELECT id, parent_span_id, schema_name, schema_title, status, summary, "
            "started_at, finished_at, updated_at, "
            "CASE WHEN " + _hint("payload") + " THEN payload END AS payload, "
            "CASE WHEN status IN ('failed', 'cancelled') OR " + _hint("result_payload")
            + " THEN result_payload END AS result_payload "
            "FROM agent_spans WHERE " + where + " ORDER BY " + order + " LIMIT %s",
            [*params, limit],
        )  # fmt: skip
        return cast(list[SpanViewRow], rows)

    def search_run_spans(
        self, account_id: str, instance_id: str, text: str, limit: int
    ) -> list[str]:
        statement, params = q.search_run_spans(q.POSTGRES, account_id, instance_id, text, limit)
        rows = self._all(q.pg(statement), params)
        return [str(row["id"]) for row in rows]

    def llm_payloads(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> list[tuple[str, Any, Any]]:
        found: list[tuple[str, Any, Any]] = []
        for start in range(0, len(instance_ids), _IN_CHUNK):
            chunk = list(instance_ids[start : start + _IN_CHUNK])
            # Each hint evaluated once per span (LATERAL), then used to filter and pick.
            rows = self._all(
                "SELECT s.agent_instance_id, CASE WHEN h.p THEN s.payload END AS payload, "
                "CASE WHEN h.r THEN s.result_payload END AS result FROM agent_spans s "
                "CROSS JOIN LATERAL (SELECT " + _hint("s.payload") + " AS p, "
                + _hint("s.result_payload") + " AS r) AS h "
                "WHERE s.account_id = %s AND s.agent_instance_id = ANY(%s) AND (h.p OR h.r)",
                [account_id, chunk],
            )  # fmt: skip
            found.extend(
                (str(row["agent_instance_id"]), row["payload"], row["result"]) for row in rows
            )
        return found
