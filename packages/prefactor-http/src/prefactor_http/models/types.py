"""Literal types shared by the models and the endpoint signatures, and the API's names.

The status and bulk action names are spelled here once, as constants, for the three
packages (the SDK sends them, the local server checks and stores them)::

    from prefactor_http.models.types import ACTION_CREATE_SPAN, STATUS_ACTIVE

    item = {"_type": ACTION_CREATE_SPAN, "status": STATUS_ACTIVE, ...}
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

__all__ = [
    "ACTION_CREATE_SPAN",
    "ACTION_FINISH_INSTANCE",
    "ACTION_FINISH_SPAN",
    "ACTION_RECORD_QUALITY",
    "ACTION_REGISTER_INSTANCE",
    "ACTION_START_INSTANCE",
    "BULK_ACTION_NAMES",
    "FINISH_STATUSES",
    "INSTANCE_STATUSES",
    "OPEN_STATUSES",
    "SPAN_STATUSES",
    "STATUS_ACTIVE",
    "STATUS_CANCELLED",
    "STATUS_COMPLETE",
    "STATUS_FAILED",
    "STATUS_PENDING",
    "STATUS_TERMINATED",
    "AgentStatus",
    "BulkActionName",
    "FinishStatus",
    "InstancePurpose",
]

AgentStatus: TypeAlias = Literal[
    "pending", "active", "complete", "failed", "cancelled", "terminated"
]
"""Status of an agent instance or span."""

FinishStatus: TypeAlias = Literal["complete", "failed", "cancelled"]
"""Status a caller may finish an instance or span with."""

InstancePurpose: TypeAlias = Literal["live", "smoke_test", "eval"]
"""Why an agent instance ran; the API assumes ``"live"`` when omitted."""

BulkActionName: TypeAlias = Literal[
    "agent_instances/register",
    "agent_instances/start",
    "agent_instances/finish",
    "agent_instances/record_quality",
    "agent_spans/create",
    "agent_spans/finish",
]
"""The ``_type`` of a ``POST /api/v1/bulk`` item."""

# -- statuses -----------------------------------------------------------------------

STATUS_PENDING: Final = "pending"
"""Registered (an instance) or created before it started (a span)."""
STATUS_ACTIVE: Final = "active"
"""Started, not finished."""
STATUS_COMPLETE: Final = "complete"
"""Finished successfully."""
STATUS_FAILED: Final = "failed"
"""Finished with an error."""
STATUS_CANCELLED: Final = "cancelled"
"""Finished by being called off (the only way out of ``pending`` for a span)."""
STATUS_TERMINATED: Final = "terminated"
"""An instance stopped by the platform (never sent by a client)."""

FINISH_STATUSES: Final[tuple[FinishStatus, ...]] = (
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_CANCELLED,
)
"""The statuses a client may finish an instance or a span with."""
OPEN_STATUSES: Final[tuple[AgentStatus, ...]] = (STATUS_PENDING, STATUS_ACTIVE)
"""The statuses of an instance or span that has not finished."""
SPAN_STATUSES: Final[tuple[AgentStatus, ...]] = (*OPEN_STATUSES, *FINISH_STATUSES)
"""Every status a span can have, in lifecycle order."""
INSTANCE_STATUSES: Final[tuple[AgentStatus, ...]] = (*SPAN_STATUSES, STATUS_TERMINATED)
"""Every status an agent instance can have, in lifecycle order."""

# -- bulk actions ---------------------------------------------------------------------

ACTION_REGISTER_INSTANCE: Final = "agent_instances/register"
ACTION_START_INSTANCE: Final = "agent_instances/start"
ACTION_FINISH_INSTANCE: Final = "agent_instances/finish"
ACTION_RECORD_QUALITY: Final = "agent_instances/record_quality"
ACTION_CREATE_SPAN: Final = "agent_spans/create"
ACTION_FINISH_SPAN: Final = "agent_spans/finish"

BULK_ACTION_NAMES: Final[tuple[BulkActionName, ...]] = (
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
    ACTION_FINISH_INSTANCE,
    ACTION_RECORD_QUALITY,
    ACTION_CREATE_SPAN,
    ACTION_FINISH_SPAN,
)
"""Every bulk action of the API's write endpoints, in the order the API lists them."""
