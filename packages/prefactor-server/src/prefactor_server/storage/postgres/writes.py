"""SQL for the PostgreSQL write sessions.

Several server processes write at once, so every read-check-write of the domain is made
safe here rather than by a single writer:

* ``get_instance`` and ``get_span`` lock the row (``FOR UPDATE``) in a write session, so
  two finishes, or a start and a finish, of one instance or span run one after the other
  and the second sees the first's result, whichever process each arrives at.
* Find-or-create (agents, agent versions, schema versions, deployments, the default
  agent) takes a transaction advisory lock on what it looks for, so two registers of the
  same new agent make it once.
* Idempotency keys are claimed up front: ``get_idempotent(_many)`` inserts a placeholder
  row per key (``ON CONFLICT DO NOTHING``). A key claimed by a request still in flight
  makes the insert wait for that request's transaction; once it commits, the stored answer
  is returned, so a request replayed at another process at the same moment answers what
  the first one answered. Placeholders never commit: ``finish()`` drops the unfilled ones.
* Inserts that may collide with a client-chosen id use ``ON CONFLICT DO NOTHING`` and
  raise :class:`IdTaken` when nothing was inserted, which never aborts the transaction.

Span inserts outside a savepoint (bulk ingestion) are buffered and written with one
multi-row ``INSERT … SELECT FROM unnest(…)`` before the next statement that could read
them; a collision found then raises :class:`RetryWithoutBuffering` and the storage runs
the request again without buffering, so the item that collides answers exactly as it would
have unbuffered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from prefactor_server.storage.base import (
    Account,
    AgentRow,
    AgentVersionRow,
    DeploymentRow,
    EnvironmentRow,
    Fields,
    IdTaken,
    InstanceRow,
    NewSpan,
    NewToken,
    RetryWithoutBuffering,
    SchemaVersionRow,
    SpanRow,
    new_span,
)
from prefactor_server.storage.postgres.auth_queries import PgAuthWrites
from prefactor_server.storage.postgres.queries import Conn, PgReadSession

__all__ = ["PgWriteSession", "RetryWithoutBuffering", "lock_key"]

_SPAN_COLUMNS = (
    "account_id", "id", "agent_instance_id", "agent_id", "parent_span_id", "schema_name",
    "schema_title", "status", "payload", "result_payload", "summary", "started_at",
    "finished_at", "inserted_at", "updated_at",
)  # fmt: skip
_SPAN_JSON = ("payload", "result_payload")
_INSTANCE_JSON = ("quality_payloads", "quality_summaries")

_INSERT_SPANS = (
    "INSERT INTO agent_spans (account_id, id, agent_instance_id, agent_id, parent_span_id, "
    "schema_name, schema_title, status, payload, result_payload, summary, started_at, "
    "finished_at, inserted_at, updated_at) "
    "SELECT a, i, inst, ag, par, sn, st, stat, pl::jsonb, rp::jsonb, sm, sa, fa, ia, ua "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[]) AS t(a, i, inst, ag, par, sn, st, stat, pl, rp, sm, sa, fa, ia, ua) "
    "ON CONFLICT (account_id, id) DO NOTHING RETURNING id"
)

_PLACEHOLDER = 0  # the status of a claimed idempotency key whose answer is not stored yet


def lock_key(*parts: str) -> int:
    """Return a signed 64-bit advisory lock key for ``parts`` (a stable hash)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _row_columns(rows: Sequence[NewSpan]) -> list[list[Any]]:
    """The parameters of ``_INSERT_SPANS`` for new span rows (``orphaned`` is derived on
    read here, not stored)."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    del columns[5]  # NEW_SPAN_COLUMNS[5], "orphaned"
    return columns


def _span_columns(records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The parameters of ``_INSERT_SPANS``: one array per column (payloads as JSON text)."""
    columns: list[list[Any]] = [[] for _ in _SPAN_COLUMNS]
    for record in records:
        for index, name in enumerate(_SPAN_COLUMNS):
            value = record[name]
            columns[index].append(_dumps(value) if name in _SPAN_JSON else value)
    return columns


