"""SQL for the PostgreSQL sessions: reads (shared by read and write sessions) and writes.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from prefactor_server.storage.base import (
    INSTANCE_STATUSES,
    LISTS,
    SPAN_STATUSES,
    Account,
    IdTaken,
    ListQuery,
    Page,
    Record,
)
from prefactor_server.storage.postgres.auth_queries import PgAuthReads, PgAuthWrites
from prefactor_server.storage.postgres.viewer_queries import PgViewerReads

__all__ = ["PgReadSession", "PgWriteSession", "RetryWithoutBuffering"]

Conn = psycopg.Connection[Any]

_SPAN_COLUMNS = (
    "account_id", "id", "agent_instance_id", "agent_id", "parent_span_id", "schema_name",
    "schema_title", "status", "payload", "result_payload", "summary", "started_at",
    "finished_at", "inserted_at", "updated_at",
)  # fmt: skip
_SPAN_JSON = ("payload", "result_payload")
_INSTANCE_JSON = ("quality_payloads", "quality_summaries")

# A span's orphaned flag, derived: it names a parent that its instance does not have.
_SPAN_SELECT = (
    "SELECT s.account_id, s.id, s.agent_instance_id, s.agent_id, s.parent_span_id, "
    "s.schema_name, s.schema_title, s.status, s.payload, s.result_payload, s.summary, "
    "s.started_at, s.finished_at, s.inserted_at, s.updated_at, "
    "(s.parent_span_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM agent_spans p "
    "WHERE p.account_id = s.account_id AND p.id = s.parent_span_id "
    "AND p.agent_instance_id = s.agent_instance_id)) AS orphaned FROM agent_spans s"
)

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


class RetryWithoutBuffering(Exception):
    """A buffered span insert collided: run the request again, unbuffered."""


def lock_key(*parts: str) -> int:
    """Return a signed 64-bit advisory lock key for ``parts`` (a stable hash)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_account = Account.from_row


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _span_columns(records: Sequence[Record]) -> list[list[Any]]:
    """The parameters of ``_INSERT_SPANS``: one array per column (payloads as JSON text)."""
    columns: list[list[Any]] = [[] for _ in _SPAN_COLUMNS]
    for record in records:
        for index, name in enumerate(_SPAN_COLUMNS):
            value = record[name]
            columns[index].append(_dumps(value) if name in _SPAN_JSON else value)
    return columns


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


