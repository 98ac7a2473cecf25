"""SQL for the SQLite write session: inserts and updates inside the writer's transaction
(its reads are ``queries.py``'s)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any, cast

import orjson

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import (
    Account,
    AgentRow,
    AgentVersionRow,
    DeploymentRow,
    EnvironmentRow,
    Fields,
    IdTaken,
    InstanceRow,
    NewToken,
    SchemaVersionRow,
    SpanRow,
    is_orphan,
)
from prefactor_server.storage.sqlite.auth_queries import AuthWrites
from prefactor_server.storage.sqlite.decode import dumps as _dumps
from prefactor_server.storage.sqlite.decode import instance_row
from prefactor_server.storage.sqlite.decode import loads as _loads
from prefactor_server.storage.sqlite.idempotency import IdempotencyRows
from prefactor_server.storage.sqlite.otlp_journal import JournalRows
from prefactor_server.storage.sqlite.queries import SqliteReadSession
from prefactor_server.storage.sqlite.span_buffer import SpanBuffer
from prefactor_server.storage.sqlite.writer_connection import WriterConnection

__all__ = ["SqliteWriteSession"]


def _insert(conn: sqlite3.Connection, table: str, record: Mapping[str, Any]) -> None:
    columns = ", ".join(record)
    marks = ", ".join("?" * len(record))
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(record.values()))


def _update(
    conn: sqlite3.Connection, table: str, account_id: str, row_id: str, fields: Fields
) -> None:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(
        f"UPDATE {table} SET {assignments} WHERE account_id = ? AND id = ?",
        (*fields.values(), account_id, row_id),
    )


_SPAN_JSON = ("payload", "result_payload")
_INSTANCE_JSON = ("quality_payloads", "quality_summaries")

# Span inserts are the hot path of bulk ingestion: one prepared statement, positional values.
_INSERT_SPAN = (
    "INSERT INTO agent_spans (account_id, id, agent_instance_id, agent_id, parent_span_id, "
    "orphaned, "
    "schema_name, schema_title, status, payload, result_payload, summary, started_at, finished_at, "
    "inserted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# OTLP ingest's inserts (insert_spans): an id already stored is skipped, not an error.
_INSERT_NEW_SPAN = _INSERT_SPAN + " ON CONFLICT (account_id, id) DO NOTHING"


_SECOND_COLUMN = itemgetter(1)
# Orphans read to find the parents a call's spans adopt (see _named_by_orphans).
_ORPHANS_READ = 256


_IN_SIZES = (8, 32, 128, 500)  # the lengths of get_instances' IN lists


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """Slices of at most ``size`` values (SQLite allows 32,766 parameters per statement;
    PostgreSQL 65,535; 500 keeps statements small for both)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


