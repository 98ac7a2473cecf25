"""What the engine does when the API refuses one operation (issue 10).

A refusal of one item is not a failure of telemetry. Only an answer that makes *all*
further delivery impossible is fatal and latched as ``PrefactorTelemetryFailureError``:
a missing, wrong or revoked token (401) or a forbidden account (403). Anything else that
the server refuses (422 for params that do not match the span type's schema or for an
unknown span type, 413 for a payload that is too large, 404 for a span whose create was
refused, 400 ...) is reported once per kind with the server's error, counted in
``statistics().rejected``, and then:

* a span create is re-sent with the refused payload (params, result, or both) replaced
  by a small marker naming the error, so the span, its children and its finish still
  arrive; if that is refused too, the span is dropped (its children are kept by the
  server, marked as orphans);
* a span finish is re-sent with its result replaced by a marker, then without a result;
* a quality record is re-sent with a marker as its payload, then dropped;
* a refused register drops the instance's operations (it does not exist on the server);
* anything else is dropped.

Every re-sent operation keeps its idempotency key (the server stores successes only),
so a replay of a repaired create is still recognised as the same span.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from prefactor_core._engine.optable import PAYLOAD_JSON, REPAIR, RESULT_JSON, TABLE
from prefactor_core._payload import marker
from prefactor_core.operations import Operation, OperationType
from prefactor_http.exceptions import PrefactorApiError

__all__ = ["Rejections", "blamed_item", "is_fatal"]

logger = logging.getLogger("prefactor_core.delivery")

_FATAL_STATUSES = frozenset({401, 403})
_MESSAGE_CHARS = 300
_ITEM_FIELD = re.compile(r"^items[.\[](\d+)")
_TOO_LARGE = frozenset({"request_too_large", "payload_too_large"})
# Refusals of what an operation carries (its payloads), which a marker can repair.
_REPAIRABLE = frozenset({400, 413, 422})


def is_fatal(error: BaseException) -> bool:
    """True for an answer that makes every further request fail (401, 403)."""
    return isinstance(error, PrefactorApiError) and error.status_code in _FATAL_STATUSES


def blamed_item(error: PrefactorApiError) -> int | None:
    """The index of the bulk item a whole-request error names (``items.3.field``), if any."""
    for key in error.errors or {}:
        match = _ITEM_FIELD.match(str(key))
        if match:
            return int(match.group(1))
    return None


def _blames(error: PrefactorApiError) -> tuple[bool, bool]:
    """Whether the error is about (params, result); both when it does not say."""
    if error.status_code == 413 or error.code in _TOO_LARGE:
        return True, True
    names = [str(k) for k in error.errors or {}] or [error.message]
    params = any(n.startswith(("payload", "details.payload")) for n in names)
    result = any(n.startswith(("result_payload", "details.result_payload")) for n in names)
    if not params and not result:
        return True, True
    return params, result


class Rejections:
    """Reports and repairs refused operations; see the module docstring.

    Attributes:
        count: How many refusals there were (each attempt that was refused counts).
    """

    def __init__(self) -> None:
        self.count = 0
        self._warned: set[tuple[OperationType, str]] = set()

    def repair(self, op: Operation, error: PrefactorApiError) -> Operation | None:
        """Count and report the refusal of ``op``; return what to send instead, or None."""
        self.count += 1
        attempt: int = op.metadata.get(REPAIR, 0)
        replacement = self._repaired(op, error, attempt)
        self._report(op, error, replacement)
        return replacement

    def _repaired(self, op: Operation, error: PrefactorApiError, attempt: int) -> Operation | None:
        if error.status_code not in _REPAIRABLE:
            return None  # 404 (e.g. the finish of a span whose create was refused), 409 ...
        kind = op.type
        note = _marker_json(error)
        payload = dict(op.payload)
        if kind is OperationType.CREATE_SPAN:
            if attempt >= 2 or error.code == "unknown_span_type":
                return None
            params, result = _blames(error)
            if params:
                payload[PAYLOAD_JSON] = note
            if result and payload.get(RESULT_JSON) is not None:
                payload[RESULT_JSON] = note
        elif kind is OperationType.FINISH_SPAN:
            if payload.get(RESULT_JSON) is None or attempt >= 2:
                return None
            payload[RESULT_JSON] = note if attempt == 0 else None
        elif kind is OperationType.RECORD_QUALITY:
            if attempt >= 1:
                return None
            payload[PAYLOAD_JSON] = note
        else:
            return None
        if payload == op.payload:
            return None  # nothing left to replace: it would be refused again
        return Operation(
            op.type,
            payload,
            op._created,
            op.idempotency_key,
            {**op.metadata, REPAIR: attempt + 1},
        )

    def _report(
        self, op: Operation, error: PrefactorApiError, replacement: Operation | None
    ) -> None:
        if replacement is not None:
            outcome = "it is re-sent with a marker in place of what was refused"
        elif op.type is OperationType.REGISTER_AGENT_INSTANCE:
            outcome = "the instance's operations are dropped"
        else:
            outcome = "it is dropped"
        kind = (op.type, error.code)
        log = logger.debug if kind in self._warned else logger.warning
        self._warned.add(kind)
        log(
            "the Prefactor API refused %s (%s %s: %s); %s. Telemetry goes on. (Logged once "
            "per kind of refusal; statistics().rejected counts them.)",
            TABLE[op.type].describes,
            error.status_code,
            error.code,
            _short(error.message),
            outcome,
        )


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "…"


def _marker_json(error: PrefactorApiError) -> str:
    details: dict[str, Any] = {"code": error.code, "message": _short(error.message)}
    if error.status_code == 413:
        details["status"] = 413
    return orjson.dumps(marker("rejected", **details)).decode()
