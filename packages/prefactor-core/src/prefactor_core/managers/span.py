"""SpanManager: prepares, starts and finishes spans, and keeps the open ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prefactor_core._engine.ids import check_client_id
from prefactor_core._open_spans import SpanTable
from prefactor_core._payload import PayloadEncoder
from prefactor_core.context_stack import SpanContextStack as SpanContextStack
from prefactor_core.exceptions import SpanNotFoundError
from prefactor_core.models import Span
from prefactor_core.operations import Operation
from prefactor_core.operations import OperationType as OperationType
from prefactor_core.span_context import FinishStatus, SpanContext, to_timestamp
from prefactor_core.utils import generate_idempotency_key as generate_idempotency_key
from prefactor_core.utils import validate_idempotency_key

if TYPE_CHECKING:
    from prefactor_http import PrefactorHttpClient

__all__ = ["SpanManager"]


class SpanManager:
    """Span lifecycle operations, each of which only queues work.

    Spans move through the API's state machine: ``active → complete | failed |
    cancelled`` once started, and ``pending → cancelled`` for a span cancelled before it
    started. Ids are made here, on the client, so a span's id is final when it is
    prepared and no call waits for the API.

    1. ``prepare()`` gives the span its id and pushes it on the ``SpanContextStack``, so
       spans prepared inside it pick it as their parent.
    2. ``start()`` queues the span's creation as ``active`` with its params.
    3. ``finish()`` queues the finish with a terminal status and result.

    Example::

        span_id = manager.prepare(instance_id="inst-1", schema_name="agent:llm")
        await manager.start(span_id, payload={"model": "gpt-4"})
        await manager.finish(span_id, status="complete", result_payload={"response": "hi"})
    """

    def __init__(
        self,
        http_client: PrefactorHttpClient | None,
        enqueue: Callable[[Operation], Awaitable[None]],
        *,
        new_id: Callable[[], str] | None = None,
        check_schema: Callable[[str], None] | None = None,
        on_failure_seen: Callable[[], None] | None = None,
        offer: Callable[[Operation], bool] | None = None,
        encoder: PayloadEncoder | None = None,
    ) -> None:
        # http_client stays in the published signature but is not kept: the managers
        # only queue operations, and the dispatcher sends them.
        self._check_schema = check_schema
        self.table = self._table = SpanTable(enqueue, offer, new_id, encoder, on_failure_seen)
        """The table of open spans this manager (and its span contexts) works on."""

    def context(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> SpanContext:
        """Return an unentered ``SpanContext``; it gets its id when entered."""
        if schema_name.__class__ is not str or not schema_name:
            raise ValueError(f"schema_name must be a non-empty string, got {schema_name!r}")
        if self._check_schema is not None:
            self._check_schema(schema_name)
        return SpanContext("", self, payload, instance_id, schema_name, parent_span_id)

    # -- public API ---------------------------------------------------------------------

    def prepare(self, instance_id: str, schema_name: str, parent_span_id: str | None = None) -> str:
        """Give a new span its id and push it on the context stack.

        Nothing is queued until ``start()``; the parent is the current span of this
        task when ``parent_span_id`` is None.

        Returns:
            The span's id (final: it does not change when the span starts).
        """
        ctx = self.context(instance_id, schema_name, parent_span_id)
        ctx._enter_now()
        return ctx.id

    async def start(
        self,
        temp_id: str,
        payload: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Queue the creation of a prepared span as ``active``; return its id.

        ``temp_id`` (the published name) is the span's final id as ``prepare()`` gave it;
        the id returned is the same.

        Raises:
            SpanNotFoundError: If ``temp_id`` is not an open span (also a ``KeyError``).
        """
        await self._get_open(temp_id).start(payload, started_at)
        return temp_id

    async def cancel_unstarted(self, temp_id: str, timestamp: datetime | None = None) -> None:
        """Record a span that never started as ``pending``, then ``cancelled``.

        ``temp_id`` (the published name) is the span's final id as ``prepare()`` gave it.

        Raises:
            SpanNotFoundError: If ``temp_id`` is not an open span (also a ``KeyError``).
        """
        ctx = self._get_open(temp_id)
        self._table.leave(temp_id)
        await ctx.cancel(timestamp)

    async def create(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        span_id: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create and start a span in one step; return its id.

        Unlike ``prepare()``, the span is not pushed on the context stack: it may be
        finished later from anywhere (``finish()``), so it must not become the parent
        of whatever this task does next.

        Args:
            instance_id: The agent instance.
            schema_name: The span type.
            parent_span_id: The parent; the current span of this task when None.
            payload: The span's params.
            span_id: An id of your own (1 to 64 letters, digits, ``_`` or ``-``);
                one is made when omitted.
            started_at: When the span started; now when omitted.
        """
        if span_id is not None:
            check_client_id(span_id, "span_id")
            if span_id in self._table.spans:
                raise ValueError(f"span {span_id!r} is already open")
        ctx = self.context(instance_id, schema_name, parent_span_id, payload)
        ctx._entered = True  # entered without becoming the current span
        self._table.open(ctx, push=False, span_id=span_id)
        await ctx.start(payload, started_at)
        return ctx.id

    async def finish(
        self,
        span_id: str,
        result_payload: dict[str, Any] | None = None,
        status: FinishStatus = "complete",
        idempotency_key: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the finish of an open span and remove it from the context stack.

        Args:
            span_id: The span.
            result_payload: Its result.
            status: ``complete``, ``failed`` or ``cancelled``.
            idempotency_key: A key of your own for the finish request.
            timestamp: When it finished; now when omitted.

        Raises:
            SpanNotFoundError: If ``span_id`` is not an open span (also a ``KeyError``).
            ValueError: For a bad status or idempotency key.
        """
        ctx = self._get_open(span_id)
        if idempotency_key is not None:
            validate_idempotency_key(idempotency_key)
        to_timestamp(timestamp, "timestamp")
        self._table.leave(span_id)
        await ctx._finish(status, result_payload, timestamp, idempotency_key)

    def get(self, span_id: str) -> Span | None:
        """Return a snapshot of an open span, or None if it is not open."""
        ctx = self._table.spans.get(span_id)
        if not isinstance(ctx, SpanContext):
            return None
        prepared = datetime.fromtimestamp(ctx._prepared_at, UTC)
        return Span(
            id=ctx.id,
            instance_id=ctx.instance_id,
            schema_name=ctx.schema_name,
            parent_span_id=ctx.parent_span_id,
            status=ctx.status,
            payload=dict(ctx._default_payload or {}),
            created_at=prepared,
            started_at=prepared if ctx.status != "pending" else None,
        )

    get_span = get

    def open_spans(self) -> list[SpanContext]:
        """Return the spans that are open (started or not, not finished)."""
        return [ctx for ctx in self._table.spans.values() if isinstance(ctx, SpanContext)]

    def _get_open(self, span_id: str) -> SpanContext:
        ctx = self._table.spans.get(span_id)
        if not isinstance(ctx, SpanContext):
            raise SpanNotFoundError(f"Unknown span: {span_id} (no open span has this id)")
        return ctx