class PgWriteSession(PgReadSession, PgAuthWrites):
    """Reads and writes inside one transaction on a pooled connection."""

    _lock_rows: LiteralString = " FOR UPDATE"
    rebuilds_span_answers = False  # jsonb keeps object keys in its own order

    def __init__(self, conn: Conn, *, buffer_spans: bool = True) -> None:
        super().__init__(conn)
        self._depth = 0
        self._buffer_spans = buffer_spans
        # Span inserts outside a savepoint, (account, id) → values, written by _flush().
        self._spans: dict[tuple[str, str], NewSpan] = {}
        self._claimed: set[tuple[str, str, str]] = set()
        self._answered: set[tuple[str, str, str]] = set()

    # -- transaction plumbing ------------------------------------------------------------

    def _flush(self) -> None:
        """Write the buffered spans in one statement (before anything that could read them)."""
        if not self._spans:
            return
        spans, self._spans = self._spans, {}
        inserted = self.cur.execute(_INSERT_SPANS, _row_columns(list(spans.values()))).fetchall()
        if len(inserted) != len(spans):
            raise RetryWithoutBuffering()

    def finish(self) -> None:
        """Flush buffered spans and drop idempotency placeholders no answer filled."""
        self._flush()
        unfilled = self._claimed - self._answered
        if unfilled:
            rows = sorted(unfilled)
            accounts = [row[0] for row in rows]
            actions = [row[1] for row in rows]
            keys = [row[2] for row in rows]
            self.cur.execute(
                "DELETE FROM idempotency i USING unnest(%s::text[], %s::text[], %s::text[]) "
                "AS u(a, act, k) WHERE i.account_id = u.a AND i.action = u.act AND i.key = u.k "
                "AND i.status = %s",
                (accounts, actions, keys, _PLACEHOLDER),
            )

    def _execute(self, query: LiteralString, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        self._flush()
        return self.cur.execute(query, params)

    def _one(self, query: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
        self._flush()
        return super()._one(query, params)

    def _all(
        self, query: LiteralString | sql.Composed, params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        self._flush()
        return super()._all(query, params)

    def _advisory(self, *parts: str) -> None:
        self._execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(*parts),))

    def lock(self, name: str) -> None:
        self._advisory("lock", name)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._flush()
        name = sql.Identifier(f"sp{self._depth}")
        self._depth += 1
        self.cur.execute(sql.SQL("SAVEPOINT {}").format(name))
        try:
            yield
            self._flush()
        except BaseException:
            self._spans.clear()
            self.cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(name))
            self.cur.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))
            raise
        else:
            self.cur.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))
        finally:
            self._depth -= 1

    # -- idempotency ---------------------------------------------------------------------

    def _claim(self, account_id: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Insert placeholders for ``keys`` (sorted: two requests never wait on each other in
        a cycle); return the keys claimed now. The rest have (or had) an answer."""
        ordered = sorted(set(keys))
        rows = self._all(
            "INSERT INTO idempotency (account_id, action, key, status, body, inserted_at) "
            "SELECT %s, act, k, %s, '', to_char(now() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') '
            "FROM unnest(%s::text[], %s::text[]) AS u(act, k) "
            "ON CONFLICT (account_id, action, key) DO NOTHING RETURNING action, key",
            (account_id, _PLACEHOLDER, [a for a, _ in ordered], [k for _, k in ordered]),
        )
        claimed = {(row["action"], row["key"]) for row in rows}
        self._claimed.update((account_id, action, key) for action, key in claimed)
        return claimed

    def _stored(
        self, account_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        rows = self._all(
            "SELECT i.action, i.key, i.status, i.body FROM idempotency i "
            "JOIN unnest(%s::text[], %s::text[]) AS u(act, k) ON i.action = u.act AND i.key = u.k "
            "WHERE i.account_id = %s AND i.status <> %s",
            ([a for a, _ in keys], [k for _, k in keys], account_id, _PLACEHOLDER),
        )
        return {(row["action"], row["key"]): (row["status"], bytes(row["body"])) for row in rows}

    def get_idempotent(self, account_id: str, action: str, key: str) -> tuple[int, bytes] | None:
        return self.get_idempotent_many(account_id, [(action, key)]).get((action, key))

    def get_idempotent_many(
        self, account_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        # Keys claimed earlier in this transaction hold a placeholder or this
        # transaction's own answer; any other key is claimed now, or already answered.
        fresh = [key for key in keys if (account_id, *key) not in self._claimed]
        claimed = self._claim(account_id, fresh) if fresh else set()
        taken = [key for key in keys if key not in claimed]
        return self._stored(account_id, taken) if taken else {}

    def put_idempotent(
        self, account_id: str, action: str, key: str, status: int, body: bytes
    ) -> None:
        self.put_idempotent_many(account_id, [(action, key, status, body)])

    def put_idempotent_many(
        self, account_id: str, rows: Sequence[tuple[str, str, int, bytes]]
    ) -> None:
        self._execute(
            "INSERT INTO idempotency (account_id, action, key, status, body, inserted_at) "
            "SELECT %s, act, k, st, b, to_char(now() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') '
            "FROM unnest(%s::text[], %s::text[], %s::int[], %s::bytea[]) AS u(act, k, st, b) "
            "ON CONFLICT (account_id, action, key) DO UPDATE "
            "SET status = excluded.status, body = excluded.body",
            (
                account_id,
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
                [row[3] for row in rows],
            ),
        )
        self._answered.update((account_id, row[0], row[1]) for row in rows)

    # -- accounts and tokens -------------------------------------------------------------

    def get_account(self, account_id: str) -> Account | None:
        account = super().get_account(account_id)
        if account is not None and account.default_agent_id is None:
            # The caller may be about to make the default agent: hold the row until commit.
            account = Account.from_row(
                self._one("SELECT * FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
            )
        return account

    def insert_account(self, account: Account) -> None:
        self._execute(
            "INSERT INTO accounts (id, name, partition, default_agent_id, "
            "default_environment_id, inserted_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                account.id,
                account.name,
                account.partition,
                account.default_agent_id,
                account.default_environment_id,
                account.inserted_at,
            ),
        )

    def set_default_agent(self, account_id: str, agent_id: str) -> None:
        self._execute(
            "UPDATE accounts SET default_agent_id = %s WHERE id = %s", (agent_id, account_id)
        )

    def insert_token(self, record: NewToken) -> None:
        self._insert("tokens", record)

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        cursor = self._execute(
            "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
            (revoked_at, token_id),
        )
        return cursor.rowcount > 0

    # -- generic insert and update -------------------------------------------------------

    def _insert(self, table: str, record: Mapping[str, Any], *, id_conflict: bool = False) -> None:
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, record)),
            sql.SQL(", ").join(sql.Placeholder() * len(record)),
        )
        if id_conflict:
            query += sql.SQL(" ON CONFLICT (account_id, id) DO NOTHING RETURNING id")
        self._flush()
        cursor = self.cur.execute(query, list(record.values()))
        if id_conflict and cursor.fetchone() is None:
            raise IdTaken(record["id"])

    def _update(self, table: str, account_id: str, row_id: str, fields: Fields) -> None:
        query = sql.SQL("UPDATE {} SET {} WHERE account_id = %s AND id = %s").format(
            sql.Identifier(table),
            sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in fields
            ),
        )
        self._flush()
        self.cur.execute(query, [*fields.values(), account_id, row_id])

    # -- agents, versions, deployments ---------------------------------------------------

    def get_environment(self, account_id: str, environment_id: str) -> EnvironmentRow | None:
        self._advisory(account_id, "environment", environment_id)
        return super().get_environment(account_id, environment_id)

    def insert_environment(self, record: EnvironmentRow) -> None:
        self._insert("environments", record)

    def get_agent(self, account_id: str, agent_id: str) -> AgentRow | None:
        self._advisory(account_id, "agent", agent_id)
        return super().get_agent(account_id, agent_id)

    def insert_agent(self, record: AgentRow) -> None:
        self._insert("agents", record, id_conflict=True)

    def update_agent(self, account_id: str, agent_id: str, fields: Fields) -> None:
        self._update("agents", account_id, agent_id, fields)

    def find_agent_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> AgentVersionRow | None:
        self._advisory(account_id, "agent_version", agent_id, external_identifier)
        return self._one(  # type: ignore[return-value]
            "SELECT * FROM agent_versions "
            "WHERE account_id = %s AND agent_id = %s AND external_identifier = %s",
            (account_id, agent_id, external_identifier),
        )

    def insert_agent_version(self, record: AgentVersionRow) -> None:
        self._insert(
            "agent_versions",
            {**record, "runtime_environment": _json(record.get("runtime_environment"))},
        )

    def find_schema_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> SchemaVersionRow | None:
        self._advisory(account_id, "schema_version", agent_id, external_identifier)
        return self._one(  # type: ignore[return-value]
            "SELECT * FROM schema_versions "
            "WHERE account_id = %s AND agent_id = %s AND external_identifier = %s",
            (account_id, agent_id, external_identifier),
        )

    def insert_schema_version(self, record: SchemaVersionRow) -> None:
        self._insert("schema_versions", {**record, "body": Jsonb(record["body"])})

    def find_deployment(
        self, account_id: str, agent_id: str, environment_id: str
    ) -> DeploymentRow | None:
        self._advisory(account_id, "deployment", agent_id, environment_id)
        return self._one(  # type: ignore[return-value]
            "SELECT * FROM deployments "
            "WHERE account_id = %s AND agent_id = %s AND environment_id = %s",
            (account_id, agent_id, environment_id),
        )

    def insert_deployment(self, record: DeploymentRow) -> None:
        self._insert("deployments", record)

    def set_deployment_version(self, account_id: str, deployment_id: str, version_id: str) -> None:
        self._update("deployments", account_id, deployment_id, {"current_version_id": version_id})

    # -- instances and spans -------------------------------------------------------------

    def insert_instance(self, record: InstanceRow) -> None:
        encoded = {
            key: Jsonb(value) if key in _INSTANCE_JSON else value for key, value in record.items()
        }
        self._insert("agent_instances", encoded, id_conflict=True)

    def update_instance(self, account_id: str, instance_id: str, fields: Fields) -> None:
        fields = {
            key: Jsonb(value) if key in _INSTANCE_JSON else value for key, value in fields.items()
        }
        self._update("agent_instances", account_id, instance_id, fields)

    def span_instance_id(self, account_id: str, span_id: str) -> str | None:
        buffered = self._spans.get((account_id, span_id))
        if buffered is not None:
            return buffered[2]
        row = self._one(
            "SELECT agent_instance_id FROM agent_spans WHERE account_id = %s AND id = %s",
            (account_id, span_id),
        )
        return None if row is None else str(row["agent_instance_id"])

    def insert_span(self, record: SpanRow, encoded: tuple[str, str | None] | None = None) -> None:
        payload, result = encoded or (
            _dumps(record["payload"]) or "{}",
            _dumps(record["result_payload"]),
        )
        self.add_span(new_span(record, payload, result))

    def add_span(self, row: NewSpan, keyed: bool = False) -> bool:
        # The answer is always stored as a row here (rebuilds_span_answers is False).
        key = (row[0], row[1])
        if self._buffer_spans and self._depth == 0:
            if key in self._spans:
                raise IdTaken(row[1])
            self._spans[key] = row
            return False
        self._flush()
        if not self.cur.execute(_INSERT_SPANS, _row_columns([row])).fetchall():
            raise IdTaken(row[1])
        return False

    def insert_spans(self, account_id: str, records: Sequence[SpanRow]) -> int:
        # One multi-row insert; ids already stored (a resent export, or another process
        # storing the same span at this moment) are skipped by ON CONFLICT, never an error.
        # Sorted by id, so two processes inserting overlapping batches take the unique
        # index's entries in one order and cannot deadlock. Orphans need no bookkeeping:
        # "orphaned" is derived on read, so a parent arriving later adopts its children.
        unique: dict[str, Mapping[str, Any]] = {}
        for record in records:  # a repeated id within the call counts once (the first)
            unique.setdefault(record["id"], {**record, "account_id": account_id})
        if not unique:
            return 0
        rows = [unique[span_id] for span_id in sorted(unique)]
        self._flush()
        return len(self.cur.execute(_INSERT_SPANS, _span_columns(rows)).fetchall())

    def update_span(self, account_id: str, span_id: str, fields: Fields) -> None:
        fields = {
            key: _json(value) if key in _SPAN_JSON else value for key, value in fields.items()
        }
        self._update("agent_spans", account_id, span_id, fields)
