"""SQL for the PostgreSQL read sessions (shared by the write sessions of ``writes.py``).

A read session runs in one ``REPEATABLE READ, READ ONLY`` transaction, so a page and its
total agree. In a write session (the subclass) the state-machine reads ``get_instance``
and ``get_span`` lock their row (``FOR UPDATE``).

A span's ``orphaned`` flag is not stored: it is derived on read from whether its parent
exists in its instance, so two processes storing a parent and its child at the same
moment cannot leave a stale flag behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prefactor_server.storage.base import (
    INSTANCE_STATUSES,
    LISTS,
    SPAN_STATUSES,
    Account,
    ListQuery,
    Page,
    Record,
)
from prefactor_server.storage.postgres.auth_queries import PgAuthReads
from prefactor_server.storage.postgres.viewer_queries import PgViewerReads

__all__ = ["Conn", "PgReadSession"]

Conn = psycopg.Connection[Any]

# A span's orphaned flag, derived: it names a parent that its instance does not have.
_SPAN_SELECT = (
    "SELECT s.account_id, s.id, s.agent_instance_id, s.agent_id, s.parent_span_id, "
    "s.schema_name, s.schema_title, s.status, s.payload, s.result_payload, s.summary, "
    "s.started_at, s.finished_at, s.inserted_at, s.updated_at, "
    "(s.parent_span_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM agent_spans p "
    "WHERE p.account_id = s.account_id AND p.id = s.parent_span_id "
    "AND p.agent_instance_id = s.agent_instance_id)) AS orphaned FROM agent_spans s"
)

_account = Account.from_row


class PgReadSession(PgAuthReads, PgViewerReads):
    """Queries on one pooled connection (the :class:`ReadSession` protocol)."""

    # FOR UPDATE in a write session (set by the subclass), nothing in a read session.
    _lock_rows: LiteralString = ""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.cur = conn.cursor(row_factory=dict_row)

    def _one(self, query: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self.cur.execute(query, params).fetchone()
        return row

    def _all(self, query: LiteralString | sql.Composed, params: Sequence[Any]) -> list[Record]:
        return self.cur.execute(query, params).fetchall()

    def _one_composed(self, query: sql.Composed, params: Sequence[Any]) -> dict[str, Any] | None:
        rows = self._all(query, params)
        return rows[0] if rows else None

    def account_for_token(self, token_hash: str) -> Account | None:
        return _account(
            self._one(
                "SELECT a.* FROM tokens t JOIN accounts a ON a.id = t.account_id "
                "WHERE t.token_hash = %s AND t.revoked_at IS NULL",
                (token_hash,),
            )
        )

    def get_account(self, account_id: str) -> Account | None:
        return _account(self._one("SELECT * FROM accounts WHERE id = %s", (account_id,)))

    def first_account(self) -> Account | None:
        return _account(self._one("SELECT * FROM accounts ORDER BY inserted_at, id LIMIT 1", ()))

    def get_agent(self, account_id: str, agent_id: str) -> Record | None:
        return self._one(
            "SELECT * FROM agents WHERE account_id = %s AND id = %s AND deleted_at IS NULL",
            (account_id, agent_id),
        )

    def find_agent(self, account_id: str, external_identifier: str) -> Record | None:
        return self._one(
            "SELECT * FROM agents WHERE account_id = %s AND external_identifier = %s "
            "AND deleted_at IS NULL",
            (account_id, external_identifier),
        )

    def _page(
        self, table: str, account_id: str, query: ListQuery, extra_where: LiteralString = ""
    ) -> tuple[int, list[Record]]:
        columns = LISTS[table].columns
        where: list[sql.Composable] = [sql.SQL("t.account_id = %s")]
        params: list[Any] = [account_id]
        for column, value in query.filters.items():
            if column not in columns:  # pragma: no cover - the API layer whitelists first
                raise ValueError(f"cannot filter {table} by {column}")
            where.append(sql.SQL("{} = %s").format(sql.Identifier("t", column)))
            params.append(value)
        if extra_where:
            where.append(sql.SQL("t." + extra_where))
        if query.sort_field not in columns:  # pragma: no cover - the API layer whitelists first
            raise ValueError(f"cannot sort {table} by {query.sort_field}")
        clause = sql.SQL(" AND ").join(where)
        source = sql.SQL("{} t").format(sql.Identifier(table))
        count_row = self._one_composed(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE {}").format(source, clause), params
        )
        total = int(count_row["n"]) if count_row is not None else 0
        direction = sql.SQL("DESC" if query.descending else "ASC")
        keys = [query.sort_field] if query.sort_field == "id" else [query.sort_field, "id"]
        # Ties broken by the k-sortable id, so pages are stable.
        order = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier("t", key), direction) for key in keys
        )
        # A deferred join: the page's ids come from the (filter, sort, id) index alone, and
        # only those rows are read whole; an OFFSET deep into a large run skips index
        # entries, not payloads.
        rows = self._all(
            sql.SQL(
                "SELECT t.* FROM {source} JOIN (SELECT t.id FROM {source} WHERE {clause} "
                "ORDER BY {order} LIMIT %s OFFSET %s) AS page ON t.id = page.id "
                "WHERE t.account_id = %s ORDER BY {order}"
            ).format(source=source, clause=clause, order=order),
            [*params, query.limit, query.offset, account_id],
        )
        return total, rows

    def list_agents(self, account_id: str, query: ListQuery) -> Page:
        total, rows = self._page("agents", account_id, query, "deleted_at IS NULL")
        return Page(total, rows)

    def instance_counts(
        self, account_id: str, agent_id: str, environment_id: str | None
    ) -> dict[str, int]:
        params: list[Any] = [account_id, agent_id]
        env: LiteralString = ""
        if environment_id is not None:
            env = " AND environment_id = %s"
            params.append(environment_id)
        counts = dict.fromkeys(INSTANCE_STATUSES, 0)
        rows = self._all(
            "SELECT status, count(*) AS n FROM agent_instances "
            "WHERE account_id = %s AND agent_id = %s" + env + " GROUP BY status",
            params,
        )
        for row in rows:
            counts[row["status"]] = int(row["n"])
        return counts

    def get_environment(self, account_id: str, environment_id: str) -> Record | None:
        return self._one(
            "SELECT * FROM environments WHERE account_id = %s AND id = %s",
            (account_id, environment_id),
        )

    def get_schema_version(self, account_id: str, schema_version_id: str) -> Record | None:
        return self._one(
            "SELECT * FROM schema_versions WHERE account_id = %s AND id = %s",
            (account_id, schema_version_id),
        )

    def get_instance(self, account_id: str, instance_id: str) -> Record | None:
        return self._one(
            "SELECT * FROM agent_instances WHERE account_id = %s AND id = %s" + self._lock_rows,
            (account_id, instance_id),
        )

    def list_instances(self, account_id: str, query: ListQuery) -> Page:
        total, rows = self._page("agent_instances", account_id, query)
        return Page(total, rows)

    def span_counts(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        result = {instance_id: dict.fromkeys(SPAN_STATUSES, 0) for instance_id in instance_ids}
        if not instance_ids:
            return result
        # One index range per instance, read in status order: counted as it streams,
        # with no sort, whatever the planner's (possibly stale) row estimates.
        rows = self._all(
            "SELECT i.id AS agent_instance_id, c.status, c.n FROM unnest(%s::text[]) AS i(id) "
            "CROSS JOIN LATERAL (SELECT status, count(*) AS n FROM agent_spans "
            "WHERE account_id = %s AND agent_instance_id = i.id GROUP BY status) AS c",
            (list(dict.fromkeys(instance_ids)), account_id),
        )
        for row in rows:
            result[row["agent_instance_id"]][row["status"]] = int(row["n"])
        return result

    def get_span(self, account_id: str, span_id: str) -> Record | None:
        return self._one(
            _SPAN_SELECT + " WHERE s.account_id = %s AND s.id = %s" + self._lock_rows,
            (account_id, span_id),
        )

    def list_spans(self, account_id: str, query: ListQuery) -> Page:
        total, rows = self._page("agent_spans", account_id, query)
        # The orphaned flags of the page only (not of every row an OFFSET skips): one
        # primary-key probe per distinct parent.
        parents = list({row["parent_span_id"] for row in rows if row["parent_span_id"]})
        found: set[tuple[str, str]] = set()
        if parents:
            found = {
                (row["id"], row["agent_instance_id"])
                for row in self._all(
                    "SELECT id, agent_instance_id FROM agent_spans "
                    "WHERE account_id = %s AND id = ANY(%s)",
                    (account_id, parents),
                )
            }
        for row in rows:
            parent = row["parent_span_id"]
            row["orphaned"] = parent is not None and (parent, row["agent_instance_id"]) not in found
        return Page(total, rows)
