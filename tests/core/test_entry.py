"""The engine's thread-safe entry: order across threads, custom queues, bounds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from prefactor_core import Operation, Queue, trace
from prefactor_core._engine.entry import EngineEntry
from prefactor_core.queue.base import QueueFullError
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import spans_of


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
