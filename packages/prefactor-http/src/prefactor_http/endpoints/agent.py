"""``AgentClient`` (published import path ``prefactor_http.endpoints.agent``)."""

from __future__ import annotations

from prefactor_http._resources.agents import AgentClient

__all__ = ["AgentClient"]
