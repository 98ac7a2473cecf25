"""The queue interface between the client and its delivery engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["Queue", "QueueClosedError", "QueueFullError"]

T = TypeVar("T")


class QueueClosedError(Exception):
    """The queue was closed: nothing more can be put, and it has nothing left to get."""


class QueueFullError(Exception):
    """The queue stayed full for longer than its put timeout."""


class Queue(ABC, Generic[T]):
    """A queue of operations between the caller and the background workers.

    ``put`` is on the agent's path and must return at once (or, for a bounded queue
    that is full, after a short, bounded wait). ``get`` waits for an item. After
    ``close()`` no item can be put; the workers take what is left, then ``get`` raises
    ``QueueClosedError``.

    Implementations are used from one asyncio event loop.
    """

    @abstractmethod
    async def put(self, item: T) -> None:
        """Add an item.

        Raises:
            QueueClosedError: If the queue is closed.
            QueueFullError: If a bounded queue stays full past its put timeout.
        """

    @abstractmethod
    async def get(self) -> T:
        """Remove and return the next item, waiting until there is one.

        Raises:
            QueueClosedError: If the queue is closed and empty.
        """

    @abstractmethod
    def size(self) -> int:
        """Return how many items are waiting."""

    @abstractmethod
    async def close(self, num_waiters: int = 1) -> None:
        """Refuse new items and wake the workers waiting in ``get()``.

        Args:
            num_waiters: How many waiting workers to wake (implementations may wake all).
        """

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Return True once ``close()`` has been called."""
