"""Read statements the SQL backends share, each defined once.

Written with SQLite's ``?`` marks; :func:`pg` turns one into PostgreSQL's ``%s`` form
(psycopg). What differs between the dialects is a :class:`Dialect` value: how text is
matched case-insensitively, how a JSON column reads as text, and SQLite's index hints
(without ANALYZE statistics its planner would scan an account's spans by primary key).

The write statements stay with each backend (``sqlite/queries.py``,
``postgres/writes.py``): they differ in more than spelling (buffering, ``ON CONFLICT``,
``RETURNING``, locks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

from prefactor_server.storage.lists import RunQuery, like_pattern

__all__ = [
    "ACCOUNT_FOR_TOKEN",
    "AUTH_FAILURES",
    "FIND_AGENT",
    "FIND_TOKEN",
    "FIRST_ACCOUNT",
    "GET_ACCOUNT",
    "GET_AGENT",
    "GET_ENVIRONMENT",
    "GET_INSTANCE",
    "GET_SCHEMA_VERSION",
    "LIST_TOKENS",
    "POSTGRES",
    "SPAN_INSTANCE_ID",
    "SQLITE",
    "Dialect",
    "instance_counts",
    "pg",
    "run_filters",
    "run_span_rows",
    "search_run_spans",
]


def pg(statement: str) -> LiteralString:
    """``statement`` with PostgreSQL's marks: ``?`` → ``%s`` (a literal ``%`` doubled).

    The statements here are constants and column names checked against
    :data:`~prefactor_server.storage.lists.LISTS`: never text a client sent.
    """
    return statement.replace("%", "%%").replace("?", "%s")


@dataclass(frozen=True)
class Dialect:
    """What a shared statement spells differently per backend.

    Attributes:
        like: Case-insensitive substring match of a column against a ``?`` pattern made
            by :func:`~prefactor_server.storage.lists.like_pattern` (``{}``: the column).
        json_text: A JSON column as text (``{}``: the column).
        span_index: The hint after ``agent_spans`` in a run's span scans ("" for none).
        hint: Whether a JSON column may hold LLM facts (mentions a token, cost or model;
            see ``prefactor_server.traces.llm.HINTS``), case-insensitively (``{}``: the
            column). Other payloads are never decoded.
    """

    like: str
    json_text: str
    span_index: str
    hint: str

    def match(self, column: str) -> str:
        """``column`` matches the pattern (one ``?``)."""
        return self.like.format(column)

    def match_json(self, column: str) -> str:
        """JSON ``column``'s text matches the pattern (one ``?``)."""
        return self.like.format(self.json_text.format(column))


# SQLite's LIKE is case-insensitive for ASCII; PostgreSQL's ILIKE escapes with "\" already.
SQLITE = Dialect(
    "{} LIKE ? ESCAPE '\\'",
    "{}",
    " INDEXED BY agent_spans_instance",
    "({0} LIKE '%token%' OR {0} LIKE '%cost%' OR {0} LIKE '%model%')",
)
# One regular expression: the jsonb is rendered as text once, not once per word (the
# rendering is most of the cost).
POSTGRES = Dialect("{} ILIKE ?", "{}::text", "", "({}::text ~* 'token|cost|model')")

_TOKEN_COLUMNS = "id, account_id, name, inserted_at, revoked_at"

ACCOUNT_FOR_TOKEN = (
    "SELECT a.* FROM tokens t JOIN accounts a ON a.id = t.account_id "
    "WHERE t.token_hash = ? AND t.revoked_at IS NULL"
)
GET_ACCOUNT = "SELECT * FROM accounts WHERE id = ?"
FIRST_ACCOUNT = "SELECT * FROM accounts ORDER BY inserted_at, id LIMIT 1"
FIND_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?"
LIST_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY inserted_at, id"
AUTH_FAILURES = "SELECT failures, window_start FROM auth_failures WHERE client = ?"
GET_AGENT = "SELECT * FROM agents WHERE account_id = ? AND id = ? AND deleted_at IS NULL"
FIND_AGENT = (
    "SELECT * FROM agents WHERE account_id = ? AND external_identifier = ? AND deleted_at IS NULL"
)
GET_ENVIRONMENT = "SELECT * FROM environments WHERE account_id = ? AND id = ?"
GET_SCHEMA_VERSION = "SELECT * FROM schema_versions WHERE account_id = ? AND id = ?"
GET_INSTANCE = "SELECT * FROM agent_instances WHERE account_id = ? AND id = ?"
SPAN_INSTANCE_ID = "SELECT agent_instance_id FROM agent_spans WHERE account_id = ? AND id = ?"


