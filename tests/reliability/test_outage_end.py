"""Outages that end at any point of the retry schedule (issue 10), against a real server.

An outage (connections refused by the fault proxy) starts either before the client does
(the start-up probe retries) or in the middle of a run (delivery retries). It lasts a
seeded number of backoff waits and ends at a seeded point of the last one; then the agent
does more work and either closes at once, flushes, or lets the wait run out. The client's
sleep is a virtual clock that the test drives, so the schedule is exact and nothing here
sleeps: a wait ends only when the test advances the clock or the SDK cuts it short.

Whatever the point, every span must be stored exactly once, finished, with nothing
dropped and no exception in the agent; and a probe never waits longer than its cap.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from prefactor_core import PrefactorCoreClient, QueueConfig
from prefactor_core._engine.retry import URGENT_DELAY

from .conftest import Record
from .faultproxy import FaultProxy
from .support import AgentRun, ServerProcess, client_config, run_agent, tally

pytestmark = pytest.mark.slow

SEEDS = range(8)
MAX_PROBE_DELAY = 2.0


@dataclass
class VirtualClock:
    """The SDK's sleep: each wait over ``URGENT_DELAY`` lasts until ``advance()`` (or until
    the SDK cuts it short); the short waits of a flush or close pass at once.

    Attributes:
        now: Virtual seconds since the start.
        delays: Every wait the SDK asked for, in order.
    """

    now: float = 0.0
    delays: list[float] = field(default_factory=list)
    _pending: list[tuple[float, asyncio.Future[None]]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if delay <= URGENT_DELAY:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        entry = (self.now + delay, wake)
        self._pending.append(entry)
        self._changed.set()
        try:
            await wake
        finally:
            if entry in self._pending:  # cut short by the SDK (flush, close)
                self._pending.remove(entry)

    async def next_wait(self) -> float:
        """Wait (on events) until the SDK is in a wait; return when that wait would end."""
        async with asyncio.timeout(60):
            while not self._pending:
                self._changed.clear()
                await self._changed.wait()
        return min(at for at, _ in self._pending)

    def advance(self) -> None:
        """Move virtual time to the end of the earliest wait, ending it."""
        entry = min(self._pending, key=lambda entry: entry[0])
        self._pending.remove(entry)
        self.now = max(self.now, entry[0])
        entry[1].set_result(None)


@dataclass
class Plan:
    """One seeded scenario."""

    phase: str  # "start-up" or "mid-run"
    waits: int  # how many backoff waits the outage lasts
    fraction: float  # where in the last wait the API comes back
    ending: str  # "close", "flush" or "wait"
    iterations: int  # spans made per task per phase, three spans per iteration

    @classmethod
    def draw(cls, seed: int) -> Plan:
        rng = random.Random(seed)
        return cls(
            phase=("start-up", "mid-run")[seed % 2],
            waits=rng.randint(1, 4),
            fraction=rng.random(),
            ending=("close", "flush", "wait")[(seed // 2) % 3],
            iterations=rng.randint(10, 40),
        )


async def _work(client: PrefactorCoreClient, run: AgentRun, iterations: int) -> None:
    await run_agent(
        client,
        run,
        instances=1,
        tasks_per_instance=2,
        stop=asyncio.Event(),
        max_iterations=iterations,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", SEEDS)
async def test_an_outage_ending_anywhere_in_the_retry_schedule_loses_nothing(
    seed: int, server_process: ServerProcess, record: Record
) -> None:
    """Every span is stored exactly once however long the outage and wherever it ends."""
    plan = Plan.draw(seed)
    await server_process.astart()
    clock = VirtualClock()
    run = AgentRun()
    async with FaultProxy(server_process.url, seed=seed) as proxy:
        config = client_config(proxy.url, close_timeout=60).model_copy(
            update={
                "startup_timeout": 0.0,
                "queue_config": QueueConfig(max_probe_delay=MAX_PROBE_DELAY),
            }
        )
        client = PrefactorCoreClient(config, sleep=clock.sleep)
        if plan.phase == "start-up":
            await proxy.refuse()
            await client.initialize()
        else:
            await client.initialize()
            await _work(client, run, plan.iterations)
            assert await client.flush(30)
            await proxy.refuse()
        await _work(client, run, plan.iterations)  # queued during the outage

        # The outage: each wait ends and the next attempt fails, until the last wait.
        for _ in range(plan.waits - 1):
            await clock.next_wait()
            clock.advance()
        wake = await clock.next_wait()
        last = clock.delays[-1]
        comes_back = wake - last + plan.fraction * last
        await proxy.accept()  # the API is back at virtual time `comes_back`
        await _work(client, run, plan.iterations)

        if plan.ending == "flush":
            assert await client.flush(30)
        elif plan.ending == "wait":
            clock.advance()  # the wait runs out and the SDK tries again by itself
        await client.close()
    stats = client.statistics()
    row = tally(
        f"outage end {seed}: {plan.phase} {plan.waits}w {plan.ending}",
        server_process.db_path,
        run,
        dropped=stats.dropped,
        notes=f"API back at {comes_back:.1f}s, next try due at {wake:.1f}s",
    )
    record(row)
    assert row.sent == 2 * (2 if plan.phase == "mid-run" else 1) * plan.iterations * 3 + (
        2 * plan.iterations * 3
    )
    assert row.agent_errors == 0, run.errors
    assert row.stored == row.sent, row
    assert row.duplicates == 0, row
    assert row.unfinished == 0, row
    assert stats.dropped == 0, stats
    assert stats.queued == 0, stats
    if plan.phase == "start-up":
        # The probe never waits longer than its cap (with jitter): an API that comes
        # back is used within a few seconds even without a flush or close.
        assert max(clock.delays) <= MAX_PROBE_DELAY * 1.25, clock.delays
        assert wake - comes_back <= MAX_PROBE_DELAY * 1.25
