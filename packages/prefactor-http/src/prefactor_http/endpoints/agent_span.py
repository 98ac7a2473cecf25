"""``AgentSpanClient`` (published import path ``prefactor_http.endpoints.agent_span``,
with the models and the error it uses, importable from here as published)."""

from __future__ import annotations

from prefactor_http._resources.agent_spans import AgentSpanClient
from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.agent_span import AgentSpan, CreateAgentSpanRequest, FinishSpanRequest
from prefactor_http.models.base import ApiResponse

__all__ = [
    "AgentSpan",
    "AgentSpanClient",
    "ApiResponse",
    "CreateAgentSpanRequest",
    "FinishSpanRequest",
    "PrefactorResponseContractError",
]