class PgWriteSession(PgReadSession, PgAuthWrites):
    """Reads and writes inside one transaction on a pooled connection."""

    _lock_rows: LiteralString = " FOR UPDATE"

    def __init__(self, conn: Conn, *, buffer_spans: bool = True) -> None:
        super().__init__(conn)
        self._depth = 0
        self._buffer_spans = buffer_spans
        self._spans: list[Record] = []
        self._claimed: set[tuple[str, str, str]] = set()
        self._answered: set[tuple[str, str, str]] = set()

    # -- transaction plumbing ------------------------------------------------------------

    def _flush(self) -> None:
        """Write the buffered spans in one statement (before anything that could read them)."""
        if not self._spans:
            return
        spans, self._spans = self._spans, []
        inserted = self.cur.execute(_INSERT_SPANS, _span_columns(spans)).fetchall()
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

    def _all(self, query: LiteralString | sql.Composed, params: Sequence[Any]) -> list[Record]:
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
            account = _account(
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

    def insert_token(self, record: Record) -> None:
        self._insert("tokens", record)

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        cursor = self._execute(
            "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
            (revoked_at, token_id),
        )
        return cursor.rowcount > 0

    # -- generic insert and update -------------------------------------------------------

    def _insert(self, table: str, record: Record, *, id_conflict: bool = False) -> None:
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

    def _update(self, table: str, account_id: str, row_id: str, fields: Record) -> None:
        query = sql.SQL("UPDATE {} SET {} WHERE account_id = %s AND id = %s").format(
            sql.Identifier(table),
            sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in fields
            ),
        )
        self._flush()
        self.cur.execute(query, [*fields.values(), account_id, row_id])

    # -- agents, versions, deployments ---------------------------------------------------

    def get_environment(self, account_id: str, environment_id: str) -> Record | None:
        self._advisory(account_id, "environment", environment_id)
        return super().get_environment(account_id, environment_id)

    def insert_environment(self, record: Record) -> None:
        self._insert("environments", record)

    def get_agent(self, account_id: str, agent_id: str) -> Record | None:
        self._advisory(account_id, "agent", agent_id)
        return super().get_agent(account_id, agent_id)

    def insert_agent(self, record: Record) -> None:
        self._insert("agents", record, id_conflict=True)

    def update_agent(self, account_id: str, agent_id: str, fields: Record) -> None:
        self._update("agents", account_id, agent_id, fields)

    def find_agent_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> Record | None:
        self._advisory(account_id, "agent_version", agent_id, external_identifier)
        return self._one(
            "SELECT * FROM agent_versions "
            "WHERE account_id = %s AND agent_id = %s AND external_identifier = %s",
            (account_id, agent_id, external_identifier),
        )

    def insert_agent_version(self, record: Record) -> None:
        record = {**record, "runtime_environment": _json(record.get("runtime_environment"))}
        self._insert("agent_versions", record)

    def find_schema_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> Record | None:
        self._advisory(account_id, "schema_version", agent_id, external_identifier)
        return self._one(
            "SELECT * FROM schema_versions "
            "WHERE account_id = %s AND agent_id = %s AND external_identifier = %s",
            (account_id, agent_id, external_identifier),
        )

    def insert_schema_version(self, record: Record) -> None:
        self._insert("schema_versions", {**record, "body": Jsonb(record["body"])})

    def find_deployment(self, account_id: str, agent_id: str, environment_id: str) -> Record | None:
        self._advisory(account_id, "deployment", agent_id, environment_id)
        return self._one(
            "SELECT * FROM deployments "
            "WHERE account_id = %s AND agent_id = %s AND environment_id = %s",
            (account_id, agent_id, environment_id),
        )

    def insert_deployment(self, record: Record) -> None:
        self._insert("deployments", record)

    def set_deployment_version(self, account_id: str, deployment_id: str, version_id: str) -> None:
        self._update("deployments", account_id, deployment_id, {"current_version_id": version_id})

    # -- instances and spans -------------------------------------------------------------

    def insert_instance(self, record: Record) -> None:
        record = {
            key: Jsonb(value) if key in _INSTANCE_JSON else value for key, value in record.items()
        }
        self._insert("agent_instances", record, id_conflict=True)

    def update_instance(self, account_id: str, instance_id: str, fields: Record) -> None:
        fields = {
            key: Jsonb(value) if key in _INSTANCE_JSON else value for key, value in fields.items()
        }
        self._update("agent_instances", account_id, instance_id, fields)

    def span_instance_id(self, account_id: str, span_id: str) -> str | None:
        for record in self._spans:
            if record["id"] == span_id and record["account_id"] == account_id:
                return str(record["agent_instance_id"])
        row = self._one(
            "SELECT agent_instance_id FROM agent_spans WHERE account_id = %s AND id = %s",
            (account_id, span_id),
        )
        return None if row is None else str(row["agent_instance_id"])

    def insert_span(self, record: Record) -> None:
        if self._buffer_spans and self._depth == 0:
            self._spans.append(record)
            return
        values = [
            _json(record[name]) if name in _SPAN_JSON else record[name] for name in _SPAN_COLUMNS
        ]
        self._flush()
        row = self.cur.execute(
            "INSERT INTO agent_spans (account_id, id, agent_instance_id, agent_id, "
            "parent_span_id, schema_name, schema_title, status, payload, result_payload, "
            "summary, started_at, finished_at, inserted_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (account_id, id) DO NOTHING RETURNING id",
            values,
        ).fetchone()
        if row is None:
            raise IdTaken(record["id"])

    def insert_spans(self, account_id: str, records: Sequence[Record]) -> int:
        # One multi-row insert; ids already stored (a resent export, or another process
        # storing the same span at this moment) are skipped by ON CONFLICT, never an error.
        # Sorted by id, so two processes inserting overlapping batches take the unique
        # index's entries in one order and cannot deadlock. Orphans need no bookkeeping:
        # "orphaned" is derived on read, so a parent arriving later adopts its children.
        unique: dict[str, Record] = {}
        for record in records:  # a repeated id within the call counts once (the first)
            unique.setdefault(record["id"], {**record, "account_id": account_id})
        if not unique:
            return 0
        rows = [unique[span_id] for span_id in sorted(unique)]
        self._flush()
        return len(self.cur.execute(_INSERT_SPANS, _span_columns(rows)).fetchall())

    def update_span(self, account_id: str, span_id: str, fields: Record) -> None:
        fields = {
            key: _json(value) if key in _SPAN_JSON else value for key, value in fields.items()
        }
        self._update("agent_spans", account_id, span_id, fields)
