"""Operations: the units of work the client queues for background delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = ["Operation", "OperationType"]


class OperationType(Enum):
    """What an operation does; each type maps to one API write action."""

    REGISTER_AGENT_INSTANCE = 1
    START_AGENT_INSTANCE = 2
    FINISH_AGENT_INSTANCE = 3
    RECORD_QUALITY = 4
    CREATE_SPAN = 5
    FINISH_SPAN = 6


@dataclass(frozen=True, slots=True)
class Operation:
    """One queued write, with everything needed to send it.

    Operations are immutable; the delivery engine may replace one with a merged
    operation (a span create that already carries its finish) but never edits one.
    The ``idempotency_key`` stays the same for the operation's whole life, so every
    retry of it is recognised by the server as the same request.

    Example::

        from datetime import datetime, timezone
        op = Operation(
            type=OperationType.START_AGENT_INSTANCE,
            payload={"instance_id": "inst-1", "timestamp": 1767225600.0},
            timestamp=datetime.now(timezone.utc),
            idempotency_key="3f1c...",
        )

    Attributes:
        type: The operation's type.
        payload: Operation-specific data (ids, status, the JSON of params and results).
        timestamp: When the operation was created.
        idempotency_key: The key the server uses to recognise retries.
        metadata: Free-form extra data.
    """

    type: OperationType
    payload: dict[str, Any]
    timestamp: datetime
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
