"""Local records of agent instances and spans."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AgentInstance", "Span"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AgentInstance:
    """One run of an agent, as this client knows it.

    Attributes:
        id: The instance id.
        agent_id: The agent this is a run of.
        status: ``pending``, ``active``, ``complete``, ``failed`` or ``cancelled``.
        created_at: When it was registered.
        started_at: When it started, if it has.
        finished_at: When it finished, if it has.
        metadata: Anything else worth keeping with it.
        purpose: ``live``, ``smoke_test`` or ``eval``, if given at registration.
        quality_payloads: Quality records by name (``record_quality``), if any.
    """

    id: str
    agent_id: str
    status: str = "pending"
    purpose: str | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    quality_payloads: dict[str, dict[str, Any]] | None = None


@dataclass
class Span:
    """One unit of work inside an agent instance (an LLM call, a tool call, ...).

    Attributes:
        id: The span id.
        instance_id: The agent instance it belongs to.
        schema_name: Its span type, e.g. ``agent:llm``.
        parent_span_id: The enclosing span, if nested.
        status: ``pending``, ``active``, ``complete``, ``failed`` or ``cancelled``.
        payload: Its params.
        created_at: When it was prepared.
        started_at: When it started.
        finished_at: When it finished.
    """

    id: str
    instance_id: str
    schema_name: str
    parent_span_id: str | None = None
    status: str = "pending"
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
