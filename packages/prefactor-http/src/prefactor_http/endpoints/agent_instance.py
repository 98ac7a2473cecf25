"""``AgentInstanceClient`` (published import path ``prefactor_http.endpoints.agent_instance``)."""

from __future__ import annotations

from prefactor_http._resources.agent_instances import AgentInstanceClient

__all__ = ["AgentInstanceClient"]
