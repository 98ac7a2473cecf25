"""Our SDK against a real server process that goes down, restarts, fails and loses answers.

Each scenario runs thousands of nested spans across concurrent tasks while the fault
happens, then closes the client (which drains within its deadline) and compares what the
agent opened with what the server stored: sent == stored, no duplicates, no exception
raised into the agent, nothing dropped, every span finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from prefactor_core import PrefactorCoreClient

from .conftest import Record
from .faultproxy import FaultProxy, FaultRates
from .support import (
    AgentRun,
    ServerProcess,
    Tally,
    client_config,
    idempotency_count,
    run_agent,
    tally,
)

pytestmark = pytest.mark.slow

Controller = Callable[[asyncio.Event], Awaitable[None]]


async def _scenario(
    name: str,
    api_url: str,
    db_path: Path,
    controller: Controller,
    *,
    pace: float,
    tasks_per_instance: int = 10,
    instances: int = 2,
) -> Tally:
    """Run the agent while ``controller`` stages the fault; ``controller`` sets the stop
    event when the agent should wrap up."""
    run = AgentRun()
    stop = asyncio.Event()
    client = PrefactorCoreClient(client_config(api_url))
    try:
        await client.initialize()
    except Exception as error:
        run.errors.append(error)
    agent = asyncio.create_task(
        run_agent(
            client,
            run,
            instances=instances,
            tasks_per_instance=tasks_per_instance,
            stop=stop,
            max_iterations=2_000,
            pace=pace,
        )
    )
    try:
        await controller(stop)
    finally:
        stop.set()
        await agent
    try:
        await client.close()
    except Exception as error:
        run.errors.append(error)
    stats = client.statistics()
    assert stats.queued == 0, stats
    assert stats.in_flight == 0, stats
    return tally(name, db_path, run, dropped=stats.dropped)


def _check(row: Tally, *, at_least: int = 1000) -> None:
    assert row.sent >= at_least, f"the workload made only {row.sent} spans"
    assert row.agent_errors == 0, row
    assert row.stored == row.sent, row
    assert row.duplicates == 0, row
    assert row.unfinished == 0, row
    assert row.dropped == 0, row


def _check_one_key_per_span(db_path: Path, row: Tally) -> None:
    # Every span create reached the server under one idempotency key for its whole life
    # (a retry under a new key would have stored a second key, or been refused as a
    # duplicate id): as many create keys as spans.
    assert idempotency_count(db_path, "agent_spans/create") == row.stored


@pytest.mark.timeout(180)
async def test_server_down_for_the_first_10s(server_process: ServerProcess, record: Record) -> None:
    """The agent starts while nothing listens; the server comes up 10 s later."""

    async def controller(stop: asyncio.Event) -> None:
        await asyncio.sleep(10)  # the outage itself
        await server_process.astart()
        await asyncio.sleep(2)  # some work with the server up
        stop.set()

    row = await _scenario(
        "server down first 10 s", server_process.url, server_process.db_path, controller, pace=0.2
    )
    record(row)
    _check(row)
    _check_one_key_per_span(server_process.db_path, row)


@pytest.mark.timeout(240)
async def test_server_down_30s_mid_run(server_process: ServerProcess, record: Record) -> None:
    """Connections are refused for 30 s in the middle of the run."""
    await server_process.astart()
    async with FaultProxy(server_process.url, seed=1) as proxy:

        async def controller(stop: asyncio.Event) -> None:
            await asyncio.sleep(3)
            await proxy.refuse()
            await asyncio.sleep(30)  # the outage itself
            await proxy.accept()
            await asyncio.sleep(3)
            stop.set()

        row = await _scenario(
            "server down 30 s mid-run", proxy.url, server_process.db_path, controller, pace=0.5
        )
    row.notes = f"{proxy.counts['refused']} connections dropped"
    record(row)
    _check(row)
    _check_one_key_per_span(server_process.db_path, row)


@pytest.mark.timeout(180)
async def test_server_restarted_mid_run(server_process: ServerProcess, record: Record) -> None:
    """The server process is SIGKILLed mid-run and a new one starts on the same db and port."""
    await server_process.astart()

    async def controller(stop: asyncio.Event) -> None:
        await asyncio.sleep(3)
        server_process.kill()
        await server_process.astart()
        await asyncio.sleep(3)
        stop.set()

    row = await _scenario(
        "server restarted mid-run", server_process.url, server_process.db_path, controller, pace=0.2
    )
    row.notes = f"{server_process.starts} server processes"
    record(row)
    assert server_process.starts == 2
    _check(row)
    _check_one_key_per_span(server_process.db_path, row)


@pytest.mark.timeout(180)
async def test_30_percent_of_requests_fail_transiently(
    server_process: ServerProcess, record: Record
) -> None:
    """Every kind of transient failure, 30% of requests in all, plus slow answers."""
    await server_process.astart()
    async with FaultProxy(server_process.url, seed=2) as proxy:
        proxy.set_faults(
            FaultRates(
                rates={
                    "status_500": 0.06,
                    "status_502": 0.05,
                    "status_503": 0.06,
                    "status_429": 0.06,
                    "hang": 0.02,
                    "reset": 0.05,
                    "slow": 0.05,
                },
                retry_after=1,
                hang_seconds=3.0,  # past the client's 2 s request timeout
                slow_seconds=0.3,
            )
        )

        async def controller(stop: asyncio.Event) -> None:
            await asyncio.sleep(8)
            stop.set()

        row = await _scenario(
            "30% of requests fail transiently",
            proxy.url,
            server_process.db_path,
            controller,
            pace=0.1,
        )
    failures = {k: v for k, v in proxy.counts.items() if k not in ("pass", "slow")}
    row.notes = " ".join(f"{k}={v}" for k, v in sorted(failures.items()))
    record(row)
    assert sum(failures.values()) >= 5, proxy.counts  # the faults did happen
    _check(row)
    _check_one_key_per_span(server_process.db_path, row)


@pytest.mark.timeout(180)
async def test_responses_lost_after_the_server_committed(
    server_process: ServerProcess, record: Record
) -> None:
    """30% of writes are committed by the server but their answer never arrives, so the SDK
    retries what is already stored; the idempotency table answers the replays."""
    await server_process.astart()
    async with FaultProxy(server_process.url, seed=3) as proxy:
        proxy.set_faults(
            FaultRates(
                rates={"lose_response": 0.3},
                paths=("/api/v1/bulk", "/api/v1/agent_spans", "/api/v1/agent_instance"),
            )
        )

        async def controller(stop: asyncio.Event) -> None:
            await asyncio.sleep(6)
            stop.set()

        row = await _scenario(
            "responses lost after commit", proxy.url, server_process.db_path, controller, pace=0.1
        )
    row.notes = f"lost={proxy.counts['lose_response']} of {proxy.forwarded} forwarded"
    record(row)
    assert proxy.counts["lose_response"] >= 3, proxy.counts
    _check(row)
    _check_one_key_per_span(server_process.db_path, row)
