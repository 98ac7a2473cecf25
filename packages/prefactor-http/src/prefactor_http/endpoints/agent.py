"""``AgentClient`` (published import path ``prefactor_http.endpoints.agent``,
with the models and the error it uses, importable from here as published)."""

from __future__ import annotations

from prefactor_http._resources.agents import AgentClient
from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.agent import Agent, AgentForCreate, AgentForUpdate, AgentSummary
from prefactor_http.models.base import ApiResponse, ListResponse

__all__ = [
    "Agent",
    "AgentClient",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentSummary",
    "ApiResponse",
    "ListResponse",
    "PrefactorResponseContractError",
]
