"""``AgentInstanceClient`` (published import path ``prefactor_http.endpoints.agent_instance``,
with the models and the error it uses, importable from here as published)."""

from __future__ import annotations

from prefactor_http._resources.agent_instances import AgentInstanceClient
from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.agent_instance import (
    AgentInstance,
    AgentInstanceRecordQuality,
    FinishInstanceRequest,
)
from prefactor_http.models.base import ApiResponse

__all__ = [
    "AgentInstance",
    "AgentInstanceClient",
    "AgentInstanceRecordQuality",
    "ApiResponse",
    "FinishInstanceRequest",
    "PrefactorResponseContractError",
]
