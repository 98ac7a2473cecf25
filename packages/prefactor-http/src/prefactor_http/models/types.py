"""Literal types shared by the models and the endpoint signatures."""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["AgentStatus", "FinishStatus", "InstancePurpose"]

AgentStatus: TypeAlias = Literal[
    "pending", "active", "complete", "failed", "cancelled", "terminated"
]
"""Status of an agent instance or span."""

FinishStatus: TypeAlias = Literal["complete", "failed", "cancelled"]
"""Status a caller may finish an instance or span with."""

InstancePurpose: TypeAlias = Literal["live", "smoke_test", "eval"]
"""Why an agent instance ran; the API assumes ``"live"`` when omitted."""
