"""What the dispatcher works with: the sender it calls, the answers it interprets, its
counters, and the bookkeeping of merged operations."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from prefactor_core._engine.optable import (
    CONFLICT_IS_DONE,
    FINISH_KEY_PREFIX,
    FINISHED_AT,
    INSTANCE_ID,
    MERGED_FINISH,
    RESULT_JSON,
    SPAN_ID,
    STATUS,
    TIMESTAMP,
)
from prefactor_core._engine.rendered import MERGED, SPAN, Rendered, finished_create
from prefactor_core.operations import Operation, OperationType
from prefactor_http.exceptions import PrefactorApiError, is_transient_http_error
from prefactor_http.models.types import STATUS_ACTIVE

__all__ = [
    "CONFLICT_IS_DONE",
    "ITEM_STATUS",
    "TRANSIENT_ITEM_CODES",
    "DeliveryStatistics",
    "ItemError",
    "Sender",
    "is_transient",
    "merged",
    "split",
    "weight",
]

# Error codes in bulk outputs that describe a passing condition, not a bad request.
TRANSIENT_ITEM_CODES = frozenset({"rate_limited", "unavailable", "internal_error", "timeout"})
# The HTTP status the single endpoint would have answered for a bulk item's error code.
ITEM_STATUS = {
    "unauthorized": 401,
    "bad_authtoken": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "request_too_large": 413,
    "validation_error": 422,
    "validation_errors": 422,
    "invalid_value": 422,
    "unknown_span_type": 422,
    "rate_limited": 429,
}


class Sender(Protocol):
    """What the dispatcher needs from the HTTP layer: one POST, one attempt."""

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        """POST ``body`` (JSON) to ``path`` and return the JSON object answered.

        Raises the ``prefactor_http`` errors for failures.
        """
        ...


class ItemError(PrefactorApiError):
    """A bulk item that the server answered with an error."""


class DeliveryStatistics(NamedTuple):
    """Counters of the delivery engine.

    Attributes:
        queued: Operations waiting (in the queue or in a lane).
        in_flight: Operations in requests that have not been answered yet.
        sent: Operations the server has acknowledged.
        retried: Operation attempts that failed transiently and were retried.
        dropped: Operations given up on (telemetry failure, full queue, close deadline,
            a refusal that could not be repaired).
        requests: HTTP requests made.
        failed_requests: HTTP requests that failed (transiently or not).
        rejected: Operations the API refused (re-sent with a marker, or dropped).
        truncated: Payloads cut to their size budget.
        unencodable: Payload values JSON cannot encode, sent as markers.
        mask_errors: Payloads replaced by a marker because the masking hook raised.
    """

    queued: int
    in_flight: int
    sent: int
    retried: int
    dropped: int
    requests: int
    failed_requests: int
    rejected: int = 0
    truncated: int = 0
    unencodable: int = 0
    mask_errors: int = 0


def is_transient(error: Exception) -> bool:
    return is_transient_http_error(error) or isinstance(error, TimeoutError | OSError)


def weight(op: Operation) -> int:
    """How many queued operations ``op`` stands for (a merged create stands for two)."""
    record = op.record if op.__class__ is Rendered else None
    if record is not None:
        return 2 if record[MERGED] else 1
    return 2 if MERGED_FINISH in op.metadata else 1


def merged(create: Operation, finish: Operation) -> Operation:
    """A span create that already carries its finish."""
    ending = finish.payload
    record = create.record if create.__class__ is Rendered else None
    if record is not None and not record[MERGED]:
        # Taken before its finish came: made and rendered as a record taken with it.
        status, result, at = ending[STATUS], ending.get(RESULT_JSON), ending.get(TIMESTAMP)
        if (
            type(at) is float
            and type(status) is str
            and (result is None or type(result) is str)
            and finish.idempotency_key == FINISH_KEY_PREFIX + record[SPAN]
        ):
            return finished_create(record, status, result, at)
    payload = create.payload.copy()
    payload[STATUS] = ending[STATUS]
    payload[RESULT_JSON] = ending.get(RESULT_JSON)
    payload[FINISHED_AT] = ending.get(TIMESTAMP)
    flags = create.metadata
    metadata = {MERGED_FINISH: finish.idempotency_key}
    return Operation(
        _CREATE,
        payload,
        create._created,
        create.idempotency_key,
        {**flags, **metadata} if flags else metadata,
    )


def split(op: Operation) -> tuple[Operation, Operation]:
    """The span create (``active``) and the finish a merged create (``merged``) stands
    for, each with its own idempotency key: for a request that takes one operation."""
    payload = op.payload.copy()
    status = payload.pop(STATUS)
    result = payload.pop(RESULT_JSON, None)
    at = payload.pop(FINISHED_AT, None)
    payload[STATUS] = STATUS_ACTIVE
    metadata = {k: v for k, v in op.metadata.items() if k != MERGED_FINISH}
    create = Operation(_CREATE, payload, op._created, op.idempotency_key, metadata)
    ending = {
        INSTANCE_ID: payload[INSTANCE_ID],
        SPAN_ID: payload[SPAN_ID],
        STATUS: status,
        RESULT_JSON: result,
        TIMESTAMP: at,
    }
    finish = Operation(
        _FINISH, ending, at if at is not None else op._created, op.metadata[MERGED_FINISH]
    )
    return create, finish


_CREATE = OperationType.CREATE_SPAN
_FINISH = OperationType.FINISH_SPAN
