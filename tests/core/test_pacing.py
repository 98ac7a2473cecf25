"""The engine's turns on the agent's event loop (``_engine.pacing.Pacer``): one engine
task at a time, in order, with the agent's callbacks running between two turns."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from prefactor_core._engine.pacing import Pacer

pytestmark = pytest.mark.timeout(30)


class Agent:
    """A callback that runs once in every pass of the loop, as an agent's ready work
    would, and logs itself."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.stopped = False
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if not self.stopped:
            self.log.append("agent")
            asyncio.get_running_loop().call_soon(self._tick)


async def test_engine_tasks_take_turns_in_order_with_the_agent_between() -> None:
    pacer = Pacer(budget=0.0, longest=0.0)
    log: list[str] = []

    async def engine_task(name: str) -> None:
        for _ in range(4):
            await pacer.turn()
            log.append(name)

    agent = Agent(log)
    await asyncio.gather(*(engine_task(name) for name in "ABC"))
    agent.stopped = True
    engine = [entry for entry in log if entry != "agent"]
    assert engine == list("ABC" * 4)  # round robin, in the order they gave way
    # Never two engine turns in a row: the agent's callback ran between every two.
    assert not [pair for pair in itertools.pairwise(log) if "agent" not in pair]


async def test_a_turn_is_due_once_its_budget_is_used() -> None:
    assert Pacer(budget=3600.0, longest=3600.0).due()  # no turn began yet: give way first
    pacer = Pacer(budget=3600.0, longest=3600.0)
    await pacer.turn()
    assert not pacer.due()
    pacer.budget = pacer.longest = 0.0
    await pacer.turn()
    assert pacer.due()


async def test_a_cancelled_waiter_does_not_hold_up_the_others() -> None:
    pacer = Pacer(budget=0.0, longest=0.0)
    done: list[str] = []

    async def wait(name: str) -> None:
        await pacer.turn()
        done.append(name)

    first = asyncio.create_task(wait("first"))
    second = asyncio.create_task(wait("second"))
    third = asyncio.create_task(wait("third"))
    await asyncio.sleep(0)  # all three are waiting for a turn
    second.cancel()
    await asyncio.gather(first, third)
    assert done == ["first", "third"]
    assert second.cancelled()


@pytest.mark.parametrize("cancelled", ["first", "second"])
async def test_a_task_cancelled_as_its_turn_comes_passes_the_turn_on(cancelled: str) -> None:
    """The first task goes after one pass of the loop; the second is resumed when the
    first begins its turn. Either one cancelled just then: the others still go."""
    pacer = Pacer(budget=0.0, longest=0.0)
    done: list[str] = []

    async def wait(name: str) -> None:
        await pacer.turn()
        done.append(name)

    tasks = {name: asyncio.create_task(wait(name)) for name in ("first", "second", "third")}
    await asyncio.sleep(0)  # all three are in turn()
    if cancelled == "second":
        await asyncio.sleep(0)  # the first began its turn and resumed the second
        assert done == ["first"]
    tasks[cancelled].cancel()
    await asyncio.gather(*(task for name, task in tasks.items() if name != cancelled))
    assert done == [name for name in ("first", "second", "third") if name != cancelled]
    assert tasks[cancelled].cancelled()


def burn(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU, as an agent's long step would."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_a_turn_is_as_long_as_the_agents_work_between_two_turns_within_bounds() -> None:
    pacer = Pacer(budget=0.001, longest=0.004)
    await pacer.turn()  # nothing else runs meanwhile: the shortest turn
    assert pacer.length == 0.001
    asyncio.get_running_loop().call_soon(burn, 0.002)
    await pacer.turn()  # the agent's 2 ms step ran meanwhile: a turn as long
    assert 0.002 <= pacer.length < 0.004
    asyncio.get_running_loop().call_soon(burn, 0.010)
    await pacer.turn()  # a 10 ms step: the longest turn
    assert pacer.length == 0.004


async def test_the_engines_own_work_outside_its_turns_does_not_lengthen_a_turn() -> None:
    """CPU of steps run through ``metered`` (the HTTP client's) is the engine's, not the
    agent's: the next turn stays short."""
    pacer = Pacer(budget=0.001, longest=0.004)

    async def http_steps() -> str:
        burn(0.005)
        await asyncio.sleep(0)
        burn(0.005)
        return "answer"

    request = asyncio.ensure_future(pacer.metered(http_steps()))
    await pacer.turn()
    await pacer.turn()
    assert await request == "answer"
    assert pacer.length == 0.001


async def test_metered_passes_on_errors_and_cancellation() -> None:
    pacer = Pacer()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await pacer.metered(fails())
    waiting = asyncio.Event()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await waiting.wait()
        finally:
            cleaned.append("closed")

    task = asyncio.ensure_future(pacer.metered(waits()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["closed"]
