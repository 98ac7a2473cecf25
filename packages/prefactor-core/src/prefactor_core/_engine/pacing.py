"""How the engine shares the agent's event loop: short turns, one engine task at a time.

The async client's engine runs on the agent's own event loop, beside the agent's tasks:
while it holds the loop (reading the queue into lanes, planning a batch, settling an
answer, letting a delivered batch go), nothing of the agent's runs. So the engine works
in *turns*:

* Work that handles many items (``batching.STEP_ITEMS`` at a time) asks ``Pacer.due()``
  between pieces; once the current turn has run for its length, it calls
  ``await Pacer.turn()``, which hands the loop back and resumes the task in a later
  turn. Small pieces of work never pay for a turn.
* A turn is as long as the CPU the loop's thread spent on other work while the engine
  waited for it, at least ``TURN_BUDGET`` (0.15 ms) and at most ``TURN_MAX`` (1 ms). On
  a loop where the agent is mostly waiting, the engine holds it 0.15 ms at a time (a
  1 ms timer of the agent's then waits at most about 2 ms in all: it fires after the
  pass under way and wakes its task one pass later, each pass holding one engine
  turn); an agent that keeps the loop busy with long steps gets as much time between
  two turns as the engine takes in one (up to 1 ms), so delivery keeps about half of a
  busy loop instead of starving behind it. The engine's own work outside its turns
  (the HTTP client's steps, run through ``metered``) does not count as other work, nor
  does a task's work before it stops to wait for something else (``rest``).
* The length is the engine's, not one task's: a turn starts when a task resumes from
  ``turn()``, and every engine task that runs before the next turn starts counts against
  it. So when one task has used the turn, another one woken in the same pass of the
  loop (an answer arrived, the scheduler was poked) gives way at its first check instead
  of adding its own piece.
* Waiting tasks resume one per pass of the loop, in the order they gave way: a task
  that begins its turn resumes the next waiting one, whose step runs in the next pass.
  So a pass of the loop runs at most one engine turn, and the agent's ready callbacks
  (and timers that came due) run between two turns. A turn costs one wake-up.

The turns bound how long the engine holds the loop in one go, not how much it does: the
same work takes the same CPU, in more pieces (a turn costs about 6 µs: a pass of the
loop, a wake-up and two readings of the thread's CPU clock).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["TURN_BUDGET", "TURN_MAX", "Pacer"]

_T = TypeVar("_T")

TURN_BUDGET = 0.00015
"""The shortest turn, in seconds: how long the engine holds a loop whose agent is mostly
waiting (checked between pieces of work, so a turn can run over by one piece of
``batching.STEP_ITEMS`` items)."""

TURN_MAX = 0.001
"""The longest turn, in seconds, however long the agent's own steps are."""


class Pacer:
    """The engine's turns on the loop (see the module).

    Args:
        budget: The shortest turn in seconds (``TURN_BUDGET``); with ``longest`` 0 too,
            the loop is given back at every check.
        longest: The longest turn in seconds (``TURN_MAX``).
    """

    __slots__ = (
        "_gave_way",
        "_handing",
        "_length",
        "_since",
        "_unpaced",
        "_waiting",
        "budget",
        "longest",
    )

    def __init__(self, budget: float | None = None, longest: float | None = None) -> None:
        self.budget = TURN_BUDGET if budget is None else budget
        self.longest = TURN_MAX if longest is None else longest
        self._since = -float("inf")  # when the current turn began
        self._length = self.budget  # how long the current turn may last
        self._gave_way = 0.0  # the loop thread's CPU time when the engine last gave way
        self._unpaced = 0.0  # the engine's CPU since then outside its turns (``metered``)
        self._waiting: deque[asyncio.Future[None]] = deque()
        # A task was resumed and has not begun its turn yet (when False, none waits).
        self._handing = False

    @property
    def length(self) -> float:
        """How long the current turn may last, in seconds (see the module)."""
        return self._length

    def due(self) -> bool:
        """True when the current turn has run its length: call ``turn()`` now."""
        return time.perf_counter() - self._since >= self._length

    async def turn(self) -> None:
        """Hand the loop back; return when it is this task's turn again."""
        self.rest()
        if self._handing:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand_on()  # resumed, then cancelled: the next one goes instead
                raise
        else:
            # Nobody waits (``_waiting`` is empty): this task goes again after one pass.
            self._handing = True
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self._hand_on()
                raise
        # As long as the loop's other work took meanwhile, within the bounds.
        other = time.thread_time() - self._gave_way - self._unpaced
        self._length = min(self.longest, max(self.budget, other))
        self._since = time.perf_counter()
        # The next waiter resumes in the next pass of the loop, after this turn.
        self._hand_on()

    def rest(self) -> None:
        """Note that an engine task stops to wait for something else than a turn (the
        queue, a poke): what the loop runs from now on is not the engine's work."""
        self._gave_way = time.thread_time()
        self._unpaced = 0.0

    def metered(self, steps: Awaitable[_T]) -> Awaitable[_T]:
        """``steps`` (the HTTP client's work on a request, which runs outside the
        engine's turns), counting the CPU of each of its steps as the engine's."""
        return _Metered(steps, self)

    def _hand_on(self) -> None:
        """Resume the first waiting task (its step runs in the next pass of the loop)."""
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():  # a cancelled task's waiter is skipped
                waiter.set_result(None)
                self._handing = True
                return
        self._handing = False


class _Metered(Generic[_T]):
    """An awaitable that counts the CPU of each step of another as the engine's."""

    __slots__ = ("_pacer", "_steps")

    def __init__(self, steps: Awaitable[_T], pacer: Pacer) -> None:
        self._steps = steps
        self._pacer = pacer

    def __await__(self) -> Generator[Any, Any, _T]:
        steps = self._steps.__await__()
        pacer = self._pacer
        cpu = time.thread_time
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            start = cpu()
            try:
                step = steps.send(sent) if thrown is None else steps.throw(thrown)
            except StopIteration as done:
                result: _T = done.value
                return result
            finally:
                # A turn taken inside the step (``rest()``) starts the count afresh.
                pacer._unpaced += cpu() - max(start, pacer._gave_way)
            try:
                sent, thrown = (yield step), None
            except BaseException as error:  # cancellation included: passed on
                sent, thrown = None, error
