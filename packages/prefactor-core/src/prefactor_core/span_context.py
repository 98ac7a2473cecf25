"""SpanContext: one span's lifecycle, on the agent's hot path.

Every method here runs in the agent's own task, so each does only local, constant-time
work: it takes a timestamp, JSON-encodes the params or result once (which checks them
and snapshots them), and puts an operation on the queue. Nothing waits for the network.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from prefactor_core._engine.wire import _OPTIONS, _dumps
from prefactor_core._payload import _DEFAULT, PayloadEncoder, _known
from prefactor_core.context_stack import _STACK, SpanContextStack
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.operations import Operation, OperationType, derived_operation
from prefactor_core.utils import generate_idempotency_key as generate_idempotency_key

if TYPE_CHECKING:
    from prefactor_core.managers.span import SpanManager

__all__ = ["FinishStatus", "SpanContext"]

FinishStatus = Literal["complete", "failed", "cancelled"]
_FINISH_STATUSES = ("complete", "failed", "cancelled")

# Lifecycle states.
_PREPARED = 0  # entered (or prepared), not started: no operation queued yet
_STARTED = 1  # create queued
_FINISHED = 2  # finish queued (or cancelled before start: pending create + finish queued)

_CREATE = OperationType.CREATE_SPAN
_FINISH = OperationType.FINISH_SPAN

# A pending create (cancel before start) must reach the API as such, then its finish.
_NO_MERGE = {"no_merge": True}

# Spans of one tree may start and finish on different threads (``@trace`` on functions
# run by ``asyncio.to_thread`` or a thread pool, the sync client). Holding a child on its
# unreleased parent and releasing the parent's waiting children must not interleave, or
# a child's operations could be lost or overtake its parent's create. Reentrant: the
# garbage collector may finish an abandoned traced generator's span at any allocation,
# also inside this lock on the same thread.
_ORDER_LOCK = threading.RLock()


def _new_order_lock() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global _ORDER_LOCK
    _ORDER_LOCK = threading.RLock()


os.register_at_fork(after_in_child=_new_order_lock)


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


class SpanContext:
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

    __slots__ = (
        "_default_json",
        "_default_payload",
        "_entered",
        "_held",
        "_id",
        "_instance_id",
        "_manager",
        "_params_bytes",
        "_parent",
        "_parent_id",
        "_prepared_at",
        "_released",
        "_result",
        "_schema_name",
        "_state",
        "_status",
        "_waiting",
    )

    def __init__(
        self,
        temp_id: str,
        span_manager: SpanManager,
        default_payload: dict[str, Any] | None = None,
    ) -> None:
        self._id = temp_id
        self._manager = span_manager
        self._default_payload = default_payload
        # Encoded once, when given: that checks it at the call and snapshots it.
        self._default_json = (
            None
            if default_payload is None
            else _encode(
                span_manager._encoder, default_payload, "span payload", span_manager._params_budget
            )
        )
        self._params_bytes = 0
        self._instance_id = ""
        self._schema_name = ""
        self._parent_id: str | None = None
        self._parent: SpanContext | None = None
        self._state = _PREPARED
        self._status: FinishStatus = "complete"
        self._result: dict[str, Any] | None = None
        self._prepared_at = 0.0
        self._entered = False
        # Ordering: a span's operations wait here while its parent has not been queued
        # for creation yet (a child may start before its parent does).
        self._released = False
        self._held: list[Operation] | None = None
        self._waiting: list[SpanContext] | None = None

    # -- identity -------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The span's id: final from the moment the context is entered."""
        return self._id

    @property
    def instance_id(self) -> str:
        """The agent instance the span belongs to."""
        return self._instance_id

    @property
    def schema_name(self) -> str:
        """The span's type."""
        return self._schema_name

    @property
    def parent_span_id(self) -> str | None:
        """The enclosing span's id, if any."""
        return self._parent_id

    @property
    def status(self) -> str:
        """``pending`` until started, ``active`` while running, then its final status."""
        if self._state == _PREPARED:
            return "pending"
        if self._state == _STARTED:
            return "active"
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
                await self._manager._enqueue_all(leftover)
        except PrefactorTelemetryFailureError:
            # The user's own exception always wins over a telemetry error.
            if exc is None:
                self._manager._failure_seen()
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
                self._manager._open(self, push=True)

    def _exit_now(self, exc: BaseException | None) -> list[Operation] | None:
        stack = _STACK.get()
        if stack and stack[-1] == self._id:
            _STACK.set(stack[:-1])
        else:
            SpanContextStack.remove(self._id)
        if self._state == _FINISHED:
            return None
        status: FinishStatus = self._status
        if exc is not None:
            status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
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
            await self._manager._enqueue_all(leftover)

    def _start_now(
        self, payload: dict[str, Any] | None, started_at: datetime | None
    ) -> list[Operation] | None:
        if self._state != _PREPARED:
            return None
        if payload is None:
            encoded = self._default_json or "{}"
        else:
            # The fast path of _encode, inlined: this runs once per span.
            manager = self._manager
            raw = None
            if payload.__class__ is dict and manager._fast_limit >= 0:
                try:
                    raw = _dumps(payload, default=_known, option=_OPTIONS)
                except TypeError:
                    pass
            if raw is not None and len(raw) <= manager._fast_limit:
                encoded = raw.decode()
            else:
                encoded = manager._encoder.encode(payload, "span payload", manager._params_budget)
        at = time.time() if started_at is None else aware_timestamp(started_at, "started_at")
        return self._create("active", encoded, at)

    async def complete(
        self, result: dict[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span as ``complete``, with ``result`` as its result payload."""
        await self._finish("complete", result, timestamp)

    async def fail(
        self, result: dict[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span as ``failed``, with ``result`` (e.g. error details)."""
        await self._finish("failed", result, timestamp)

    async def cancel(self, timestamp: datetime | None = None) -> None:
        """Finish the span as ``cancelled``.

        Before ``start()``, the span is recorded as ``pending`` and then cancelled (the
        only way out of ``pending`` that the API allows).
        """
        await self._finish("cancelled", None, timestamp)

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
        manager = self._manager
        self._default_json = _encode(
            manager._encoder, merged, "span payload", manager._params_budget
        )
        self._default_payload = merged

    # -- internals ------------------------------------------------------------------

    def _create(
        self, status: str, payload_json: str, started_at: float | None
    ) -> list[Operation] | None:
        """Queue this span's create (synchronously when the queue has room).

        Returns the operations that still have to be queued the slow way (a full queue,
        a custom queue), in order, or None.
        """
        manager = self._manager
        self._params_bytes = len(payload_json)
        fields = {
            "instance_id": self._instance_id,
            "span_id": self._id,
            "schema_name": self._schema_name,
            "status": status,
            "payload_json": payload_json,
            "started_at": started_at,
        }
        if self._parent_id is not None:
            fields["parent_span_id"] = self._parent_id
        metadata = _NO_MERGE if status == "pending" else None
        if manager._chosen_ids:
            op = manager._op(
                OperationType.CREATE_SPAN,
                fields,
                started_at or time.time(),
                "c-",
                self._id,
                metadata,
            )
        else:
            op = derived_operation(
                _CREATE, fields, started_at or time.time(), "c-", self._id, metadata
            )
        self._state = _STARTED
        parent = self._parent
        with _ORDER_LOCK:
            if parent is not None and not parent._released:
                # The parent's create is not queued yet: wait for it, so the server
                # always sees a parent before its children.
                self._held = [op]
                if parent._waiting is None:
                    parent._waiting = []
                parent._waiting.append(self)
                return None
            if not self._waiting:
                offered = manager._offer(op)
                self._released = True
                return None if offered else [op]
            ops = [op]
            self._release_children(ops)
            self._released = True
            return manager._offer_all(ops)

    def _hold(self, op: Operation) -> bool:
        """Add ``op`` to this span's held operations unless they were released."""
        with _ORDER_LOCK:
            if self._held is None:
                return False
            self._held.append(op)
            return True

    def _release_children(self, out: list[Operation]) -> None:
        """Collect, in order, the held operations of the spans waiting for this one."""
        waiting, self._waiting = self._waiting, None
        for child in waiting or ():
            held, child._held = child._held, None
            child._released = True
            out.extend(held or ())
            if child._waiting:
                child._release_children(out)

    async def _finish(
        self,
        status: FinishStatus,
        result: dict[str, Any] | None,
        timestamp: datetime | None,
        key: str | None = None,
    ) -> None:
        leftover = self._finish_now(status, result, timestamp, key)
        if leftover:
            await self._manager._enqueue_all(leftover)

    def _finish_now(
        self,
        status: FinishStatus,
        result: dict[str, Any] | None,
        timestamp: datetime | None,
        key: str | None = None,
    ) -> list[Operation] | None:
        if self._state == _FINISHED:
            return None
        if status not in _FINISH_STATUSES:
            raise ValueError(f"status must be one of {_FINISH_STATUSES}, got {status!r}")
        manager = self._manager
        if result is None:
            result = self._result
        elif self._result:
            _check_mapping(result, "span result")
            result = {**self._result, **result}
        result_json: str | None = None
        if result:
            # The span's params and result share its budget (params were held to 7/8).
            budget = manager._span_budget - self._params_bytes
            raw = None
            if result.__class__ is dict and manager._fast_limit >= 0:
                try:
                    raw = _dumps(result, default=_known, option=_OPTIONS)
                except TypeError:
                    pass
            if raw is not None and (size := len(raw)) <= manager._fast_limit and size <= budget:
                result_json = raw.decode()
            else:
                result_json = manager._encoder.encode(result, "span result", budget)
        at = time.time() if timestamp is None else aware_timestamp(timestamp, "timestamp")
        leftover: list[Operation] | None = None
        if self._state == _PREPARED:
            if status == "cancelled":
                leftover = self._create("pending", self._default_json or "{}", None)
            else:
                leftover = self._create("active", self._default_json or "{}", self._prepared_at)
        self._state = _FINISHED
        self._status = status
        fields = {
            "instance_id": self._instance_id,
            "span_id": self._id,
            "status": status,
            "result_json": result_json,
            "timestamp": at,
        }
        if key is None and not manager._chosen_ids:
            op = derived_operation(_FINISH, fields, at, "f-", self._id)
        else:
            op = manager._op(OperationType.FINISH_SPAN, fields, at, "f-", self._id, key=key)
        manager._close(self)
        if self._held is not None and self._hold(op):
            pass
        elif leftover:
            leftover.append(op)
        elif not manager._offer(op):
            leftover = [op]
        return leftover
