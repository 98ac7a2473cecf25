"""The resource clients (published import path ``prefactor_http.endpoints``)."""

from __future__ import annotations

from prefactor_http._resources.agent_instances import AgentInstanceClient
from prefactor_http._resources.agent_spans import AgentSpanClient
from prefactor_http._resources.agents import AgentClient
from prefactor_http._resources.bulk import BulkClient

__all__ = ["AgentClient", "AgentInstanceClient", "AgentSpanClient", "BulkClient"]
