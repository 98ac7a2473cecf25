"""Operations: the units of work the client queues for background delivery."""

from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
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


class Operation:
    """One queued write, with everything needed to send it.

    Operations are immutable; the delivery engine may replace one with a merged
    operation (a span create that already carries its finish) but never edits one.
    The ``idempotency_key`` stays the same for the operation's whole life, so every
    retry of it is recognised by the server as the same request.

    (A hand-written slotted class rather than a generated frozen dataclass: the SDK makes
    two of these per span on the agent's path, and this is four times cheaper to build.
    It still is a frozen dataclass to the ``dataclasses`` module, as published:
    ``dataclasses.replace``, ``asdict``, ``fields`` and ``is_dataclass`` work.)

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

    __slots__ = ("_created", "_key", "_key_prefix", "metadata", "payload", "type")

    type: OperationType
    payload: dict[str, Any]
    metadata: dict[str, Any]
    _created: datetime | float
    _key: str | None
    _key_prefix: str | None

    def __init__(
        self,
        type: OperationType,
        payload: dict[str, Any],
        timestamp: datetime | float,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        _set_type(self, type)
        _set_payload(self, payload)
        # The SDK passes a Unix time (cheap); the datetime is made only when read.
        _set_created(self, timestamp)
        _set_key(self, idempotency_key)
        _set_key_prefix(self, None)
        _set_metadata(self, {} if metadata is None else metadata)

    @property
    def idempotency_key(self) -> str | None:
        """The key the server uses to recognise retries of this operation."""
        prefix = self._key_prefix
        return self._key if prefix is None else prefix + (self._key or "")

    @property
    def timestamp(self) -> datetime:
        """When the operation was created (timezone-aware)."""
        created = self._created
        if isinstance(created, datetime):
            return created
        return datetime.fromtimestamp(created, UTC)

    def replace(self, **changes: Any) -> Operation:
        """Return a copy with the given fields changed (like ``dataclasses.replace``)."""
        fields: dict[str, Any] = {
            "type": self.type,
            "payload": self.payload,
            "timestamp": self._created,
            "idempotency_key": self.idempotency_key,
            "metadata": self.metadata,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Operation has no field(s) {sorted(unknown)}")
        fields.update(changes)
        return Operation(**fields)

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: operations are immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: operations are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Operation):
            return NotImplemented
        return (
            self.type is other.type
            and self.payload == other.payload
            and self.timestamp == other.timestamp
            and self.idempotency_key == other.idempotency_key
            and self.metadata == other.metadata
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the dataclass it replaces

    def __repr__(self) -> str:
        return (
            f"Operation(type={self.type}, payload={self.payload!r}, "
            f"timestamp={self.timestamp!r}, idempotency_key={self.idempotency_key!r}, "
            f"metadata={self.metadata!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            Operation,
            (self.type, self.payload, self._created, self.idempotency_key, dict(self.metadata)),
        )


# What makes Operation a frozen dataclass to the ``dataclasses`` module: the field
# descriptions of a generated dataclass with the same fields, in the same order.
_shape = dataclasses.make_dataclass(
    "Operation",
    [
        ("type", OperationType),
        ("payload", dict[str, Any]),
        ("timestamp", datetime),
        ("idempotency_key", str | None, dataclasses.field(default=None)),
        ("metadata", dict[str, Any], dataclasses.field(default_factory=dict)),
    ],
    frozen=True,
)
for _name in ("__dataclass_fields__", "__dataclass_params__"):
    setattr(Operation, _name, getattr(_shape, _name))
del _shape, _name

# The slots' own setters, which bypass the __setattr__ that makes instances immutable.
_set_type = Operation.__dict__["type"].__set__
_set_payload = Operation.__dict__["payload"].__set__
_set_created = Operation.__dict__["_created"].__set__
_set_key = Operation.__dict__["_key"].__set__
_set_key_prefix = Operation.__dict__["_key_prefix"].__set__
# Shared by the operations the SDK makes without metadata; never mutated.
_NO_METADATA: dict[str, Any] = {}
_new = Operation.__new__


def derived_operation(
    type: OperationType,
    payload: dict[str, Any],
    timestamp: float,
    prefix: str,
    base: str,
    metadata: dict[str, Any] | None = None,
    cls: type[Operation] = Operation,
) -> Operation:
    """An operation whose key is ``prefix + base`` (a unique id), built only when read.

    Spans get their keys from their ids, so the agent's path (which calls this twice a
    span) need not build a key string per operation. ``cls``: ``Operation`` or a
    subclass of the engine's with more slots (which the caller fills).
    """
    op = _new(cls)
    _set_type(op, type)
    _set_payload(op, payload)
    _set_created(op, timestamp)
    _set_key(op, base)
    _set_key_prefix(op, prefix)
    _set_metadata(op, _NO_METADATA if metadata is None else metadata)
    return op


_set_metadata = Operation.__dict__["metadata"].__set__
