"""ThreadSafeSubmitter: operations from other threads reach the client's queue in order,
and nothing raises when they cannot."""

from __future__ import annotations

import asyncio
import threading
import time

from prefactor_core import PrefactorCoreClient
from prefactor_core._engine.threadsafe import ThreadSafeSubmitter
from prefactor_core.operations import Operation, OperationType
from prefactor_server.testing import LocalServer

from .conftest import ClientFactory
from .support import read_one


def _register(instance_id: str) -> Operation:
    body = {
        "id": instance_id,
        "agent_id": "threads",
        "agent_version": {"name": "Threads"},
        "agent_schema_version": {"external_identifier": "threads"},
    }
    return Operation(
        OperationType.REGISTER_AGENT_INSTANCE,
        {"instance_id": instance_id, "body": body},
        time.time(),
        f"reg-{instance_id}",
    )


def _start(instance_id: str) -> Operation:
    return Operation(
        OperationType.START_AGENT_INSTANCE,
        {"instance_id": instance_id, "timestamp": time.time()},
        time.time(),
        f"start-{instance_id}",
    )


async def test_operations_from_threads_are_delivered_in_order(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Register then start, submitted from four threads at once, all arrive (a start
    before its register would be refused)."""
    async with make_client() as client:
        submitter = ThreadSafeSubmitter(client, asyncio.get_running_loop())

        def work(index: int) -> None:
            for run in range(10):
                instance_id = f"thread-{index}-{run}"
                submitter.submit([_register(instance_id), _start(instance_id)])

        threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        await submitter.wait_handed_over()
        assert await client.flush(timeout=10)
    assert submitter.dropped == 0
    for index in range(4):
        for run in range(10):
            stored = await read_one(server, f"/api/v1/agent_instance/thread-{index}-{run}")
            assert stored["status"] == "active"


def test_closed_loop_counts_drops_and_never_raises(make_client: ClientFactory) -> None:
    """Operations handed over after the client's loop closed are counted as dropped."""
    loop = asyncio.new_event_loop()
    client: PrefactorCoreClient = make_client()
    submitter = ThreadSafeSubmitter(client, loop)
    loop.close()
    submitter.submit([_register("late"), _start("late")])
    assert submitter.dropped == 2
