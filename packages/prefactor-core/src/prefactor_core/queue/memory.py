"""The default queue: in memory, bounded, with a put that never blocks for long."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple, TypeVar

from prefactor_core.queue import _gc_backlog
from prefactor_core.queue.base import Queue, QueueClosedError, QueueFullError

__all__ = ["InMemoryQueue", "QueueStatistics"]

T = TypeVar("T")

FREEZE_STEP = 20_000
"""How many more queued items make the queue freeze its backlog again (``gc.freeze``)."""
_NEVER = 1 << 62


class QueueStatistics(NamedTuple):
    """A snapshot of a queue's state."""

    size: int
    maxsize: int
    waiting_getters: int
    waiting_putters: int
    closed: bool


class InMemoryQueue(Queue[T]):
    """A FIFO queue in memory.

    Unbounded by default (``maxsize=0``), as the original SDK's queue was; the client
    creates it bounded (``QueueConfig.max_queue_size``). When a bounded queue is full,
    ``put`` waits up to ``put_timeout`` seconds for room and then raises
    ``QueueFullError``: the caller decides what to drop, and is never held up for long.
    Everything is lost if the process dies; use the spool for durability.

    A long backlog is kept out of the cyclic garbage collector's scans: each time the
    queue has grown by ``freeze_step`` items it calls ``gc.freeze()``; once it has drained
    to a quarter of that it counts afresh, and the freeze lasts until the queue is closed
    (see ``_gc_backlog``). ``freeze_step=0`` turns this off.

    Example::

        queue: InMemoryQueue[str] = InMemoryQueue()
        await queue.put("operation")
        item = await queue.get()
        await queue.close()
    """

    def __init__(
        self, maxsize: int = 0, *, put_timeout: float = 0.0, freeze_step: int = FREEZE_STEP
    ) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be 0 (unbounded) or positive, got {maxsize}")
        if put_timeout < 0:
            raise ValueError(f"put_timeout must not be negative, got {put_timeout}")
        if freeze_step < 0:
            raise ValueError(f"freeze_step must be 0 (off) or positive, got {freeze_step}")
        self._freeze_step = freeze_step
        self._freeze_at = freeze_step or _NEVER
        self._frozen = False
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._put_timeout = put_timeout
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        # The agent's path skips the call when no subclass admits items its own way.
        self._admits = type(self)._admit is not InMemoryQueue._admit

    async def put(self, item: T) -> None:
        """Add an item, waiting up to ``put_timeout`` for room in a full queue.

        Raises:
            QueueClosedError: If the queue is closed.
            QueueFullError: If the queue stayed full for ``put_timeout`` seconds.
        """
        if self._closed:
            raise QueueClosedError("queue is closed")
        if self._maxsize and len(self._items) >= self._maxsize:
            await self._wait_for_room()
        self._admit(item)
        self._items.append(item)
        if len(self._items) >= self._freeze_at:
            self._freeze()
        self._wake(self._getters)

    def put_nowait(self, item: T) -> None:
        """Add an item without waiting.

        Raises:
            QueueClosedError: If the queue is closed.
            QueueFullError: If the queue is full.
        """
        if self._closed:
            raise QueueClosedError("queue is closed")
        items = self._items
        if self._maxsize and len(items) >= self._maxsize:
            raise QueueFullError(f"queue is full ({self._maxsize} items)")
        if self._admits:
            self._admit(item)
        items.append(item)
        if len(items) >= self._freeze_at:
            self._freeze()
        if self._getters:
            self._wake(self._getters)

    def _admit(self, item: T) -> None:
        """Called for every item just before it is queued (a hook for subclasses).

        An exception here refuses the item.
        """

    async def _wait_for_room(self) -> None:
        if self._put_timeout <= 0:
            raise QueueFullError(f"queue is full ({self._maxsize} items)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._put_timeout
        while len(self._items) >= self._maxsize:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise QueueFullError(
                    f"queue stayed full ({self._maxsize} items) for {self._put_timeout}s"
                )
            waiter = loop.create_future()
            self._putters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._putters:
                    self._putters.remove(waiter)
            if self._closed:
                raise QueueClosedError("queue is closed")

    async def get(self) -> T:
        """Remove and return the next item, waiting for one.

        Raises:
            QueueClosedError: If the queue is closed and empty.
        """
        while not self._items:
            if self._closed:
                raise QueueClosedError("queue is closed and empty")
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if waiter in self._getters:
                    self._getters.remove(waiter)
                # Pass a wake-up we were given but cannot use on to another getter.
                if self._items and not waiter.cancelled():
                    self._wake(self._getters)
                raise
        return self._pop()

    def get_nowait(self) -> T:
        """Remove and return the next item.

        Raises:
            QueueClosedError: If the queue is closed and empty.
            IndexError: If the queue is open and empty.
        """
        if not self._items:
            if self._closed:
                raise QueueClosedError("queue is closed and empty")
            raise IndexError("queue is empty")
        return self._pop()

    def _pop(self) -> T:
        """Remove and return the next item (there is one); every get ends here."""
        item = self._items.popleft()
        if self._frozen and len(self._items) <= self._freeze_step >> 2:
            self._drained()
        if self._putters:
            self._wake(self._putters)
        return item

    def _pop_many(self, most: int) -> list[T]:
        """Remove and return up to ``most`` items, oldest first, as ``_pop`` would one by
        one (the engine's reader takes what waits in the client's own queue so)."""
        items = self._items
        popleft = items.popleft
        taken = [popleft() for _ in range(min(most, len(items)))]
        if self._frozen and len(items) <= self._freeze_step >> 2:
            self._drained()
        putters = self._putters
        for _ in taken:
            if not putters:
                break
            self._wake(putters)
        return taken

    def size(self) -> int:
        """Return how many items are waiting."""
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    async def close(self, num_waiters: int = 1) -> None:
        """Refuse new items and wake every waiting getter and putter.

        All waiters are woken whatever ``num_waiters`` says: a worker that is not woken
        would wait forever.
        """
        self._closed = True
        self._thaw()
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    @property
    def closed(self) -> bool:
        """Return True once ``close()`` has been called."""
        return self._closed

    def statistics(self) -> QueueStatistics:
        """Return the queue's size, bound and waiters."""
        return QueueStatistics(
            size=len(self._items),
            maxsize=self._maxsize,
            waiting_getters=len(self._getters),
            waiting_putters=len(self._putters),
            closed=self._closed,
        )

    def _freeze(self) -> None:
        """The backlog grew by another ``freeze_step`` items: freeze it."""
        self._freeze_at = len(self._items) + self._freeze_step
        if _gc_backlog.hold(id(self)):
            self._frozen = True

    def _drained(self) -> None:
        """The backlog has drained: the next one freezes again from ``freeze_step`` items.
        The freeze itself lasts until ``close`` (unfreezing now costs a full collection
        of the whole heap soon after: see ``_gc_backlog``)."""
        self._freeze_at = self._freeze_step or _NEVER
        self._frozen = False

    def _thaw(self) -> None:
        self._drained()
        _gc_backlog.release(id(self))

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
