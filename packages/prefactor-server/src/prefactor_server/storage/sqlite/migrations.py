"""The SQLite schema as an ordered list of named migrations.

Applied migrations are recorded in ``schema_migrations``; opening a database applies the
ones it lacks, in order. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration", "apply_migrations"]


@dataclass(frozen=True)
class Migration:
    """One schema step.

    Attributes:
        name: Unique, recorded in ``schema_migrations``.
        sql: The statements (a script).
        transactional: Whether it runs inside a transaction (False for e.g. VACUUM).
    """

    name: str
    sql: str
    transactional: bool = True


# Every resource table is keyed by (account_id, id): clients choose ids (instances, spans,
# agents such as "my-agent"), so two accounts may use the same id without meeting.
_INITIAL = """
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    partition INTEGER NOT NULL,
    default_agent_id TEXT,
    default_environment_id TEXT NOT NULL,
    inserted_at TEXT NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE environments (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
CREATE TABLE agents (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    external_identifier TEXT,
    owner_person_id TEXT,
    risk_profile_id TEXT,
    team_id TEXT,
    status TEXT NOT NULL,
    deleted_at TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX agents_external_identifier
    ON agents (account_id, external_identifier) WHERE external_identifier IS NOT NULL;
CREATE TABLE agent_versions (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    external_identifier TEXT NOT NULL,
    name TEXT,
    description TEXT,
    runtime_environment TEXT,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, external_identifier)
) WITHOUT ROWID;
CREATE TABLE schema_versions (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    external_identifier TEXT NOT NULL,
    body TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, external_identifier)
) WITHOUT ROWID;
CREATE TABLE deployments (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    current_version_id TEXT,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, environment_id)
) WITHOUT ROWID;
CREATE TABLE agent_instances (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_version_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    agent_deployment_id TEXT NOT NULL,
    schema_version_id TEXT NOT NULL,
    status TEXT NOT NULL,
    purpose TEXT NOT NULL,
    external_identifier TEXT,
    termination_reason TEXT,
    quality_payloads TEXT NOT NULL DEFAULT '{}',
    quality_summaries TEXT NOT NULL DEFAULT '{}',
    started_at TEXT,
    finished_at TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
CREATE INDEX agent_instances_agent ON agent_instances (account_id, agent_id, id);
CREATE INDEX agent_instances_status ON agent_instances (account_id, status, id);
CREATE TABLE agent_spans (
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    agent_instance_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    parent_span_id TEXT,
    orphaned INTEGER NOT NULL DEFAULT 0,
    schema_name TEXT NOT NULL,
    schema_title TEXT,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    result_payload TEXT,
    summary TEXT,
    started_at TEXT,
    finished_at TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) WITHOUT ROWID;
CREATE INDEX agent_spans_instance ON agent_spans (account_id, agent_instance_id, id);
CREATE INDEX agent_spans_agent ON agent_spans (account_id, agent_id, id);
CREATE INDEX agent_spans_status ON agent_spans (account_id, status, id);
CREATE INDEX agent_spans_schema ON agent_spans (account_id, schema_name, id);
-- Only orphans are indexed by parent: the lookup runs on every span insert, and orphans are rare.
CREATE INDEX agent_spans_orphans ON agent_spans (account_id, parent_span_id) WHERE orphaned = 1;
CREATE TABLE idempotency (
    account_id TEXT NOT NULL,
    action TEXT NOT NULL,
    key TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (account_id, action, key)
) WITHOUT ROWID;
"""

# Instance responses carry span counts by status; without status in an index, counting
# read every span row of the instance (hundreds of milliseconds for a large run, on
# every instance start or finish).
_SPAN_COUNTS_INDEX = """
CREATE INDEX agent_spans_instance_status ON agent_spans (account_id, agent_instance_id, status);
"""

# Issue 10: the first characters of every token were kept in plain text (with a short
# chosen token, enough to recover it); failed authentications are counted per client
# to slow down guessing.
_TOKEN_HARDENING = """
ALTER TABLE tokens DROP COLUMN prefix;
CREATE TABLE auth_failures (
    client TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start REAL NOT NULL
);
"""

# The viewer's run list sorts (and keyset-pages) by start time, the insert time for a
# run never started. (PostgreSQL's migration of this name also indexes spans by update
# time for the live run page; SQLite's reads name their span index with INDEXED BY.)
_VIEWER_INDEXES = """
CREATE INDEX agent_instances_started_or_inserted
    ON agent_instances (account_id, COALESCE(started_at, inserted_at), id);
"""

# Issue 17: every span insert paid for three account-wide indexes (by agent, status and
# schema name) that only the API's span list filtered without an instance uses: about a
# third of a bulk insert's time (the table and its other indexes are keyed by random or
# time-ordered ids; these three by a handful of values). Such a list now walks the
# account's spans in id order (a page of a common value is found early, its total
# counts the account's spans); lists by instance, the viewer and the instance counts keep
# their indexes. PostgreSQL keeps its (several processes, a planner with statistics).
_LEANER_SPAN_INDEXES = """
DROP INDEX agent_spans_agent;
DROP INDEX agent_spans_status;
DROP INDEX agent_spans_schema;
"""

# Issue 17: a span create terminal at once, keyed "c-" + the span id (our SDK), keeps no
# idempotency row: the span says so itself (storage/sqlite/idempotency.py).
_KEYED_CREATES = """
ALTER TABLE agent_spans ADD COLUMN keyed_create INTEGER NOT NULL DEFAULT 0;
"""

# Issue 17: spans were indexed by instance twice, by (instance, id) for lists and by
# (instance, status) for the counts by status; every insert paid for both B-trees. One
# index by (instance, id, status) serves both: lists walk it in id order, and counts read
# the status from it without the table (the same entries a count over the old index read;
# a count of one status now reads all the run's entries, as a count of all spans did).
_ONE_SPAN_INDEX_BY_INSTANCE = """
DROP INDEX agent_spans_instance_status;
DROP INDEX agent_spans_instance;
CREATE INDEX agent_spans_instance ON agent_spans (account_id, agent_instance_id, id, status);
"""

# OTLP exports kept until their spans are stored (storage/journal.py). AUTOINCREMENT:
# ids never come back, so their order is the order of arrival.
_OTLP_JOURNAL = """
CREATE TABLE otlp_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    media TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at TEXT NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", _INITIAL),
    Migration("0002_span_counts_index", _SPAN_COUNTS_INDEX),
    Migration("0003_token_hardening", _TOKEN_HARDENING),
    Migration("0004_viewer_indexes", _VIEWER_INDEXES),
    Migration("0005_leaner_span_indexes", _LEANER_SPAN_INDEXES),
    Migration("0006_keyed_span_creates", _KEYED_CREATES),
    Migration("0007_one_span_index_by_instance", _ONE_SPAN_INDEX_BY_INSTANCE),
    Migration("0008_otlp_journal", _OTLP_JOURNAL),
)


def apply_migrations(conn: sqlite3.Connection, now: str) -> list[str]:
    """Apply the migrations the database lacks, in order.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).
        now: The time recorded for each applied migration.

    Returns:
        The names of the migrations applied now.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied: list[str] = []
    for migration in MIGRATIONS:
        if migration.name in done:
            continue
        if migration.transactional:
            # executescript commits first, so the transaction is opened inside the script.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                f"INSERT INTO schema_migrations VALUES ('{migration.name}', '{now}');\nCOMMIT;"
            )
        else:
            conn.executescript(migration.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (migration.name, now))
        applied.append(migration.name)
    return applied
