"""The engine's thread-safe entry: order across threads, custom queues, bounds, and
``client._submit`` (the entry's never-raising face for bridges such as the OTel
processor)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

from prefactor_core import Operation, OperationType, PrefactorCoreClient, Queue, trace
from prefactor_core._engine.entry import EngineEntry
from prefactor_core.queue.base import QueueFullError
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import read_one, spans_of


@trace("agent:tool")
def leaf(i: int) -> int:
    return i


@trace("agent:retrieval")
def pages() -> Iterator[int]:
    for i in range(2):
        yield leaf(i)


async def test_nothing_overtakes_what_another_thread_emitted(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span started on a thread while the loop is blocked is queued before the child
    that the loop then starts under it: the server sees the parent's create first."""
    async with asyncio.timeout(30):
        async with (
            make_client() as client,
            client.create_agent_instance(agent_id="order", agent_version=AGENT_VERSION) as run,
        ):
            await run.start()
            stream = pages()
            worker = threading.Thread(target=next, args=(stream,))
            worker.start()
            worker.join()  # blocks the loop: the thread's emits are still buffered
            assert next(stream) == 1  # leaf(1) starts on the loop's thread
            stream.close()
        writes = client.test_transport.writes()  # type: ignore[attr-defined]
    creates = [fields for action, fields in writes if action == "agent_spans/create"]
    names = [fields.get("schema_name") or fields["details"]["schema_name"] for fields in creates]
    assert names[0] == "agent:retrieval"
    rows = await spans_of(server, run.id)
    [parent] = [r for r in rows if r["schema_name"] == "agent:retrieval"]
    children = [r for r in rows if r["schema_name"] == "agent:tool"]
    assert {c["parent_span_id"] for c in children} == {parent["id"]}
    assert len(children) == 2


class DelegatingQueue(Queue[Operation]):
    """A user's own queue: only the awaited put (no put_nowait)."""

    def __init__(self) -> None:
        self._inner: InMemoryQueue[Operation] = InMemoryQueue()

    async def put(self, item: Operation) -> None:
        await self._inner.put(item)

    async def get(self) -> Operation:
        return await self._inner.get()

    def size(self) -> int:
        return self._inner.size()

    async def close(self, num_waiters: int = 1) -> None:
        await self._inner.close(num_waiters)

    def closed(self) -> bool:
        return self._inner.closed()


