"""The checks and shims the agent instance API applies to its arguments."""

from __future__ import annotations

from typing import Any

import orjson

from prefactor_core._payload import MARKER_KEY, PayloadEncoder
from prefactor_http.models.types import FINISH_STATUSES

__all__ = ["check_finish_status", "check_quality_name", "in_published_order", "masked_version"]


def check_quality_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"quality name must be a non-empty string, got {name!r}")


def check_finish_status(status: str) -> None:
    if status not in FINISH_STATUSES:
        raise ValueError(f"status must be one of {FINISH_STATUSES}, got {status!r}")


def masked_version(encoder: PayloadEncoder, agent_version: dict[str, Any]) -> dict[str, Any]:
    """The agent version through the masking hook; its ``name`` survives a failing hook."""
    masked: dict[str, Any] = orjson.loads(encoder.encode(agent_version, "agent version"))
    name = agent_version.get("name")
    if MARKER_KEY in masked and "name" not in masked and isinstance(name, str):
        masked["name"] = name
    return masked


def in_published_order(first: Any, second: Any, third: Any) -> tuple[Any, Any, Any]:
    """``register``'s first three arguments as (agent_version, agent_schema_version,
    agent_id), also when they came in the older order (agent_id, agent_version,
    agent_schema_version): only there is the first an id and the third a dict."""
    if (first is None or isinstance(first, str)) and isinstance(third, dict):
        return second, third, first
    return first, second, third
