"""The rows storage returns and stores: one ``TypedDict`` per resource table.

A row is a plain dict at run time (no conversion on the write path, and the API renders
it as it is); the types only tell mypy which keys each holds. Keys are the table's
columns; JSON columns are decoded (``payload``, ``result_payload``, ``body``,
``quality_*``, ``runtime_environment``) and a span's ``orphaned`` is a bool.

Partial changes (``update_*``) stay ``dict[str, Any]`` (:data:`Fields`): any subset of
the columns.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "NEW_SPAN_COLUMNS",
    "AgentRow",
    "AgentVersionRow",
    "DeploymentRow",
    "EnvironmentRow",
    "Fields",
    "InstanceRow",
    "NewSpan",
    "NewToken",
    "RunRow",
    "SchemaVersionRow",
    "SpanRow",
    "SpanViewRow",
    "TokenRow",
    "new_span",
]

Fields = dict[str, Any]
"""Some columns of a row and their new values (the ``update_*`` methods)."""


class TokenRow(TypedDict):
    """An API token as listed (never its hash)."""

    id: str
    account_id: str
    name: str
    inserted_at: str
    revoked_at: str | None


class NewToken(TypedDict):
    """A token to store: its hash, never the plain token."""

    id: str
    account_id: str
    name: str
    token_hash: str
    inserted_at: str


class EnvironmentRow(TypedDict):
    """An environment of an account."""

    account_id: str
    id: str
    name: str
    inserted_at: str


class AgentRow(TypedDict):
    """An agent (``deleted_at`` set: soft-deleted, never returned by the reads)."""

    account_id: str
    id: str
    name: str
    description: str | None
    external_identifier: str | None
    owner_person_id: str | None
    risk_profile_id: str | None
    team_id: str | None
    status: str
    deleted_at: str | None
    inserted_at: str
    updated_at: str


class AgentVersionRow(TypedDict):
    """A version of an agent, by its identifier within the agent."""

    account_id: str
    id: str
    agent_id: str
    external_identifier: str
    name: str | None
    description: str | None
    runtime_environment: Any
    inserted_at: str


class SchemaVersionRow(TypedDict):
    """A schema version; ``body`` holds the normalised span and quality types."""

    account_id: str
    id: str
    agent_id: str
    external_identifier: str
    body: dict[str, Any]
    inserted_at: str


class DeploymentRow(TypedDict):
    """The deployment of an agent in an environment."""

    account_id: str
    id: str
    agent_id: str
    environment_id: str
    current_version_id: str | None
    inserted_at: str


class InstanceRow(TypedDict):
    """An agent instance (a run)."""

    account_id: str
    id: str
    agent_id: str
    agent_version_id: str
    environment_id: str
    agent_deployment_id: str
    schema_version_id: str
    status: str
    purpose: str
    external_identifier: str | None
    termination_reason: str | None
    quality_payloads: dict[str, Any]
    quality_summaries: dict[str, Any]
    started_at: str | None
    finished_at: str | None
    inserted_at: str
    updated_at: str


class RunRow(InstanceRow):
    """An instance in the viewer's run list, with the value it is sorted and paged by."""

    sort_key: Any


class SpanRow(TypedDict):
    """A span. ``orphaned``: its parent id names no span of its instance (yet)."""

    account_id: str
    id: str
    agent_instance_id: str
    agent_id: str
    parent_span_id: str | None
    orphaned: bool
    schema_name: str
    schema_title: str | None
    status: str
    payload: Any
    result_payload: Any
    summary: str | None
    started_at: str | None
    finished_at: str | None
    inserted_at: str
    updated_at: str


NewSpan = tuple[
    str,
    str,
    str,
    str,
    str | None,
    int,
    str,
    str | None,
    str,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    str,
    str,
]
"""A new span as a tuple of its column values (:data:`NEW_SPAN_COLUMNS`), the payloads as
their JSON text and ``orphaned`` as 0 or 1: what the bulk fast path builds straight from
a request item and a backend inserts without a dict in between."""

NEW_SPAN_COLUMNS = (
    "account_id", "id", "agent_instance_id", "agent_id", "parent_span_id", "orphaned",
    "schema_name", "schema_title", "status", "payload", "result_payload", "summary",
    "started_at", "finished_at", "inserted_at", "updated_at",
)  # fmt: skip
"""The columns of a :data:`NewSpan`, in order."""


def new_span(record: SpanRow, payload: str, result: str | None) -> NewSpan:
    """The :data:`NewSpan` of ``record``, its payloads given as JSON text."""
    r = record
    return (
        r["account_id"], r["id"], r["agent_instance_id"], r["agent_id"], r["parent_span_id"],
        int(r["orphaned"]), r["schema_name"], r["schema_title"], r["status"], payload, result,
        r["summary"], r["started_at"], r["finished_at"], r["inserted_at"], r["updated_at"],
    )  # fmt: skip


class SpanViewRow(TypedDict):
    """A span as the viewer's tree reads it: payloads only where they may hold LLM facts
    (or, for the result, the span failed or was cancelled), else None."""

    id: str
    parent_span_id: str | None
    schema_name: str
    schema_title: str | None
    status: str
    summary: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str
    payload: Any
    result_payload: Any