def instance_counts(
    account_id: str, agent_id: str, environment_id: str | None
) -> tuple[str, list[Any]]:
    """``SELECT status, n``: an agent's instances per status (in one environment, if given)."""
    statement = (
        "SELECT status, count(*) AS n FROM agent_instances WHERE account_id = ? AND agent_id = ?"
    )
    params: list[Any] = [account_id, agent_id]
    if environment_id is not None:
        statement += " AND environment_id = ?"
        params.append(environment_id)
    return statement + " GROUP BY status", params


def run_filters(dialect: Dialect, account_id: str, query: RunQuery) -> tuple[str, list[Any]]:
    """The ``WHERE`` condition on runs (``agent_instances i``) of a viewer run query."""
    where = ["i.account_id = ?"]
    params: list[Any] = [account_id]
    if query.agent_id:
        where.append("i.agent_id = ?")
        params.append(query.agent_id)
    if query.status:
        where.append("i.status = ?")
        params.append(query.status)
    if query.started_from:
        where.append("COALESCE(i.started_at, i.inserted_at) >= ?")
        params.append(query.started_from)
    if query.started_to:
        where.append("COALESCE(i.started_at, i.inserted_at) < ?")
        params.append(query.started_to)
    if query.text:
        m = dialect.match
        where.append(
            f"({m('i.id')} OR {m('i.external_identifier')} OR {m('i.agent_id')} "
            "OR i.agent_id IN (SELECT a.id FROM agents a WHERE a.account_id = i.account_id "
            f"AND {m('a.name')}) "
            f"OR EXISTS (SELECT 1 FROM agent_spans s{dialect.span_index} "
            "WHERE s.account_id = i.account_id AND s.agent_instance_id = i.id AND ("
            f"{m('s.schema_name')} OR {m('s.summary')} "
            f"OR {dialect.match_json('s.payload')} OR {dialect.match_json('s.result_payload')})))"
        )
        params.extend([like_pattern(query.text)] * 8)
    return " AND ".join(where), params


def run_span_rows(
    dialect: Dialect,
    account_id: str,
    instance_id: str,
    after_id: str | None,
    limit: int,
    updated_since: str | None,
) -> tuple[str, list[Any]]:
    """A run's spans, compactly (``SpanViewRow``), in id order after ``after_id``; with
    ``updated_since``, those updated since then, in ``(updated_at, id)`` order."""
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
    hint = dialect.hint.format
    statement = (
        "SELECT id, parent_span_id, schema_name, schema_title, status, summary, "
        "started_at, finished_at, updated_at, "
        f"CASE WHEN {hint('payload')} THEN payload END AS payload, "
        f"CASE WHEN status IN ('failed', 'cancelled') OR {hint('result_payload')} "
        "THEN result_payload END AS result_payload "
        f"FROM agent_spans{dialect.span_index} WHERE {where} ORDER BY {order} LIMIT ?"
    )
    return statement, [*params, limit]


def search_run_spans(
    dialect: Dialect, account_id: str, instance_id: str, text: str, limit: int
) -> tuple[str, list[Any]]:
    """``SELECT id`` of a run's spans whose text fields contain ``text``, in id order."""
    m = dialect.match
    statement = (
        f"SELECT id FROM agent_spans{dialect.span_index} "
        "WHERE account_id = ? AND agent_instance_id = ? AND ("
        f"{m('schema_name')} OR {m('schema_title')} OR {m('summary')} OR {m('status')} "
        f"OR {dialect.match_json('payload')} OR {dialect.match_json('result_payload')}) "
        "ORDER BY id LIMIT ?"
    )
    return statement, [account_id, instance_id, *[like_pattern(text)] * 6, limit]
