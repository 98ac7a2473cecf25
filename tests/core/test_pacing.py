"""The engine's turns on the agent's event loop (``_engine.pacing.Pacer``): one engine
task at a time, in order, with the agent's callbacks running between two turns."""

from __future__ import annotations

import asyncio
import itertools

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
    pacer = Pacer(budget=0.0)
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
    assert Pacer(budget=3600.0).due()  # no turn began yet: give way first
    pacer = Pacer(budget=3600.0)
    await pacer.turn()
    assert not pacer.due()
    pacer.budget = 0.0
    assert pacer.due()


async def test_a_cancelled_waiter_does_not_hold_up_the_others() -> None:
    pacer = Pacer(budget=0.0)
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
