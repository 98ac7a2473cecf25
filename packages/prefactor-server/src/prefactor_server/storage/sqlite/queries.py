"""SQL for the SQLite sessions' reads (the write session, ``writes.py``, reads through
them too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import orjson

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
    SchemaVersionRow,
    SpanRow,
)
from prefactor_server.storage.sqlite.auth_queries import AuthReads
from prefactor_server.storage.sqlite.decode import instance_row, span_row
from prefactor_server.storage.sqlite.viewer_queries import ViewerReads

__all__ = ["SqliteReadSession"]

# Filter column → the (account_id, column, id) index that serves it. Named explicitly with
# INDEXED BY because, without ANALYZE statistics, SQLite prefers the primary key for
# "ORDER BY id" and scans every row of the account.
_FILTER_INDEXES = {
    "agent_instances": {"agent_id": "agent_instances_agent", "status": "agent_instances_status"},
    # Spans are indexed by instance only (migration 0005): the other filters walk the
    # account's spans by primary key, which serves "ORDER BY id".
    "agent_spans": {"agent_instance_id": "agent_spans_instance"},
}


_account = Account.from_row
_COUNTS_BY_STATUS = ", ".join(f"sum(status = '{status}')" for status in SPAN_STATUSES)


class SqliteReadSession(AuthReads, ViewerReads):
    """Queries on one SQLite connection (the :class:`ReadSession` protocol)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def account_for_token(self, token_hash: str) -> Account | None:
        return _account(self._one(q.ACCOUNT_FOR_TOKEN, (token_hash,)))

    def get_account(self, account_id: str) -> Account | None:
        return _account(self._one(q.GET_ACCOUNT, (account_id,)))

    def first_account(self) -> Account | None:
        return _account(self._one(q.FIRST_ACCOUNT, ()))

    def get_agent(self, account_id: str, agent_id: str) -> AgentRow | None:
        row = self._one(q.GET_AGENT, (account_id, agent_id))
        return None if row is None else cast(AgentRow, dict(row))

    def find_agent(self, account_id: str, external_identifier: str) -> AgentRow | None:
        row = self._one(q.FIND_AGENT, (account_id, external_identifier))
        return None if row is None else cast(AgentRow, dict(row))

    def _page(self, table: str, account_id: str, query: ListQuery) -> tuple[int, list[sqlite3.Row]]:
        spec = LISTS[table]
        clause, params = spec.where(account_id, query)
        source = table
        indexes = _FILTER_INDEXES.get(table, {})
        for column in query.filters:
            if column in indexes:
                source = f"{table} INDEXED BY {indexes[column]}"
                break
        total = self.conn.execute(
            f"SELECT count(*) FROM {source} WHERE {clause}", params
        ).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT * FROM {source} WHERE {clause} ORDER BY {spec.order_by(query)} "
            "LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        ).fetchall()
        return total, rows

    def list_agents(self, account_id: str, query: ListQuery) -> Page[AgentRow]:
        total, rows = self._page("agents", account_id, query)
        return Page(total, [cast(AgentRow, dict(row)) for row in rows])

    def instance_counts(
        self, account_id: str, agent_id: str, environment_id: str | None
    ) -> dict[str, int]:
        statement, params = q.instance_counts(account_id, agent_id, environment_id)
        counts = dict.fromkeys(INSTANCE_STATUSES, 0)
        for status, count in self.conn.execute(statement, params):
            counts[status] = count
        return counts

    def get_environment(self, account_id: str, environment_id: str) -> EnvironmentRow | None:
        row = self._one(q.GET_ENVIRONMENT, (account_id, environment_id))
        return None if row is None else cast(EnvironmentRow, dict(row))

    def get_schema_version(
        self, account_id: str, schema_version_id: str
    ) -> SchemaVersionRow | None:
        row = self._one(q.GET_SCHEMA_VERSION, (account_id, schema_version_id))
        if row is None:
            return None
        record: dict[str, Any] = dict(row)
        record["body"] = orjson.loads(record["body"])
        return cast(SchemaVersionRow, record)

    def get_instance(self, account_id: str, instance_id: str) -> InstanceRow | None:
        row = self._one(q.GET_INSTANCE, (account_id, instance_id))
        return None if row is None else instance_row(row)

    def list_instances(self, account_id: str, query: ListQuery) -> Page[InstanceRow]:
        total, rows = self._page("agent_instances", account_id, query)
        return Page(total, [instance_row(row) for row in rows])

    def span_counts(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        result = {instance_id: dict.fromkeys(SPAN_STATUSES, 0) for instance_id in instance_ids}
        if not instance_ids:
            return result
        marks = ",".join("?" * len(instance_ids))
        # One pass over the instance index's entries (it holds the status), no sorting:
        # the counts by status are sums in each instance's group.
        rows = self.conn.execute(
            f"SELECT agent_instance_id, {_COUNTS_BY_STATUS} FROM agent_spans "
            "INDEXED BY agent_spans_instance "
            f"WHERE account_id = ? AND agent_instance_id IN ({marks}) "
            "GROUP BY agent_instance_id",
            [account_id, *instance_ids],
        )
        for instance_id, *counts in rows:
            result[instance_id] = dict(zip(SPAN_STATUSES, counts, strict=True))
        return result

    def get_span(self, account_id: str, span_id: str) -> SpanRow | None:
        row = self._one(
            "SELECT * FROM agent_spans WHERE account_id = ? AND id = ?", (account_id, span_id)
        )
        return None if row is None else span_row(row)

    def list_spans(self, account_id: str, query: ListQuery) -> Page[SpanRow]:
        total, rows = self._page("agent_spans", account_id, query)
        return Page(total, [span_row(row) for row in rows])
