"""The async client's way in to the engine: queueing, the failure latch, drop counting.

Every operation the agent's path makes reaches the queue through one of the methods of
``QueueingClient``, the middle layer of ``PrefactorCoreClient``:

* ``_offer`` (the fast path, on the loop's thread with room in the queue: a plain
  ``put_nowait``; from another thread, or with something emitted still ahead, through
  the thread-safe ``EngineEntry``), and ``_offer_span``/``_fold_target`` (the same path for
  a span queued as its own record, and its finish folded into it: ``queue._spans``),
* ``_enqueue`` (the awaited path, for a full or a custom queue),
* ``_emit_all`` (the sync faces: in order, from any thread, never waiting) and
  ``_submit`` (bridges whose hooks must never raise, such as the OTel span processor).

Each first checks the failure latch (a rejected token makes all further delivery
impossible: ``PrefactorTelemetryFailureError`` is raised at the next call that would
queue work, counting what was dropped) and the fork check.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import httpx

from prefactor_core._client_base import BaseClient, _fork_generation, forked_error
from prefactor_core._engine.dispatcher import Dispatcher
from prefactor_core._engine.entry import EngineEntry
from prefactor_core._open_spans import OpenSpan
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.exceptions import ClientNotInitializedError, PrefactorTelemetryFailureError
from prefactor_core.operations import Operation
from prefactor_core.queue._spans import SpanQueue
from prefactor_core.queue.base import Queue, QueueClosedError, QueueFullError
from prefactor_core.queue.spool import SpoolQueue

__all__ = ["NOT_INITIALIZED", "QueueingClient"]

logger = logging.getLogger("prefactor_core")

# Worded as published: user code may match on it.
NOT_INITIALIZED = "Client is not initialized. Call initialize() or use as context manager."

_get_ident = threading.get_ident


class QueueingClient(BaseClient):
    """The queue, the ways onto it and the failure latch of ``PrefactorCoreClient``.

    Its arguments are ``PrefactorCoreClient``'s.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        queue: Queue[Operation] | None,
        sdk_header_entry: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        super().__init__(config, sdk_header_entry, transport)
        self._custom_queue = queue
        self._queue: Queue[Operation] | None = None
        self._dispatcher: Dispatcher | None = None
        self._put_nowait: Callable[[Operation], None] | None = None
        # The same for spans queued as their own records (only the default SpanQueue).
        self._put_span: Callable[[OpenSpan], None] | None = None
        self._span_queue: SpanQueue | None = None
        # The thread-safe way in for callers off the engine loop's thread (set when open).
        self._entry: EngineEntry | None = None
        self._loop_thread = -1
        self._failure: PrefactorTelemetryFailureError | None = None
        self._failure_seen = False
        self._dropped_before_failure = 0
        self._warned_full = False

    def _default_queue(self) -> Queue[Operation]:
        qc = self._config.queue_config
        if self._config.spool_path is not None:
            return SpoolQueue(
                self._config.spool_path, qc.max_queue_size, put_timeout=qc.put_timeout
            )
        self._span_queue = SpanQueue(qc.max_queue_size, put_timeout=qc.put_timeout)
        return self._span_queue

    async def _acknowledge(self, ops: list[Operation]) -> None:
        queue = self._queue
        if isinstance(queue, SpoolQueue):
            queue.ack(ops)

    def _offer(self, op: Operation) -> bool:
        """Queue ``op`` without awaiting if the queue has room; False: use ``_enqueue``."""
        if self._failure is not None:
            self._failure.dropped_operations += 1
            self._raise_if_failed()
        if self._generation != _fork_generation[0]:
            raise forked_error()
        entry = self._entry
        if entry is not None and (entry.pending or _get_ident() != self._loop_thread):
            # Another thread (or what one emitted is still ahead of us): the safe way in.
            if self._state != "open":
                raise ClientNotInitializedError("the client is closed")
            entry.emit(op)
            return True
        put = self._put_nowait  # None for custom queues, and once the client closed
        if put is None:
            return False
        try:
            put(op)
        except QueueFullError:
            return False
        return True

    def _offer_span(self, span: OpenSpan) -> bool:
        """Queue ``span`` as its own record (see ``queue._spans``); False: queue its
        operations instead (which also raises what ``_offer`` raises).

        On the loop's thread the record goes straight on the queue, and its finish may be
        folded into it there. From any other thread (the sync client's callers, ``@trace``
        in ``asyncio.to_thread``) it goes through the thread-safe entry, as one operation
        (its create, built by the engine when it takes the record): nothing is folded into
        a record that may still wait in the entry, whose finish comes as an operation
        behind it. Dropped there (the entry closed or full), it is counted as one."""
        put = self._put_span
        if put is None or self._failure is not None or self._generation != _fork_generation[0]:
            return False
        entry = self._entry
        if entry is not None and (entry.pending or _get_ident() != self._loop_thread):
            if self._state != "open":
                return False
            span._queued = 0  # not folded into: it stands for its create alone
            entry.emit(span)  # type: ignore[arg-type]  # a SpanQueue takes records
            return True
        try:
            put(span)
        except QueueFullError:
            return False
        return True

    def _fold_target(self) -> SpanQueue | None:
        """The queue a span's finish may be written into its record in (the client is
        open on its own ``SpanQueue``), or None. Raises what ``_offer`` raises."""
        if self._failure is not None or self._generation != _fork_generation[0]:
            self._check_can_queue()
        return self._span_queue if self._put_span is not None else None

    async def _enqueue(self, op: Operation) -> None:
        self._check_can_queue()
        queue = self._queue
        if queue is None or self._state == "new":
            raise ClientNotInitializedError(NOT_INITIALIZED)
        if self._dispatcher is None:
            return  # disabled: a quiet no-op
        entry = self._entry
        if entry is not None and (entry.pending or _get_ident() != self._loop_thread):
            # Off the loop's thread this coroutine never suspends (the sync faces rely
            # on that), and on it nothing may overtake what other threads emitted.
            if self._state != "open":
                raise ClientNotInitializedError("the client is closed")
            entry.emit(op)
            return
        await self._put(op)

    def _emit_all(self, ops: list[Operation]) -> None:
        """Queue ``ops`` in order from any thread without waiting (the sync faces' way)."""
        self._check_can_queue()
        entry = self._entry
        if entry is None or self._state != "open":
            raise ClientNotInitializedError("the client is not initialized")
        if self._dispatcher is not None:
            entry.emit_all(ops)

    def _submit(self, ops: list[Operation]) -> int:
        """Queue ``ops`` in order from any thread, never waiting and never raising: the
        way in for bridges whose hooks must not fail (the OTel span processor).

        On the loop's own thread, with the entry idle, they go straight on the queue;
        otherwise (another thread, a full queue, something emitted still ahead) through
        the thread-safe entry, which keeps them in order behind what came first.

        Returns:
            How many were dropped: the client is not open, has failed or was forked, its
            loop is closed, or the entry's buffer is full (those are also counted in
            ``statistics().dropped``).
        """
        entry = self._entry
        if (
            entry is None
            or self._state != "open"
            or self._failure is not None
            or self._generation != _fork_generation[0]
        ):
            if self._failure is not None:
                self._failure.dropped_operations += len(ops)
            return len(ops)
        if self._dispatcher is None:
            return 0  # disabled: a quiet no-op
        put = self._put_nowait
        try:
            on_loop = put is not None and asyncio.get_running_loop() is entry.loop
        except RuntimeError:
            on_loop = False
        dropped = 0
        for op in ops:
            if on_loop and put is not None and not entry.pending:
                try:
                    put(op)
                    continue
                except QueueFullError:
                    pass  # the entry's pump waits for room, in order
            if not entry.emit(op):
                dropped += 1
        return dropped

    def _check_can_queue(self) -> None:
        if self._failure is not None:
            self._failure.dropped_operations += 1
            self._raise_if_failed()
        if self._generation != _fork_generation[0]:
            raise forked_error()

    def _count_dropped(self, n: int) -> None:
        if self._dispatcher is not None:
            self._dispatcher.count_dropped(n)

    async def _put(self, op: Operation) -> None:
        """Put ``op`` on the queue, waiting up to ``put_timeout``; drop and count if full."""
        queue = self._queue
        assert queue is not None
        assert self._dispatcher is not None
        try:
            await queue.put(op)
        except QueueFullError:
            self._dispatcher.count_dropped()
            if not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "the telemetry queue is full (%d operations); new operations are dropped "
                    "until there is room (this warning is logged once)",
                    self._config.queue_config.max_queue_size,
                )
        except QueueClosedError:
            raise ClientNotInitializedError("the client is closed") from None

    # -- the failure latch ----------------------------------------------------------------

    def _latch(self, error: Exception, op: Operation | None) -> None:
        """Latch a failure that makes all further delivery impossible (401/403)."""
        if self._failure is None:
            operation_type = op.type.name if op is not None else None
            self._failure = PrefactorTelemetryFailureError(
                f"telemetry failed permanently: {error}",
                cause=error,
                operation_type=operation_type,
            )
            # Everything dropped from here on (including the failing request, which
            # the dispatcher counts right after this call) is the failure's toll.
            self._dropped_before_failure = self._dropped()
        if self._dispatcher is not None:
            self._dispatcher.drop_everything()
        self._refresh_failure()

    def _dropped(self) -> int:
        return self._dispatcher.statistics().dropped if self._dispatcher is not None else 0

    def _refresh_failure(self) -> PrefactorTelemetryFailureError:
        failure = self._failure
        assert failure is not None
        if self._dispatcher is not None:
            dropped = self._dropped() - self._dropped_before_failure
            failure.dropped_operations = max(failure.dropped_operations, dropped)
        return failure

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            self._failure_seen = True
            raise self._refresh_failure()

    def _mark_failure_seen(self) -> None:
        self._failure_seen = True
