"""Handing operations to a client's engine from any thread, without blocking.

The engine runs on the client's event loop; its queue is not thread-safe. Callers on other
threads (an OpenTelemetry ``SpanProcessor.on_end``, which runs on whatever thread ended the
span) append to a lock-free deque here, and one drain per burst is scheduled on the loop
with ``call_soon_threadsafe``. On the loop thread itself the operations go straight in.
Operations keep their order: the drain takes them in the order they were submitted, and
once one has to wait for room in the queue, the rest wait behind it.

Nothing here raises into the caller: a closed loop or a failed client is logged once and
counted in :attr:`ThreadSafeSubmitter.dropped`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prefactor_core.operations import Operation

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["ThreadSafeSubmitter"]

logger = logging.getLogger(__name__)


class ThreadSafeSubmitter:
    """Put operations on ``client``'s queue from any thread (never blocks, never raises).

    Args:
        client: The client whose engine receives the operations.
        loop: The event loop the client runs on.
    """

    def __init__(self, client: PrefactorCoreClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._pending: deque[Operation] = deque()
        self._scheduled = False
        self._lock = threading.Lock()
        self._backlog: asyncio.Task[None] | None = None
        self._warned = False
        self.dropped = 0
        """Operations that could not be handed over (closed loop, closed or failed client)."""

    def submit(self, ops: Iterable[Operation]) -> None:
        """Queue ``ops`` in order for the engine; returns at once on any thread."""
        self._pending.extend(ops)
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._drain()
            return
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nothing will ever take these
            with self._lock:
                self._scheduled = False
            self._drop(len(self._pending), "the client's event loop is closed")
            self._pending.clear()

    def drain(self) -> None:
        """On the loop's thread: hand over what is pending now (a flush does this first)."""
        self._drain()

    async def wait_handed_over(self) -> None:
        """On the loop: return once everything submitted so far is on the client's queue."""
        self._drain()
        backlog = self._backlog
        if backlog is not None:
            await asyncio.shield(backlog)

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        if not self._warned:
            self._warned = True
            logger.warning("dropped operations handed over from other threads: %s", reason)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        pending = self._pending
        if self._backlog is not None:
            return  # the backlog task takes them, in order
        client = self._client
        while pending:
            op = pending.popleft()
            try:
                if client._offer(op):
                    continue
            except Exception as exc:  # a failed or forked client: telemetry, not the agent
                self._drop(1, str(exc))
                continue
            pending.appendleft(op)
            self._backlog = self._loop.create_task(self._wait_for_room())
            return

    async def _wait_for_room(self) -> None:
        pending = self._pending
        try:
            while pending:
                op = pending.popleft()
                try:
                    await self._client._enqueue(op)
                except Exception as exc:
                    self._drop(1, str(exc))
        finally:
            self._backlog = None
