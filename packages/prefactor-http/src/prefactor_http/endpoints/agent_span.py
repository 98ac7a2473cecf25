"""``AgentSpanClient`` (published import path ``prefactor_http.endpoints.agent_span``)."""

from __future__ import annotations

from prefactor_http._resources.agent_spans import AgentSpanClient

__all__ = ["AgentSpanClient"]