class SqliteWriteSession(SqliteReadSession, AuthWrites, IdempotencyRows, JournalRows, SpanBuffer):
    """Reads and writes inside the writer's open transaction."""

    rebuilds_span_answers = True  # payloads are stored as the JSON text they came as

    def __init__(self, conn: sqlite3.Connection, *, buffer_spans: bool = True) -> None:
        super().__init__(conn)
        self._depth = 0
        # Account id → whether it may have orphaned spans, learnt once per transaction
        # (this connection is the only writer, so nothing else can add orphans meanwhile).
        self._orphans: dict[str, bool] = {}
        # Span inserts outside a savepoint, (account, id) → the row's values and its
        # keyed_create flag (span_buffer.py).
        self.buffer_spans = buffer_spans and isinstance(conn, WriterConnection)
        self._spans: dict[tuple[str, str], tuple[object, ...]] = {}
        # Buffered spans marked afterwards as standing for their create's stored answer.
        self._keyed: set[tuple[str, str]] = set()
        self._buffered_orphans = False
        if isinstance(conn, WriterConnection):
            conn.before_statement = self.flush

    def begin(self) -> None:
        """Forget what was cached about the database: a new transaction starts."""
        self._orphans.clear()
        self.discard()
        self._depth = 0

    def discard(self) -> None:
        """Drop the buffered span inserts (the transaction is being rolled back)."""
        self._spans.clear()
        self._keyed.clear()
        self._buffered_orphans = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        name = f"sp{self._depth}"
        self._depth += 1
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        else:
            self.conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def lock(self, name: str) -> None:
        pass  # the one writer thread already runs every write transaction alone

    def insert_account(self, account: Account) -> None:
        _insert(
            self.conn,
            "accounts",
            {
                "id": account.id,
                "name": account.name,
                "partition": account.partition,
                "default_agent_id": account.default_agent_id,
                "default_environment_id": account.default_environment_id,
                "inserted_at": account.inserted_at,
            },
        )

    def set_default_agent(self, account_id: str, agent_id: str) -> None:
        self.conn.execute(
            "UPDATE accounts SET default_agent_id = ? WHERE id = ?", (agent_id, account_id)
        )

    def insert_token(self, record: NewToken) -> None:
        _insert(self.conn, "tokens", record)

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        cursor = self.conn.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (revoked_at, token_id),
        )
        return cursor.rowcount > 0

    def insert_environment(self, record: EnvironmentRow) -> None:
        _insert(self.conn, "environments", record)

    def insert_agent(self, record: AgentRow) -> None:
        try:
            _insert(self.conn, "agents", record)
        except sqlite3.IntegrityError as exc:
            raise IdTaken(record["id"]) from exc

    def update_agent(self, account_id: str, agent_id: str, fields: Fields) -> None:
        _update(self.conn, "agents", account_id, agent_id, fields)

    def find_agent_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> AgentVersionRow | None:
        row = self._one(
            "SELECT * FROM agent_versions "
            "WHERE account_id = ? AND agent_id = ? AND external_identifier = ?",
            (account_id, agent_id, external_identifier),
        )
        if row is None:
            return None
        record: dict[str, Any] = dict(row)
        record["runtime_environment"] = _loads(record["runtime_environment"])
        return cast(AgentVersionRow, record)

    def insert_agent_version(self, record: AgentVersionRow) -> None:
        _insert(
            self.conn,
            "agent_versions",
            {**record, "runtime_environment": _dumps(record.get("runtime_environment"))},
        )

    def find_schema_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> SchemaVersionRow | None:
        row = self._one(
            "SELECT id FROM schema_versions "
            "WHERE account_id = ? AND agent_id = ? AND external_identifier = ?",
            (account_id, agent_id, external_identifier),
        )
        return None if row is None else self.get_schema_version(account_id, row[0])

    def insert_schema_version(self, record: SchemaVersionRow) -> None:
        _insert(self.conn, "schema_versions", {**record, "body": _dumps(record["body"])})

    def find_deployment(
        self, account_id: str, agent_id: str, environment_id: str
    ) -> DeploymentRow | None:
        row = self._one(
            "SELECT * FROM deployments "
            "WHERE account_id = ? AND agent_id = ? AND environment_id = ?",
            (account_id, agent_id, environment_id),
        )
        return None if row is None else cast(DeploymentRow, dict(row))

    def insert_deployment(self, record: DeploymentRow) -> None:
        _insert(self.conn, "deployments", record)

    def set_deployment_version(self, account_id: str, deployment_id: str, version_id: str) -> None:
        _update(
            self.conn, "deployments", account_id, deployment_id, {"current_version_id": version_id}
        )

    def insert_instance(self, record: InstanceRow) -> None:
        encoded = {
            key: _dumps(value) if key in _INSTANCE_JSON else value for key, value in record.items()
        }
        try:
            _insert(self.conn, "agent_instances", encoded)
        except sqlite3.IntegrityError as exc:
            raise IdTaken(record["id"]) from exc

    def update_instance(self, account_id: str, instance_id: str, fields: Fields) -> None:
        fields = {
            key: _dumps(value) if key in _INSTANCE_JSON else value for key, value in fields.items()
        }
        _update(self.conn, "agent_instances", account_id, instance_id, fields)

    def get_instance(self, account_id: str, instance_id: str) -> InstanceRow | None:
        # Straight to the database, not flushing the buffered span inserts (an instance row
        # does not depend on them): a bulk request naming a new instance midway keeps
        # its spans buffered, and their answers lean (idempotency.py).
        row = sqlite3.Connection.execute(self.conn, q.GET_INSTANCE, (account_id, instance_id))
        found = row.fetchone()
        return None if found is None else instance_row(found)

    def get_instances(
        self, account_id: str, instance_ids: Collection[str]
    ) -> dict[str, InstanceRow]:
        found: dict[str, InstanceRow] = {}
        for chunk in _chunks(list(instance_ids)):
            # Padded to one of a few sizes (a repeated id matches once): few statement
            # texts, each compiled once and kept in the connection's cache.
            size = next(size for size in _IN_SIZES if size >= len(chunk))
            marks = ",".join("?" * size)
            rows = sqlite3.Connection.execute(  # not flushing the span buffer: get_instance
                self.conn,
                f"SELECT * FROM agent_instances WHERE account_id = ? AND id IN ({marks})",
                (account_id, *chunk, *[chunk[-1]] * (size - len(chunk))),
            )
            for row in rows:
                found[row["id"]] = instance_row(row)
        return found

    def span_instance_id(self, account_id: str, span_id: str) -> str | None:
        buffered = self._spans.get((account_id, span_id)) if self._spans else None
        if buffered is not None:
            return str(buffered[2])
        # Straight to the database, not flushing the buffer: the id is not in it.
        row = sqlite3.Connection.execute(
            self.conn,
            "SELECT agent_instance_id FROM agent_spans WHERE account_id = ? AND id = ?",
            (account_id, span_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_spans(self, account_id: str, records: Sequence[SpanRow]) -> int:
        # Set-based, for OTLP ingest: one parent lookup, one executemany and one adoption
        # per call, however many spans (children usually arrive before their parents).
        # Ids already stored (a resent export) are skipped by ON CONFLICT, so new spans
        # need no lookup first; the connection's change count says how many were new.
        batch: dict[str, str] = {}  # span id -> instance id (the first of a repeated id)
        for r in records:
            batch.setdefault(r["id"], r["agent_instance_id"])
        outside = {
            r["parent_span_id"]
            for r in records
            if r["parent_span_id"] is not None and r["parent_span_id"] not in batch
        }
        parents = {**batch, **self._span_instances(account_id, list(outside))} if outside else batch
        rows = []
        orphans = False
        for r in records:
            parent = r["parent_span_id"]
            orphaned = is_orphan(parent, r["agent_instance_id"], parents)
            orphans = orphans or orphaned
            rows.append(
                (
                    account_id, r["id"], r["agent_instance_id"], r["agent_id"], parent,
                    int(orphaned), r["schema_name"], r["schema_title"], r["status"],
                    orjson.dumps(r["payload"]).decode(), _dumps(r["result_payload"]),
                    r["summary"], r["started_at"], r["finished_at"], r["inserted_at"],
                    r["updated_at"],
                )
            )  # fmt: skip
        if not rows:
            return 0
        # In key order: each B-tree page (the table's and every index's, all of which end
        # in the id) is then visited once per call instead of once per row. The sort is
        # stable: of a repeated id, the first is stored.
        rows.sort(key=_SECOND_COLUMN)
        self.flush()  # buffered span inserts first: only this call's rows are counted
        conn = self.conn
        before = conn.total_changes
        conn.executemany(_INSERT_NEW_SPAN, rows)
        stored = conn.total_changes - before
        if orphans:
            self._orphans[account_id] = True
        if stored and self._may_have_orphans(account_id):
            # Adopting the stored children of a span stored before changes nothing: all
            # of the call's ids can be passed, or only those an orphan names.
            self._adopt(account_id, self._named_by_orphans(account_id, batch))
        return stored

    def _named_by_orphans(self, account_id: str, ids: Collection[str]) -> list[str]:
        """The ids among ``ids`` that an orphan of the account names as its parent, read
        from the orphans themselves while they are few (a short scan of their index
        instead of a probe per id: an OTLP export of 512 spans usually leaves the ~20
        children of one cut trace waiting for their root, and an account that has a few
        orphans left would otherwise probe every span of every bulk write); all of
        ``ids`` when there are more orphans than that."""
        bound = min(len(ids), _ORPHANS_READ)
        named = self.conn.execute(
            "SELECT parent_span_id FROM agent_spans INDEXED BY agent_spans_orphans "
            "WHERE account_id = ? AND orphaned = 1 LIMIT ?",
            (account_id, bound + 1),
        ).fetchall()
        if len(named) > bound:
            return list(ids)
        return list({row[0] for row in named if row[0] in ids})

    def _adopt(self, account_id: str, new_ids: list[str]) -> None:
        """Clear ``orphaned`` on the stored children of the new spans ``new_ids`` that are in
        the same instance as their parent."""
        for chunk in _chunks(new_ids):
            marks = ",".join("?" * len(chunk))
            # INDEXED BY: without statistics SQLite would scan the account's spans by
            # primary key.
            self.conn.execute(
                "UPDATE agent_spans INDEXED BY agent_spans_orphans SET orphaned = 0 "
                f"WHERE account_id = ? AND orphaned = 1 AND parent_span_id IN ({marks}) "
                "AND agent_instance_id = (SELECT p.agent_instance_id FROM agent_spans AS p "
                "WHERE p.account_id = agent_spans.account_id "
                "AND p.id = agent_spans.parent_span_id)",
                (account_id, *chunk),
            )

    def _may_have_orphans(self, account_id: str) -> bool:
        """Whether the account may have orphaned spans (looked up once per transaction)."""
        orphans = self._orphans.get(account_id)
        if orphans is None:
            orphans = self._orphans[account_id] = (
                self.conn.execute(
                    "SELECT 1 FROM agent_spans INDEXED BY agent_spans_orphans "
                    "WHERE account_id = ? AND orphaned = 1 LIMIT 1",
                    (account_id,),
                ).fetchone()
                is not None
            )
        return orphans

    def _span_instances(self, account_id: str, ids: list[str]) -> dict[str, str]:
        """The instance id of each stored span among ``ids``."""
        found: dict[str, str] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            found.update(
                self.conn.execute(
                    "SELECT id, agent_instance_id FROM agent_spans "
                    f"WHERE account_id = ? AND id IN ({marks})",
                    (account_id, *chunk),
                )
            )
        return found

    def update_span(self, account_id: str, span_id: str, fields: Fields) -> None:
        fields = {
            key: _dumps(value) if key in _SPAN_JSON else value for key, value in fields.items()
        }
        _update(self.conn, "agent_spans", account_id, span_id, fields)
