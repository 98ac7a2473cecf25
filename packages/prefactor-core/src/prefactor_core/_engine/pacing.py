"""How the engine shares the agent's event loop: short turns, one engine task at a time.

The async client's engine runs on the agent's own event loop, beside the agent's tasks:
while it holds the loop (reading the queue into lanes, planning a batch, settling an
answer, letting a delivered batch go), nothing of the agent's runs. So the engine works
in *turns* of at most ``TURN_BUDGET`` seconds:

* Work that handles many items (``batching.STEP_ITEMS`` at a time) asks ``Pacer.due()``
  between pieces; once the current turn has run for its budget, it calls
  ``await Pacer.turn()``, which hands the loop back and resumes the task in a later
  turn. Small pieces of work never pay for a turn.
* The budget is the engine's, not one task's: a turn starts when a task resumes from
  ``turn()``, and every engine task that runs before the next turn starts counts against
  it. So when one task has used the turn, another one woken in the same pass of the
  loop (an answer arrived, the scheduler was poked) gives way at its first check instead
  of adding its own piece.
* Waiting tasks resume one per pass of the loop, in the order they gave way: a pass of
  the loop runs at most one engine turn, and the agent's ready callbacks (and timers that
  came due) run between two turns.

The budget bounds how long the engine holds the loop in one go, not how much it does:
the same work takes the same CPU, in more pieces (each turn costs a few microseconds).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["TURN_BUDGET", "Pacer"]

TURN_BUDGET = 0.00025
"""Seconds the engine may hold the agent's loop in one turn (checked between pieces of
work, so a turn can run over by one piece: ``batching.STEP_ITEMS`` items)."""


class Pacer:
    """The engine's turns on the loop (see the module).

    Args:
        budget: Seconds per turn; 0 gives the loop back at every check.
    """

    __slots__ = ("_passing", "_since", "_waiting", "budget")

    def __init__(self, budget: float | None = None) -> None:
        self.budget = TURN_BUDGET if budget is None else budget
        self._since = -float("inf")  # when the current turn began
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._passing = False  # a release is scheduled on the loop

    def due(self) -> bool:
        """True when the current turn has used its budget: call ``turn()`` now."""
        return time.perf_counter() - self._since >= self.budget

    async def turn(self) -> None:
        """Hand the loop back; return when it is this task's turn again."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        if not self._passing:
            self._passing = True
            loop.call_soon(self._release)
        await waiter
        self._since = time.perf_counter()

    def _release(self) -> None:
        """Resume the first waiting task (its step runs in the next pass of the loop),
        and come back in the pass after for the next one."""
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():  # a cancelled task's waiter is skipped
                waiter.set_result(None)
                break
        if waiting:
            asyncio.get_running_loop().call_soon(self._release)
        else:
            self._passing = False
