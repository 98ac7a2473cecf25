"""``TaskExecutor``: a general-purpose pool of asyncio workers over a ``Queue``.

Part of the public API (the published SDK exports it) for user code that wants workers
with retries over one of the SDK's queues. The SDK itself does not use it: its own
delivery runs in the dispatcher (``_engine/dispatcher.py``), which orders, batches and
retries operations per agent instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from prefactor_core.queue.base import Queue, QueueClosedError
from prefactor_http.retry import RetryPolicy

__all__ = ["ExecutorStatistics", "TaskExecutor"]

logger = logging.getLogger("prefactor_core.executor")


class ExecutorStatistics(NamedTuple):
    """Counters of a ``TaskExecutor``."""

    workers: int
    processed: int
    retried: int
    failed: int
    in_flight: int


class TaskExecutor:
    """Workers that process queue items, retrying failures with exponential backoff.

    A utility for user code over any ``Queue``; the SDK's own delivery does not go
    through it. Each of ``num_workers`` workers takes an item, awaits ``handler(item)``,
    and on an exception retries it up to ``max_retries`` times as long as
    ``is_retryable(error)`` says so, waiting as ``prefactor_http``'s ``RetryPolicy`` says:
    ``retry_delay_base * 2**n`` seconds with ±25 % jitter, uncapped. An item that still
    fails is logged and counted, never raised: a worker outlives any item.

    ``stop()`` closes the queue and waits for the workers to process everything that
    was queued; it never cancels them, because a cancelled worker would lose the items
    it had not yet processed.

    Example::

        async def handler(item: str) -> None:
            ...

        queue: InMemoryQueue[str] = InMemoryQueue()
        executor = TaskExecutor(queue, handler, num_workers=3)
        executor.start()
        await queue.put("item-1")
        await executor.stop()
    """

    def __init__(
        self,
        queue: Queue[Any],
        handler: Callable[[Any], Awaitable[None]],
        num_workers: int = 3,
        max_retries: int = 3,
        *,
        is_retryable: Callable[[Exception], bool] | None = None,
        retry_delay_base: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        if retry_delay_base < 0:
            raise ValueError(f"retry_delay_base must not be negative, got {retry_delay_base}")
        self._queue = queue
        self._handler = handler
        self._num_workers = num_workers
        self._is_retryable = is_retryable or (lambda _error: True)
        self._policy = RetryPolicy(max_retries, retry_delay_base, sleep=sleep)
        self._workers: list[asyncio.Task[None]] = []
        self._processed = 0
        self._retried = 0
        self._failed = 0
        self._in_flight = 0

    @property
    def running(self) -> bool:
        """True while workers are running."""
        return any(not worker.done() for worker in self._workers)

    def start(self) -> None:
        """Start the workers; they begin taking items at once.

        Raises:
            RuntimeError: If the executor is already running, or no event loop runs.
        """
        if self.running:
            raise RuntimeError("TaskExecutor is already running")
        self._workers = [
            asyncio.create_task(self._work(), name=f"prefactor-worker-{i}")
            for i in range(self._num_workers)
        ]

    async def stop(self) -> None:
        """Close the queue and wait until the workers have processed every item."""
        if not self._queue.closed:
            await self._queue.close(num_waiters=self._num_workers)
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    def statistics(self) -> ExecutorStatistics:
        """Return the executor's counters."""
        return ExecutorStatistics(
            workers=sum(1 for worker in self._workers if not worker.done()),
            processed=self._processed,
            retried=self._retried,
            failed=self._failed,
            in_flight=self._in_flight,
        )

    async def _work(self) -> None:
        while True:
            try:
                item = await self._queue.get()
            except QueueClosedError:
                return
            self._in_flight += 1
            try:
                await self._process(item)
            finally:
                self._in_flight -= 1

    def _retryable(self, error: Exception) -> bool:
        # A predicate that raises must not kill the worker (it would strand the items
        # still queued); the item is then treated as not retryable.
        try:
            return self._is_retryable(error)
        except Exception:
            logger.exception("is_retryable raised for %r; not retrying", error)
            return False

    async def _process(self, item: Any) -> None:
        attempt = 0
        while True:
            try:
                await self._handler(item)
            except Exception as error:
                if not self._policy.allows(attempt) or not self._retryable(error):
                    self._failed += 1
                    logger.warning(
                        "giving up on %r after %d attempt(s): %r", item, attempt + 1, error
                    )
                    return
                delay = self._policy.delay(attempt)
                attempt += 1
                self._retried += 1
                logger.debug("retrying %r in %.2fs after %r", item, delay, error)
                await (self._policy.sleep or asyncio.sleep)(delay)
            else:
                self._processed += 1
                return
