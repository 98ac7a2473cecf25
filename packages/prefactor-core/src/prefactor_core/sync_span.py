"""SyncSpanContext: a span for synchronous code (the sync client, ``@trace`` on sync code).

The same span as ``SpanContext`` (same ids, parents, ordering and payload rules) with a
plain context manager and plain methods. Each call does local work and queues through
the engine's thread-safe entry, so it never waits for the network or the event loop and
can be made from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prefactor_core.current import enter_instance, leave_instance
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.operations import Operation
from prefactor_core.span_context import SpanContext
from prefactor_http.models.types import STATUS_CANCELLED, STATUS_COMPLETE, STATUS_FAILED

if TYPE_CHECKING:
    from prefactor_core.managers.agent_instance import AgentInstanceHandle

__all__ = ["SyncSpanContext"]


class SyncSpanContext:
    """One span, for synchronous code; use it with ``with``.

    Returned by ``SyncAgentInstanceHandle.span()``. The lifecycle is that of
    ``SpanContext``: entering gives the span its final id and makes it the current span
    (the parent of spans opened, or ``@trace`` functions called, inside it); ``start()``
    queues its creation; ``complete()`` / ``fail()`` / ``cancel()`` queue its finish; on
    exit an unstarted span is started and an unfinished one finishes as ``complete``, or as
    ``failed`` (``cancelled`` for ``asyncio.CancelledError``) with the exception's type and
    message when the block raised. The exception propagates unchanged. Inside the block
    the span's instance is the current instance too, so a thread that only opens a span
    of a run (a plain ``threading.Thread`` does not inherit contexts) records its
    ``@trace`` calls into that run.

    Example::

        with instance.span("agent:llm") as span:
            span.start({"model": "gpt-4", "prompt": "Hi"})
            span.complete({"response": call_llm()})
    """

    __slots__ = ("_ctx", "_emit", "_handle", "_outer")

    def __init__(
        self,
        ctx: SpanContext,
        emit: Callable[[list[Operation]], None],
        handle: AgentInstanceHandle | None = None,
    ) -> None:
        self._ctx = ctx
        self._emit = emit
        self._handle = handle
        self._outer: AgentInstanceHandle | None = None

    @property
    def id(self) -> str:
        """The span's id: final from the moment the context is entered."""
        return self._ctx.id

    @property
    def instance_id(self) -> str:
        """The agent instance the span belongs to."""
        return self._ctx.instance_id

    @property
    def schema_name(self) -> str:
        """The span's type."""
        return self._ctx.schema_name

    @property
    def parent_span_id(self) -> str | None:
        """The enclosing span's id, if any."""
        return self._ctx.parent_span_id

    @property
    def status(self) -> str:
        """``pending`` until started, ``active`` while running, then its final status."""
        return self._ctx.status

    def __enter__(self) -> SyncSpanContext:
        self._ctx._enter_now()
        if self._handle is not None:
            self._outer = enter_instance(self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            leave_instance(self._handle, self._outer)
        try:
            self._queue(self._ctx._exit_now(exc))
        except PrefactorTelemetryFailureError:
            # The user's own exception always wins over a telemetry error.
            if exc is None:
                self._ctx._table.failure_seen()
                raise

    def start(
        self, payload: dict[str, Any] | None = None, started_at: datetime | None = None
    ) -> None:
        """Queue the span's creation as ``active`` with ``payload`` as its params.

        Raises:
            TypeError: If ``payload`` is not a dict (a JSON object). Values inside it
                that JSON has no type for never raise: they are encoded like any span's
                (see the README's "What happens to a payload").
            ValueError: If ``started_at`` is naive.
            PrefactorTelemetryFailureError: If telemetry has failed permanently.
        """
        self._queue(self._ctx._start_now(payload, started_at))

    def complete(
        self, result: dict[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span as ``complete``, with ``result`` as its result payload."""
        self._queue(self._ctx._finish_now(STATUS_COMPLETE, result, timestamp))

    def fail(self, result: dict[str, Any] | None = None, timestamp: datetime | None = None) -> None:
        """Finish the span as ``failed``, with ``result`` (e.g. error details)."""
        self._queue(self._ctx._finish_now(STATUS_FAILED, result, timestamp))

    def cancel(self, timestamp: datetime | None = None) -> None:
        """Finish the span as ``cancelled`` (``pending`` then ``cancelled`` before start)."""
        self._queue(self._ctx._finish_now(STATUS_CANCELLED, None, timestamp))

    def set_result(self, data: dict[str, Any]) -> None:
        """Merge ``data`` into the result sent when the span finishes."""
        self._ctx.set_result(data)

    def set_payload(self, data: dict[str, Any]) -> None:
        """Merge ``data`` into the params used when the span starts automatically."""
        self._ctx.set_payload(data)

    def _queue(self, leftover: list[Operation] | None) -> None:
        if leftover:
            self._emit(leftover)

    def __repr__(self) -> str:
        ctx = self._ctx
        return f"<SyncSpanContext {ctx.schema_name!r} id={ctx.id!r} status={ctx.status!r}>"