async def test_threads_reach_a_custom_queue_through_the_awaited_put(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """With a queue that has only an awaited put, spans from worker threads still arrive."""
    async with asyncio.timeout(30):
        client = make_client()
        client._custom_queue = DelegatingQueue()
        async with (
            client,
            client.create_agent_instance(agent_id="custom", agent_version=AGENT_VERSION) as run,
        ):
            await run.start()
            results = await asyncio.gather(*(asyncio.to_thread(leaf, i) for i in range(20)))
        assert results == list(range(20))
    rows = await spans_of(server, run.id)
    assert sorted(r["payload"]["i"] for r in rows) == list(range(20))


async def test_a_full_buffer_drops_and_counts_without_blocking() -> None:
    """Past max_pending the entry drops (never blocks the emitting thread) and reports how
    many it dropped; what it kept goes into the queue in order."""
    loop = asyncio.get_running_loop()
    taken: list[int] = []
    dropped: list[int] = []

    async def put(op: object) -> None:
        raise AssertionError("not used: put_nowait always has room here")

    entry = EngineEntry(loop, taken.append, put, dropped.append, max_pending=3)  # type: ignore[arg-type]
    worker = threading.Thread(target=lambda: [entry.emit(i) for i in range(5)])  # type: ignore[arg-type]
    worker.start()
    worker.join()  # the loop has not run: everything is still buffered
    await entry.settle()
    assert taken == [0, 1, 2]
    assert sum(dropped) == 2


async def test_a_full_queue_moves_to_the_awaited_put_in_order() -> None:
    """When put_nowait refuses, the rest goes through the awaited put, still in order."""
    loop = asyncio.get_running_loop()
    fast: list[int] = []
    slow: list[int] = []

    def put_nowait(op: int) -> None:
        if len(fast) >= 2:
            raise QueueFullError("full")
        fast.append(op)

    async def put(op: int) -> None:
        await asyncio.sleep(0)
        slow.append(op)

    entry = EngineEntry(loop, put_nowait, put, lambda _n: None, max_pending=100)  # type: ignore[arg-type]
    for i in range(6):
        entry.emit(i)  # type: ignore[arg-type]
    assert entry.pending
    await entry.settle()
    assert fast == [0, 1]
    assert slow == [2, 3, 4, 5]
    assert not entry.pending
    await entry.close()
    entry.emit(99)  # type: ignore[arg-type]
    assert not entry.pending


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


async def test_submitted_operations_from_threads_and_the_loop_arrive_in_order(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Register then start, submitted from four threads and from the loop itself, all
    arrive: a start before its register would be refused. Nothing is dropped, and flush
    waits for what the entry holds."""
    async with asyncio.timeout(30):
        async with make_client() as client:

            def work(index: int) -> None:
                for run in range(10):
                    instance_id = f"thread-{index}-{run}"
                    assert client._submit([_register(instance_id), _start(instance_id)]) == 0

            threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
            for thread in threads:
                thread.start()
            for run in range(10):  # meanwhile on the loop's own thread
                assert client._submit([_register(f"loop-{run}"), _start(f"loop-{run}")]) == 0
            for thread in threads:
                await asyncio.to_thread(thread.join)
            assert await client.flush(timeout=20)
            assert client.statistics().dropped == 0
    names = [f"thread-{i}-{run}" for i in range(4) for run in range(10)]
    for instance_id in names + [f"loop-{run}" for run in range(10)]:
        stored = await read_one(server, f"/api/v1/agent_instance/{instance_id}")
        assert stored["status"] == "active"


async def test_a_full_queue_on_the_loop_goes_through_the_bounded_entry(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """On the loop's thread with the queue full, operations wait in the entry (in order,
    as many as the queue holds) and the rest are dropped and counted, never blocking."""
    async with asyncio.timeout(30):
        async with make_client(max_queue_size=4, put_timeout=30.0) as client:
            # No await in between: the dispatcher cannot take from the queue meanwhile.
            ops = [
                op for run in range(6) for op in (_register(f"full-{run}"), _start(f"full-{run}"))
            ]
            assert client._submit(ops) == 4  # 4 on the queue, 4 in the entry, 4 dropped
            assert await client.flush(timeout=20)
            assert client.statistics().dropped == 4
    for run in range(4):
        assert (await read_one(server, f"/api/v1/agent_instance/full-{run}"))["status"] == "active"


def test_a_client_that_cannot_take_operations_counts_them_and_never_raises(
    make_client: ClientFactory,
) -> None:
    """Not yet open, closed, or its loop gone: ``_submit`` returns how many it dropped."""
    client = make_client()
    assert client._submit([_register("early"), _start("early")]) == 2

    async def open_then_leave() -> None:
        await client.initialize()

    runner = asyncio.Runner()
    runner.run(open_then_leave())
    runner.close()  # the loop is gone while the client still counts as open
    assert client._submit([_register("late"), _start("late")]) == 2

    closed = make_client()
    asyncio.run(_open_and_close(closed))
    assert closed._submit([_register("after"), _start("after")]) == 2


async def _open_and_close(client: PrefactorCoreClient) -> None:
    async with client:
        pass


class CountingQueue(InMemoryQueue[Operation]):
    """A user's own in-memory queue that counts what goes through it (empty at start, so
    ``len()`` of it is 0: it must still be used)."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = 0

    async def get(self) -> Operation:
        item = await super().get()
        self.taken += 1
        return item


async def test_an_empty_queue_of_the_users_own_is_used(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A queue passed in empty (falsy, like any empty container) is the client's queue."""
    async with asyncio.timeout(30):
        client = make_client()
        queue = CountingQueue()
        client._custom_queue = queue
        async with (
            client,
            client.create_agent_instance(agent_id="own", agent_version=AGENT_VERSION) as run,
        ):
            await run.start()
            async with run.span("agent:step"):
                pass
        assert queue.taken >= 3  # register, start, the span (and the finishes)
    assert len(await spans_of(server, run.id)) == 1
