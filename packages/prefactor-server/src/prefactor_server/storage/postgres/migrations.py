"""The PostgreSQL schema: the same named migrations as SQLite, in PostgreSQL's dialect.

Applied migrations are recorded in ``schema_migrations`` (name, applied_at), exactly as on
SQLite. Several server processes may start at once against one database: each takes a
session-level advisory lock before looking at ``schema_migrations``, so one applies what
is missing and the others wait, then find nothing left to do. Every migration runs in its
own transaction (PostgreSQL's DDL is transactional). Never edit a released migration:
append a new one with the same name on both backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "Migration", "apply_migrations", "pending_migrations"]

MIGRATION_LOCK = 0x70726566_6D696772  # "prefmigr": the advisory lock held while migrating


@dataclass(frozen=True)
class Migration:
    """One schema step: a unique name and its statements."""

    name: str
    sql: str


# Timestamps stay text in the API's one format (…T…Z, fixed width), as on SQLite: they
# sort correctly as text and round-trip exactly. Payloads are jsonb; PostgreSQL moves a
# large value out of line (TOAST) and compresses it, so counts, the run list and index
# scans never read it. A span's "orphaned" flag is not stored: it is derived on read from
# whether its parent exists, so two processes storing a parent and its child at the same
# moment cannot leave a stale flag behind.
_INITIAL = """
CREATE TABLE accounts (
    id text PRIMARY KEY,
    name text NOT NULL,
    partition integer NOT NULL,
    default_agent_id text,
    default_environment_id text NOT NULL,
    inserted_at text NOT NULL
);
CREATE TABLE tokens (
    id text PRIMARY KEY,
    account_id text NOT NULL,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    prefix text NOT NULL,
    inserted_at text NOT NULL,
    revoked_at text
);
CREATE TABLE environments (
    account_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    inserted_at text NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE TABLE agents (
    account_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text,
    external_identifier text,
    owner_person_id text,
    risk_profile_id text,
    team_id text,
    status text NOT NULL,
    deleted_at text,
    inserted_at text NOT NULL,
    updated_at text NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX agents_external_identifier
    ON agents (account_id, external_identifier) WHERE external_identifier IS NOT NULL;
CREATE TABLE agent_versions (
    account_id text NOT NULL,
    id text NOT NULL,
    agent_id text NOT NULL,
    external_identifier text NOT NULL,
    name text,
    description text,
    runtime_environment jsonb,
    inserted_at text NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, external_identifier)
);
CREATE TABLE schema_versions (
    account_id text NOT NULL,
    id text NOT NULL,
    agent_id text NOT NULL,
    external_identifier text NOT NULL,
    body jsonb NOT NULL,
    inserted_at text NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, external_identifier)
);
CREATE TABLE deployments (
    account_id text NOT NULL,
    id text NOT NULL,
    agent_id text NOT NULL,
    environment_id text NOT NULL,
    current_version_id text,
    inserted_at text NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, agent_id, environment_id)
);
CREATE TABLE agent_instances (
    account_id text NOT NULL,
    id text NOT NULL,
    agent_id text NOT NULL,
    agent_version_id text NOT NULL,
    environment_id text NOT NULL,
    agent_deployment_id text NOT NULL,
    schema_version_id text NOT NULL,
    status text NOT NULL,
    purpose text NOT NULL,
    external_identifier text,
    termination_reason text,
    quality_payloads jsonb NOT NULL DEFAULT '{}',
    quality_summaries jsonb NOT NULL DEFAULT '{}',
    started_at text,
    finished_at text,
    inserted_at text NOT NULL,
    updated_at text NOT NULL,
    PRIMARY KEY (account_id, id)
);
-- The run list: by account, filtered by agent or status, sorted by id (k-sortable: the
-- start order) or by one of the time columns.
CREATE INDEX agent_instances_agent ON agent_instances (account_id, agent_id, id);
CREATE INDEX agent_instances_status ON agent_instances (account_id, status, id);
CREATE INDEX agent_instances_inserted ON agent_instances (account_id, inserted_at, id);
CREATE INDEX agent_instances_updated ON agent_instances (account_id, updated_at, id);
CREATE INDEX agent_instances_started ON agent_instances (account_id, started_at, id);
CREATE INDEX agent_instances_finished ON agent_instances (account_id, finished_at, id);
CREATE TABLE agent_spans (
    account_id text NOT NULL,
    id text NOT NULL,
    agent_instance_id text NOT NULL,
    agent_id text NOT NULL,
    parent_span_id text,
    schema_name text NOT NULL,
    schema_title text,
    status text NOT NULL,
    payload jsonb NOT NULL,
    result_payload jsonb,
    summary text,
    started_at text,
    finished_at text,
    inserted_at text NOT NULL,
    updated_at text NOT NULL,
    PRIMARY KEY (account_id, id)
);
-- Spans of a run (the read API and the viewer), by parent (the tree), per filter.
CREATE INDEX agent_spans_instance ON agent_spans (account_id, agent_instance_id, id);
CREATE INDEX agent_spans_instance_started
    ON agent_spans (account_id, agent_instance_id, started_at, id);
