"""The managers: agent instance lifecycle and span lifecycle."""

from prefactor_core.managers.agent_instance import AgentInstanceHandle, AgentInstanceManager
from prefactor_core.managers.span import SpanManager

__all__ = ["AgentInstanceHandle", "AgentInstanceManager", "SpanManager"]
