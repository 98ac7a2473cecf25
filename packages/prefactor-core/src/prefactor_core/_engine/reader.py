"""The dispatcher's reader: moves queued operations into the lanes (queue → lanes).

It takes from the queue as long as the lanes hold fewer than ``cap`` operations (a
merged create counts for two), so that an unreachable API cannot let the lanes grow
without bound past the queue's own bound; ``room`` is cleared while it waits for the
scheduler to take some. What it finds waiting it moves in chunks of ``STEP_ITEMS``;
once the engine's turn is used (``pacing.Pacer``) it wakes the scheduler and hands the
agent's event loop back, and it wakes the scheduler again when nothing more waits. The
SDK's own in-memory queues are read without an await per operation. The
client's taps (``taps.Taps``) see each operation as it moves (none: nothing is paid).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prefactor_core._engine.batching import STEP_ITEMS
from prefactor_core._engine.lanes import Lanes
from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.taps import Taps
from prefactor_core.operations import Operation
from prefactor_core.queue.base import Queue, QueueClosedError
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["Reader"]


class Reader:
    """Moves operations from ``queue`` into ``lanes`` (see the module).

    Args:
        queue: Where the caller's operations wait.
        lanes: Where they go.
        cap: The most operations the lanes may hold before reading pauses.
        poke: Wakes the scheduler.
        pacer: The engine's turns on the loop.
        taps: Observers of the operations it moves (default: none).

    Attributes:
        room: Set while the lanes have room (the scheduler sets it as it takes).
    """

    __slots__ = ("_cap", "_lanes", "_pacer", "_poke", "_queue", "_taps", "room")

    def __init__(
        self,
        queue: Queue[Operation],
        lanes: Lanes,
        cap: int,
        poke: Callable[[], None],
        pacer: Pacer,
        taps: Taps | None = None,
    ) -> None:
        self._queue = queue
        self._lanes = lanes
        self._cap = cap
        self._poke = poke
        self._pacer = pacer
        self._taps = taps if taps is not None else Taps()
        self.room = asyncio.Event()
        self.room.set()

    async def run(self) -> None:
        """Read until the queue is closed and empty."""
        queue = self._queue
        lanes = self._lanes
        taps = self._taps
        cap = self._cap
        pacer = self._pacer
        # The SDK's own queue can be read without an await per operation (not a subclass
        # that changes how items are taken: its ``get`` is what it means).
        own: InMemoryQueue[Operation] | None = None
        if isinstance(queue, InMemoryQueue) and all(
            getattr(type(queue), name) is getattr(InMemoryQueue, name)
            for name in ("get", "get_nowait")
        ):
            own = queue
        while True:
            while lanes.pending >= cap and not lanes.latched:
                self.room.clear()
                pacer.rest()
                await self.room.wait()
            try:
                if not queue.size():
                    pacer.rest()
                op = await queue.get()
            except QueueClosedError:
                self._poke()
                return
            accept = taps.wrap(lanes.accept)
            accept(op)
            # Take whatever else is already there; when the turn is used, wake the
            # scheduler and hand the loop back (a long backlog is read over many turns).
            taken = 1
            while queue.size() and lanes.pending < cap:
                if taken >= STEP_ITEMS:
                    taken = 0
                    if pacer.due():
                        self._poke()
                        await pacer.turn()
                    continue
                try:
                    if own is None:
                        accept(await queue.get())
                        taken += 1
                    else:
                        taken += self._take_waiting(own, STEP_ITEMS - taken, accept)
                except QueueClosedError:
                    break
            self._poke()

    def _take_waiting(
        self,
        queue: InMemoryQueue[Operation],
        most: int,
        accept: Callable[[Operation], None] | None = None,
    ) -> int:
        """Move up to ``most`` waiting operations into the lanes without awaiting (a queue
        with ``get_nowait``, as the SDK's own), one at a time with ``accept`` (default:
        the lanes' own, behind the taps) or many at a time; return how many."""
        lanes = self._lanes
        cap = self._cap
        if _in_bulk(queue):
            # Never past the cap: a merged create weighs two (``outcomes.weight``).
            ops = queue._pop_many(min(most, (cap - lanes.pending + 1) // 2))
            taps = self._taps
            if taps:
                taps.show(ops)
            lanes.accept_many(ops)
            return len(ops)
        if accept is None:
            accept = self._taps.wrap(lanes.accept)
        # What waits now cannot go away meanwhile: only this task takes from the queue.
        waiting = min(most, len(queue))
        get_nowait = queue.get_nowait
        for moved in range(waiting):
            if lanes.pending >= cap:
                return moved
            accept(get_nowait())
        return waiting


def _in_bulk(queue: InMemoryQueue[Operation]) -> bool:
    """True when ``queue`` takes many items as it takes one (``_pop_many`` and ``_pop``
    come from the same class: not a subclass that changes only how one is taken)."""
    mro = type(queue).__mro__
    owner = next(c for c in mro if "_pop" in c.__dict__)
    return "_pop_many" in owner.__dict__
