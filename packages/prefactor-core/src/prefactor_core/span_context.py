"""SpanContext: one span's lifecycle, on the agent's hot path.

Every method here runs in the agent's own task, so each does only local, constant-time
work: it takes a timestamp, JSON-encodes the params or result once (which checks them
and snapshots them), and puts an operation on the queue. Nothing waits for the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from prefactor_core._engine.jsontext import _OPTIONS, _dumps
from prefactor_core._open_spans import FINISHED, PREPARED, STARTED, OpenSpan, SpanTable
from prefactor_core._payload import _DEFAULT, PayloadEncoder, _known
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.operations import Operation
from prefactor_core.utils import generate_idempotency_key as generate_idempotency_key
from prefactor_http.models.types import (
    FINISH_STATUSES,
    STATUS_ACTIVE,
    STATUS_CANCELLED,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_PENDING,
    FinishStatus,
)

__all__ = ["FinishStatus", "SpanContext"]


class _TableOwner(Protocol):
    """What a span needs from the manager that opens it: the table of open spans."""

    table: SpanTable


def encode_payload(data: object, what: str, encoder: PayloadEncoder | None = None) -> str:
    """JSON-encode a params or result payload (see ``prefactor_core._payload``).

    Values JSON has no type for are encoded as users expect, or become markers; only a
    payload that is not a JSON object raises.

    Raises:
        TypeError: If ``data`` does not encode as a JSON object.
    """
    return (encoder or _DEFAULT).encode(data, what)


def _encode(encoder: PayloadEncoder, data: object, what: str, budget: int) -> str:
    """``encoder.encode`` with the fast path for plain dicts inlined."""
    if data.__class__ is dict and encoder.mask is None:
        try:
            raw = _dumps(data, default=_known, option=_OPTIONS)
        except TypeError:
            return encoder.encode(data, what, budget)
        if len(raw) <= encoder.max_field_bytes and len(raw) <= budget:
            return raw.decode()
        return encoder.fit(raw, what, budget)
    return encoder.encode(data, what, budget)


def _check_mapping(data: object, what: str) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} must be a dict (a JSON object), got {type(data).__name__}")


def to_timestamp(value: datetime | None, what: str) -> float | None:
    """Convert an aware datetime to a Unix timestamp; None stays None."""
    if value is None:
        return None
    return aware_timestamp(value, what)


def aware_timestamp(value: datetime, what: str) -> float:
    """Convert an aware datetime to a Unix timestamp, refusing naive ones."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (the API rejects naive timestamps)")
    return value.timestamp()


