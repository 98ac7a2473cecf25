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
from prefactor_server.storage.base import Record, RunPage, RunQuery, RunRow, RunWalk, SpanViewRow

__all__ = ["PgViewerReads"]

_IN_CHUNK = 500


def _hint(column: LiteralString) -> LiteralString:
    # A span's params or result may hold LLM facts only if it mentions a hint (the
    # others are never decoded).
    return q.pg(q.POSTGRES.hint.format(column))


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


class PgViewerReads:
    """The viewer's queries (part of the :class:`ReadSession` protocol)."""

    def _one(self, query: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def _all(self, query: LiteralString, params: Sequence[Any]) -> list[Record]:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def list_runs(self, account_id: str, query: RunQuery) -> RunPage[RunRow]:
        walk = RunWalk.of(query)
        filters, params = q.run_filters(q.POSTGRES, account_id, query)
        clause = q.pg(filters)
        counted = self._one("SELECT count(*) AS n FROM agent_instances i WHERE " + clause, params)
        total = int(counted["n"]) if counted is not None else 0
        key = _SORT_KEYS[query.sort]
        direction = q.pg(walk.direction)
        keyset: LiteralString = ""
        keyset_params: list[Any] = []
        if walk.cursor is not None:
            # Row comparison: one index range over (sort key, id), both in one direction.
            keyset = " AND (" + key + ", i.id) " + q.pg(walk.op) + " (%s, %s)"
            keyset_params = list(walk.cursor)
        rows = self._all(
            "SELECT i.*, " + key + " AS sort_key FROM agent_instances i WHERE " + clause
            + keyset + " ORDER BY " + key + " " + direction + ", i.id " + direction + " LIMIT %s",
            [*params, *keyset_params, query.limit + 1],
        )  # fmt: skip
        return walk.page(total, cast(list[RunRow], rows), query.limit)  # jsonb arrives decoded

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
            q.POSTGRES, account_id, instance_id, after_id, limit, updated_since
        )
        return cast(list[SpanViewRow], self._all(q.pg(statement), params))

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
