"""Models of agent spans (wire protocol 2.8, 2.9, 2.13)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from prefactor_http.models.types import AgentStatus, FinishStatus

__all__ = ["AgentSpan", "CreateAgentSpanRequest", "FinishSpanRequest"]


class AgentSpan(BaseModel):
    """A span as the API returns it; unknown fields are ignored.

    Example:
        >>> span = AgentSpan.model_validate({"type": "agent_span", "id": "spn_1",
        ...     "agent_instance_id": "ins_1", "schema_name": "agent:llm", "status": "active"})
        >>> span.payload
        {}
    """

    type: Literal["agent_span"]
    id: str
    account_id: str | None = None
    agent_id: str | None = None
    agent_instance_id: str
    parent_span_id: str | None = None
    schema_name: str
    schema_title: str | None = None
    status: AgentStatus
    # Defaults to {} when the key is absent, but an explicit null is a contract error.
    payload: dict[str, Any] = Field(default_factory=dict)
    result_payload: dict[str, Any] | None = None
    summary: str | None = None
    started_at: datetime | None = None
    inserted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None


class CreateAgentSpanRequest(BaseModel):
    """The ``details`` of a span-create body (the client builds it as a plain dict).

    Example:
        >>> CreateAgentSpanRequest(agent_instance_id="ins_1", schema_name="agent:llm",
        ...     status="active").model_dump(exclude_none=True)["payload"]
        {}
    """

    agent_instance_id: str
    schema_name: str
    status: AgentStatus
    payload: dict[str, Any] = Field(default_factory=dict)
    result_payload: dict[str, Any] | None = None
    id: str | None = None
    parent_span_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    idempotency_key: str | None = None


class FinishSpanRequest(BaseModel):
    """A span-finish body; null fields are left out when sent.

    Example:
        >>> FinishSpanRequest(status="complete").model_dump(exclude_none=True)
        {'status': 'complete'}
    """

    status: FinishStatus | None = None
    result_payload: dict[str, Any] | None = None
    timestamp: str | None = None
    idempotency_key: str | None = None