CREATE INDEX agent_spans_parent ON agent_spans (account_id, parent_span_id)
    WHERE parent_span_id IS NOT NULL;
CREATE INDEX agent_spans_agent ON agent_spans (account_id, agent_id, id);
CREATE INDEX agent_spans_status ON agent_spans (account_id, status, id);
CREATE INDEX agent_spans_schema ON agent_spans (account_id, schema_name, id);
CREATE INDEX agent_spans_started ON agent_spans (account_id, started_at, id);
-- Spans arrive in bursts and are read soon after: vacuum (the visibility map that lets
-- counts use the index alone) and analyze (fresh row estimates) after 2% new rows, not
-- PostgreSQL's default 20%.
ALTER TABLE agent_spans SET (
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
CREATE TABLE idempotency (
    account_id text NOT NULL,
    action text NOT NULL,
    key text NOT NULL,
    status integer NOT NULL,
    body bytea NOT NULL,
    inserted_at text NOT NULL,
    PRIMARY KEY (account_id, action, key)
);
"""

# Span counts per status of an instance, answered from the index alone.
_SPAN_COUNTS_INDEX = """
CREATE INDEX agent_spans_instance_status ON agent_spans (account_id, agent_instance_id, status);
"""

# Issue 10: no plain-text token prefix; failed authentications counted per client, in a
# table every server process shares (the window_start index serves the clean-up of ended
# windows on every failure).
_TOKEN_HARDENING = """
ALTER TABLE tokens DROP COLUMN prefix;
CREATE TABLE auth_failures (
    client text PRIMARY KEY,
    failures integer NOT NULL,
    window_start double precision NOT NULL
);
CREATE INDEX auth_failures_window ON auth_failures (window_start);
"""

# Issue 16's viewer: the run list sorted (and keyset-paged) by start time, which is the
# insert time for a run never started (also within one agent or one status: the list's
# filters); a live run page polling for spans updated since its last look.
_VIEWER_INDEXES = """
CREATE INDEX agent_instances_started_or_inserted
    ON agent_instances (account_id, (COALESCE(started_at, inserted_at)), id);
CREATE INDEX agent_instances_agent_started_or_inserted
    ON agent_instances (account_id, agent_id, (COALESCE(started_at, inserted_at)), id);
CREATE INDEX agent_instances_status_started_or_inserted
    ON agent_instances (account_id, status, (COALESCE(started_at, inserted_at)), id);
CREATE INDEX agent_spans_instance_updated
    ON agent_spans (account_id, agent_instance_id, updated_at, id);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", _INITIAL),
    Migration("0002_span_counts_index", _SPAN_COUNTS_INDEX),
    Migration("0003_token_hardening", _TOKEN_HARDENING),
    Migration("0004_viewer_indexes", _VIEWER_INDEXES),
)

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at text NOT NULL)"
)


def pending_migrations(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Return the names of the migrations the database lacks (no lock, no changes)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    done: set[str] = set()
    if exists is not None and exists[0]:
        done = {str(row[0]) for row in conn.execute("SELECT name FROM schema_migrations")}
    conn.rollback()
    return [migration.name for migration in MIGRATIONS if migration.name not in done]


def apply_migrations(conn: psycopg.Connection[tuple[object, ...]], now: str) -> list[str]:
    """Apply the missing migrations under the migration advisory lock.

    Args:
        conn: A connection not inside a transaction (autocommit off).
        now: The time recorded for each applied migration.

    Returns:
        The names applied by this call (empty when another process got there first).
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.commit()
        with conn.transaction():
            conn.execute(_TABLE)
        done = {str(row[0]) for row in conn.execute("SELECT name FROM schema_migrations")}
        conn.commit()
        applied: list[str] = []
        for migration in MIGRATIONS:
            if migration.name in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)",
                    (migration.name, now),
                )
            applied.append(migration.name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        conn.commit()
