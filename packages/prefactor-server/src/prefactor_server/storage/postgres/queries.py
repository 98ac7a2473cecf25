"""SQL for the PostgreSQL read sessions (shared by the write sessions of ``writes.py``).

A read session runs in one ``REPEATABLE READ, READ ONLY`` transaction, so a page and its
total agree. In a write session (the subclass) the state-machine reads ``get_instance``
and ``get_span`` lock their row (``FOR UPDATE``).

A span's ``orphaned`` flag is not stored: it is derived on read from whether its parent
exists in its instance, so two processes storing a parent and its child at the same
moment cannot leave a stale flag behind.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import (
    INSTANCE_STATUSES,
    LISTS,
    SPAN_STATUSES,
    Account,
    AgentRow,
    EnvironmentRow,
    InstanceRow,
    ListQuery,
    Page,
    Record,
    SchemaVersionRow,
    SpanRow,
    is_orphan,
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

_ACCOUNT_FOR_TOKEN = q.pg(q.ACCOUNT_FOR_TOKEN)
_GET_ACCOUNT = q.pg(q.GET_ACCOUNT)
_FIRST_ACCOUNT = q.pg(q.FIRST_ACCOUNT)
_GET_AGENT = q.pg(q.GET_AGENT)
_FIND_AGENT = q.pg(q.FIND_AGENT)
_GET_ENVIRONMENT = q.pg(q.GET_ENVIRONMENT)
_GET_SCHEMA_VERSION = q.pg(q.GET_SCHEMA_VERSION)
_GET_INSTANCE = q.pg(q.GET_INSTANCE)
_GET_INSTANCES: LiteralString = (
    "SELECT * FROM agent_instances WHERE account_id = %s AND id = ANY(%s) ORDER BY id"
)


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

    def account_for_token(self, token_hash: str) -> Account | None:
        return _account(self._one(_ACCOUNT_FOR_TOKEN, (token_hash,)))

    def get_account(self, account_id: str) -> Account | None:
        return _account(self._one(_GET_ACCOUNT, (account_id,)))

    def first_account(self) -> Account | None:
        return _account(self._one(_FIRST_ACCOUNT, ()))

    def get_agent(self, account_id: str, agent_id: str) -> AgentRow | None:
        return cast(AgentRow | None, self._one(_GET_AGENT, (account_id, agent_id)))

    def find_agent(self, account_id: str, external_identifier: str) -> AgentRow | None:
        return cast(AgentRow | None, self._one(_FIND_AGENT, (account_id, external_identifier)))

    def _page(self, table: str, account_id: str, query: ListQuery) -> tuple[int, list[Record]]:
        spec = LISTS[table]
        clause, params = spec.where(account_id, query, "t.")
        count_row = self._one(q.pg(f"SELECT count(*) AS n FROM {table} t WHERE {clause}"), params)
        total = int(count_row["n"]) if count_row is not None else 0
        order = spec.order_by(query, "t.")
        # A deferred join: the page's ids come from the (filter, sort, id) index alone, and
        # only those rows are read whole; an OFFSET deep into a large run skips index
        # entries, not payloads.
        rows = self._all(
            q.pg(
                f"SELECT t.* FROM {table} t JOIN (SELECT t.id FROM {table} t WHERE {clause} "
                f"ORDER BY {order} LIMIT ? OFFSET ?) AS page ON t.id = page.id "
                f"WHERE t.account_id = ? ORDER BY {order}"
            ),
            [*params, query.limit, query.offset, account_id],
        )
        return total, rows

    def list_agents(self, account_id: str, query: ListQuery) -> Page[AgentRow]:
        total, rows = self._page("agents", account_id, query)
        return Page(total, cast(list[AgentRow], rows))

    def instance_counts(
        self, account_id: str, agent_id: str, environment_id: str | None
    ) -> dict[str, int]:
        statement, params = q.instance_counts(account_id, agent_id, environment_id)
        counts = dict.fromkeys(INSTANCE_STATUSES, 0)
        rows = self._all(q.pg(statement), params)
        for row in rows:
            counts[row["status"]] = int(row["n"])
        return counts

    def get_environment(self, account_id: str, environment_id: str) -> EnvironmentRow | None:
        return cast(
            EnvironmentRow | None, self._one(_GET_ENVIRONMENT, (account_id, environment_id))
        )

    def get_schema_version(
        self, account_id: str, schema_version_id: str
    ) -> SchemaVersionRow | None:
        return cast(
            SchemaVersionRow | None,
            self._one(_GET_SCHEMA_VERSION, (account_id, schema_version_id)),
        )

    def get_instance(self, account_id: str, instance_id: str) -> InstanceRow | None:
        return cast(
            InstanceRow | None,
            self._one(_GET_INSTANCE + self._lock_rows, (account_id, instance_id)),
        )

    def get_instances(
        self, account_id: str, instance_ids: Collection[str]
    ) -> dict[str, InstanceRow]:
        # In id order: two writers locking the same rows take them in the same order.
        rows = self._all(_GET_INSTANCES + self._lock_rows, (account_id, sorted(instance_ids)))
        return {row["id"]: cast(InstanceRow, row) for row in rows}

    def list_instances(self, account_id: str, query: ListQuery) -> Page[InstanceRow]:
        total, rows = self._page("agent_instances", account_id, query)
        return Page(total, cast(list[InstanceRow], rows))

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

    def get_span(self, account_id: str, span_id: str) -> SpanRow | None:
        return cast(
            SpanRow | None,
            self._one(
                _SPAN_SELECT + " WHERE s.account_id = %s AND s.id = %s" + self._lock_rows,
                (account_id, span_id),
            ),
        )

    def list_spans(self, account_id: str, query: ListQuery) -> Page[SpanRow]:
        total, rows = self._page("agent_spans", account_id, query)
        # The orphaned flags of the page only (not of every row an OFFSET skips): one
        # primary-key probe per distinct parent.
        parents = list({row["parent_span_id"] for row in rows if row["parent_span_id"]})
        found: dict[str, str] = {}
        if parents:
            found = {
                row["id"]: row["agent_instance_id"]
                for row in self._all(
                    "SELECT id, agent_instance_id FROM agent_spans "
                    "WHERE account_id = %s AND id = ANY(%s)",
                    (account_id, parents),
                )
            }
        for row in rows:
            row["orphaned"] = is_orphan(row["parent_span_id"], row["agent_instance_id"], found)
        return Page(total, cast(list[SpanRow], rows))
