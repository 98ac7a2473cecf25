"""The engine's thread-safe entry point: ``emit(op)`` from any thread, never blocking.

The engine (queue, dispatcher, HTTP) lives on one event loop. Code on that loop's thread
may put operations on the queue directly; code on any other thread (a sync function run
by ``asyncio.to_thread`` or a thread pool, the sync client's callers, a generator consumed
elsewhere) must not touch the queue, whose waiters are futures of that loop. It calls
``emit`` instead, the way OpenTelemetry's ``BatchProcessor.emit`` hands a span to its
worker: append to a buffer (a ``deque``: atomic, no lock) and, only when the buffer was
idle, wake the loop once with ``call_soon_threadsafe``; the loop then lets the buffer
fill for ``LINGER`` seconds before it moves it into the queue (``flush`` and ``close``
do not wait for that). A busy caller thus costs one wake-up per ``LINGER``, not one round
trip to the loop per operation, and the engine's thread takes the GIL from the caller far
less often (on a loaded machine each hand-over can cost the caller an OS time slice).

On the loop, the buffer moves into the queue in the order it was filled. Operations stay
in the buffer until the queue has taken them, and the loop's own fast path checks
``pending`` first, so nothing put on the loop overtakes what another thread emitted
earlier (a parent's create emitted from a worker thread always reaches the queue before
a child's create put from the loop).

The buffer is bounded like the queue: when ``max_pending`` operations wait, further ones
are dropped and counted (the caller is never held up), as OpenTelemetry does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prefactor_core.queue.base import QueueClosedError, QueueFullError

if TYPE_CHECKING:
    from prefactor_core.operations import Operation

__all__ = ["LINGER", "EngineEntry"]

LINGER = 0.01
"""Seconds the loop lets emitted operations gather before taking them into the queue."""

logger = logging.getLogger("prefactor_core")


class EngineEntry:
    """A thread-safe, never-blocking way to hand operations to the engine.

    Args:
        loop: The engine's event loop (its thread is the only one that touches the queue).
        put_nowait: Puts an operation on the queue without waiting; raises
            ``QueueFullError`` when full. None when the queue has only an awaited put.
        put: The awaited put (backpressure with ``put_timeout``; drops and counts when it
            gives up). Used for what ``put_nowait`` cannot take.
        count_dropped: Counts operations dropped here (called on the loop).
        max_pending: How many operations may wait in the buffer.
    """

    __slots__ = (
        "_buffer",
        "_count_dropped",
        "_dropped",
        "_loop",
        "_max_pending",
        "_put",
        "_put_nowait",
        "_scheduled",
        "_task",
        "_waiters",
        "closed",
        "loop_thread",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        put_nowait: Callable[[Operation], None] | None,
        put: Callable[[Operation], Awaitable[None]],
        count_dropped: Callable[[int], None],
        max_pending: int,
    ) -> None:
        self._loop = loop
        self.loop_thread = threading.get_ident()
        self._put_nowait = put_nowait
        self._put = put
        self._count_dropped = count_dropped
        self._max_pending = max_pending if max_pending > 0 else 1 << 62
        self._buffer: deque[Operation] = deque()
        self._scheduled = False
        self._dropped = 0  # dropped on callers' threads, reported on the loop
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's event loop."""
        return self._loop

    @property
    def pending(self) -> bool:
        """True while emitted operations wait to enter the queue."""
        return bool(self._buffer)

    def emit(self, op: Operation) -> bool:
        """Hand ``op`` to the engine from any thread; never blocks, never raises.

        Safe on the loop's thread too. After ``close()``, once the buffer is full, or
        when the loop has closed, the operation is dropped and counted.

        Returns:
            False when ``op`` was dropped.
        """
        buffer = self._buffer
        if self.closed or len(buffer) >= self._max_pending:
            self._dropped += 1
            return False
        buffer.append(op)
        # Wake the loop only if no wake-up is pending. The flag is cleared on the loop
        # *before* it drains, so an append that sees it still set is drained by it.
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._linger)
            except RuntimeError:  # the loop is closed: nothing will ever read the buffer
                self._scheduled = False
                self.closed = True
                self._dropped += len(buffer)
                buffer.clear()
                return False
        return True

    def emit_all(self, ops: list[Operation]) -> None:
        """Emit ``ops`` in order."""
        for op in ops:
            self.emit(op)

    # -- on the loop ----------------------------------------------------------------

    def _linger(self) -> None:
        self._loop.call_later(LINGER, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._count_dropped(dropped)
        if self._task is not None:
            return  # the awaited pump is running and will take these too
        buffer = self._buffer
        put_nowait = self._put_nowait
        while buffer:
            if put_nowait is None:
                self._start_pump()
                return
            try:
                put_nowait(buffer[0])
            except QueueFullError:
                self._start_pump()
                return
            except QueueClosedError:
                self._count_dropped(len(buffer))
                buffer.clear()
                break
            buffer.popleft()
        self._resolve()

    def _start_pump(self) -> None:
        self._task = self._loop.create_task(self._pump(), name="prefactor-entry")

    async def _pump(self) -> None:
        """Move the buffer into the queue with the awaited put (a full or custom queue)."""
        buffer = self._buffer
        try:
            while buffer:
                try:
                    await self._put(buffer[0])
                except Exception as error:  # the put counts and logs its own drops
                    logger.debug("could not queue an emitted operation: %s", error)
                buffer.popleft()
        finally:
            self._task = None
            self._resolve()

    def _resolve(self) -> None:
        if self._waiters and not self._buffer:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def settle(self) -> None:
        """Wait (on the loop) until everything emitted so far has entered the queue."""
        while self._buffer:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            if self._task is None:
                self._drain()
            await waiter
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._count_dropped(dropped)

    async def close(self) -> None:
        """Take what is buffered into the queue, then drop (and count) later emits."""
        await self.settle()
        self.closed = True
