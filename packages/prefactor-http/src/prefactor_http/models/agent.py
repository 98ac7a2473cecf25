"""Models of agents (wire protocol 2.10, 2.13)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeAlias

from pydantic import BaseModel

__all__ = [
    "Agent",
    "AgentAvailableActions",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstanceCounts",
    "AgentSummary",
]

AgentLifecycleStatus: TypeAlias = Literal["pending", "active", "dormant", "retired"]


class AgentAvailableActions(BaseModel):
    """Which lifecycle actions the agent's current status allows.

    Example:
        >>> AgentAvailableActions(retire=True).delete
        False
    """

    update: bool = False
    retire: bool = False
    reinstate: bool = False
    delete: bool = False


class AgentInstanceCounts(BaseModel):
    """Instance counts of an agent by status (``finished`` = complete + failed + cancelled).

    Example:
        >>> AgentInstanceCounts(total=2, active=2).finished
        0
    """

    total: int = 0
    pending: int = 0
    active: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    terminated: int = 0
    finished: int = 0


class Agent(BaseModel):
    """An agent as returned by create, get, update, show, retire, reinstate and delete.

    Example:
        >>> Agent.model_validate({"type": "agent", "id": "agt_1", "name": "Bot",
        ...     "status": "active"}).name
        'Bot'
    """

    type: Literal["agent"]
    id: str
    name: str
    description: str | None = None
    external_identifier: str | None = None
    status: AgentLifecycleStatus
    owner_person_id: str | None = None
    risk_profile_id: str | None = None
    team_id: str | None = None
    instance_counts: AgentInstanceCounts | None = None
    available_actions: AgentAvailableActions | None = None
    inserted_at: datetime | None = None
    updated_at: datetime | None = None


class AgentSummary(BaseModel):
    """An agent row of a list response (no risk profile, no counts).

    Example:
        >>> AgentSummary.model_validate({"type": "agent", "id": "agt_1", "name": "Bot",
        ...     "status": "retired"}).status
        'retired'
    """

    type: Literal["agent"]
    id: str
    name: str
    description: str | None = None
    external_identifier: str | None = None
    status: AgentLifecycleStatus
    owner_person_id: str | None = None
    team_id: str | None = None
    available_actions: AgentAvailableActions | None = None
    inserted_at: datetime | None = None
    updated_at: datetime | None = None


class AgentForCreate(BaseModel):
    """The fields of a new agent; null fields are left out of the request.

    Example:
        >>> AgentForCreate(name="Bot", external_identifier="bot").model_dump(exclude_none=True)
        {'name': 'Bot', 'external_identifier': 'bot'}
    """

    name: str
    description: str | None = None
    external_identifier: str | None = None
    id: str | None = None
    owner_person_id: str | None = None
    risk_profile_id: str | None = None
    team_id: str | None = None


class AgentForUpdate(BaseModel):
    """The fields to change on an agent; null fields are left out (kept as they are).

    ``external_identifier`` can only be set at creation.

    Example:
        >>> AgentForUpdate(description="v2").model_dump(exclude_none=True)
        {'description': 'v2'}
    """

    name: str | None = None
    description: str | None = None
    owner_person_id: str | None = None
    risk_profile_id: str | None = None
    team_id: str | None = None