class SpanContext(OpenSpan):
    """One span: a unit of work (an LLM call, a tool call, a retrieval) in an instance.

    Returned by ``instance.span()`` and ``client.span()``; use it as an async context
    manager. The lifecycle:

    1. **Enter**: the span gets its final id and becomes the current span of this task
       (the default parent of spans opened inside it). Nothing is sent.
    2. ``await span.start(params)``: the span is queued for creation as ``active``.
    3. ``await span.complete(result)`` / ``fail(result)`` / ``cancel()``: the span is
       queued to finish with that status.

    What is not called explicitly happens on exit: an unstarted span is started with
    the default payload (timed from when it was entered), and an unfinished one
    finishes as ``complete``, or as ``failed`` with the exception's type and message in
    its result when the block raised (the exception itself propagates unchanged).
    ``cancel()`` before ``start()`` records the span as ``pending`` then ``cancelled``.

    Example::

        async with instance.span("agent:llm") as span:
            await span.start({"model": "gpt-4", "prompt": "Hi"})
            response = await call_llm()
            await span.complete({"response": response})
    """

    __slots__ = ("_default_json", "_default_payload", "_entered", "_result", "_table")

    def __init__(
        self,
        temp_id: str,
        span_manager: _TableOwner,
        default_payload: dict[str, Any] | None = None,
        instance_id: str = "",
        schema_name: str = "",
        parent_span_id: str | None = None,
    ) -> None:
        # OpenSpan's fields, set here rather than through its __init__: one call less
        # per span on the agent's path.
        self._id = temp_id
        self._instance_id = instance_id
        self._schema_name = schema_name
        self._parent_id = parent_span_id
        self._parent = None
        self._state = PREPARED
        self._status = STATUS_COMPLETE
        self._prepared_at = 0.0
        self._params_bytes = 0
        self._released = False
        self._held = None
        self._waiting = None
        self._queued = 0
        table = self._table = span_manager.table
        self._default_payload = default_payload
        # Encoded once, when given: that checks it at the call and snapshots it.
        self._default_json = (
            None
            if default_payload is None
            else _encode(table.encoder, default_payload, "span payload", table.params_budget)
        )
        self._result: dict[str, Any] | None = None
        self._entered = False

    # -- identity (id, instance_id, schema_name, parent_span_id: see OpenSpan) -------

    @property
    def status(self) -> str:
        """``pending`` until started, ``active`` while running, then its final status."""
        if self._state == PREPARED:
            return STATUS_PENDING
        if self._state == STARTED:
            return STATUS_ACTIVE
        return self._status

    # -- context manager ------------------------------------------------------------

    async def __aenter__(self) -> SpanContext:
        self._enter_now()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            leftover = self._exit_now(exc)
            if leftover:
                await self._table.enqueue_all(leftover)
        except PrefactorTelemetryFailureError:
            # The user's own exception always wins over a telemetry error.
            if exc is None:
                self._table.failure_seen()
                raise

    # -- the synchronous core (the async methods and the sync faces share it) ------------
    #
    # Each returns the operations it could not queue without waiting (a full or custom
    # queue), in order, or None: the async methods await them, the sync faces hand them
    # to the engine's thread-safe entry.

    def _enter_now(self) -> None:
        if not self._entered:
            self._entered = True
            if not self._id:
                self._table.open(self, push=True)

    def _exit_now(self, exc: BaseException | None) -> list[Operation] | None:
        self._table.leave(self._id)
        if self._state == FINISHED:
            return None
        status: FinishStatus = self._status
        if exc is not None:
            status = STATUS_CANCELLED if isinstance(exc, asyncio.CancelledError) else STATUS_FAILED
            error = {"type": type(exc).__name__, "message": str(exc)}
            result = dict(self._result or {})
            result.setdefault("error", error)
            self._result = result
        return self._finish_now(status, None, None)

    # -- lifecycle ------------------------------------------------------------------

    async def start(
        self, payload: dict[str, Any] | None = None, started_at: datetime | None = None
    ) -> None:
        """Queue the span's creation as ``active`` with ``payload`` as its params.

        A second call does nothing.

        Args:
            payload: The span's params (model, prompt, tool input, ...); the default
                payload when omitted.
            started_at: When the span started; now when omitted.

        Raises:
            TypeError: If ``payload`` is not a dict (a JSON object). Values inside it
                that JSON has no type for never raise (see the README's "What happens
                to a payload").
            ValueError: If ``started_at`` is naive.
            PrefactorTelemetryFailureError: If telemetry has failed permanently.
        """
        leftover = self._start_now(payload, started_at)
        if leftover:
            await self._table.enqueue_all(leftover)

    def _start_now(
        self, payload: dict[str, Any] | None, started_at: datetime | None
    ) -> list[Operation] | None:
        if self._state != PREPARED:
            return None
        table = self._table
        if payload is None:
            encoded = self._default_json or "{}"
        else:
            # The fast path of _encode, inlined: this runs once per span.
            raw = None
            if payload.__class__ is dict and table.fast_limit >= 0:
                try:
                    raw = _dumps(payload, default=_known, option=_OPTIONS)
                except TypeError:
                    pass
            if raw is not None and len(raw) <= table.fast_limit:
                encoded = raw.decode()
            else:
                encoded = table.encoder.encode(payload, "span payload", table.params_budget)
        at = time.time() if started_at is None else aware_timestamp(started_at, "started_at")
        return table.create(self, STATUS_ACTIVE, encoded, at)

    async def complete(
        self, result: dict[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span as ``complete``, with ``result`` as its result payload."""
        # _finish inlined: one coroutine less on the agent's path.
        leftover = self._finish_now(STATUS_COMPLETE, result, timestamp)
        if leftover:
            await self._table.enqueue_all(leftover)

    async def fail(
        self, result: dict[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span as ``failed``, with ``result`` (e.g. error details)."""
        await self._finish(STATUS_FAILED, result, timestamp)

    async def cancel(self, timestamp: datetime | None = None) -> None:
        """Finish the span as ``cancelled``.

        Before ``start()``, the span is recorded as ``pending`` and then cancelled (the
        only way out of ``pending`` that the API allows).
        """
        await self._finish(STATUS_CANCELLED, None, timestamp)

    async def finish(self) -> None:
        """Finish the span with its current status (``complete`` unless set otherwise).

        Later calls do nothing.
        """
        await self._finish(self._status, None, None)

    def set_result(self, data: dict[str, Any]) -> None:
        """Merge ``data`` into the result sent when the span finishes.

        Raises:
            TypeError: If ``data`` is not a dict.
        """
        _check_mapping(data, "span result")
        self._result = {**(self._result or {}), **data}

    def set_payload(self, data: dict[str, Any]) -> None:
        """Merge ``data`` into the params used when the span starts automatically.

        Raises:
            TypeError: If ``data`` is not a dict.
        """
        _check_mapping(data, "span payload")
        merged = {**(self._default_payload or {}), **data}
        table = self._table
        self._default_json = _encode(table.encoder, merged, "span payload", table.params_budget)
        self._default_payload = merged

    # -- internals ------------------------------------------------------------------

    async def _finish(
        self,
        status: FinishStatus,
        result: dict[str, Any] | None,
        timestamp: datetime | None,
        key: str | None = None,
    ) -> None:
        leftover = self._finish_now(status, result, timestamp, key)
        if leftover:
            await self._table.enqueue_all(leftover)

    def _finish_now(
        self,
        status: FinishStatus,
        result: dict[str, Any] | None,
        timestamp: datetime | None,
        key: str | None = None,
    ) -> list[Operation] | None:
        if self._state == FINISHED:
            return None
        if status not in FINISH_STATUSES:
            raise ValueError(f"status must be one of {FINISH_STATUSES}, got {status!r}")
        table = self._table
        if result is None:
            result = self._result
        elif self._result:
            _check_mapping(result, "span result")
            result = {**self._result, **result}
        result_json: str | None = None
        if result:
            # The span's params and result share its budget (params were held to 7/8).
            budget = table.span_budget - self._params_bytes
            raw = None
            if result.__class__ is dict and table.fast_limit >= 0:
                try:
                    raw = _dumps(result, default=_known, option=_OPTIONS)
                except TypeError:
                    pass
            if raw is not None and (size := len(raw)) <= table.fast_limit and size <= budget:
                result_json = raw.decode()
            else:
                result_json = table.encoder.encode(result, "span result", budget)
        at = time.time() if timestamp is None else aware_timestamp(timestamp, "timestamp")
        return table.finish(self, status, result_json, at, key, self._default_json)
