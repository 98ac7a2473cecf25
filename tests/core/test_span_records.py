"""Spans queued as their own records (``queue._spans``): one queue entry per span, its
finish folded in while the engine has not taken it, published operations for every
queue a user passes."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from prefactor_core import InMemoryQueue, Operation, OperationType, PrefactorCoreClient
from prefactor_core._engine.optable import MERGED_FINISH
from prefactor_core._engine.outcomes import split, weight
from prefactor_core._open_spans import FOLDED, QUEUED, TAKEN, OpenSpan, SpanTable
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.queue._spans import SpanQueue
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import TestTransport, spans_of
from .test_open_spans import _table as plain_table

pytestmark = pytest.mark.timeout(60)

_CREATE, _FINISH = OperationType.CREATE_SPAN, OperationType.FINISH_SPAN


def _table(queue: SpanQueue) -> tuple[SpanTable, list[Operation]]:
    """A table whose spans go to ``queue`` as records; operations it queues the usual
    way (a finish after the take) land in the returned list."""
    table, offered = plain_table()

    def offer_span(span: OpenSpan) -> bool:
        queue.put_nowait(span)  # type: ignore[arg-type]  # a record, as the client puts it
        return True

    table.offer_span = offer_span
    table.fold_target = lambda: queue
    return table, offered


def _drain(queue: SpanQueue) -> Iterator[Operation]:
    while queue.size():
        yield queue.get_nowait()


def test_a_finish_before_the_take_is_folded_into_the_record() -> None:
    """Create and finish make one entry; the engine takes one create that carries the
    finish (two operations), and splitting it gives back exactly the two operations."""
    queue = SpanQueue()
    table, offered = _table(queue)
    span = OpenSpan("i1", "agent:step", None)
    table.open(span, push=False)
    assert table.create(span, "active", '{"q":1}', 10.0) is None
    assert span._queued == QUEUED
    assert table.finish(span, "failed", '{"r":2}', 12.5, None, None) is None
    assert span._queued == FOLDED
    assert (len(queue), queue.size(), queue.folded, offered) == (1, 2, 1, [])
    [merged] = _drain(queue)
    assert merged.type is _CREATE
    assert merged.payload == {
        "instance_id": "i1",
        "span_id": "s1",
        "schema_name": "agent:step",
        "status": "failed",
        "payload_json": '{"q":1}',
        "started_at": 10.0,
        "result_json": '{"r":2}',
        "finished_at": 12.5,
    }
    assert (merged.idempotency_key, merged.metadata) == ("c-s1", {MERGED_FINISH: "f-s1"})
    assert weight(merged) == 2
    assert merged.timestamp.timestamp() == 10.0
    create, finish = split(merged)
    assert (create.type, finish.type) == (_CREATE, _FINISH)
    assert create.payload == {
        "instance_id": "i1",
        "span_id": "s1",
        "schema_name": "agent:step",
        "status": "active",
        "payload_json": '{"q":1}',
        "started_at": 10.0,
    }
    assert finish.payload == {
        "instance_id": "i1",
        "span_id": "s1",
        "status": "failed",
        "result_json": '{"r":2}',
        "timestamp": 12.5,
    }
    assert (create.idempotency_key, finish.idempotency_key) == ("c-s1", "f-s1")
    assert (create.metadata, finish.metadata) == ({}, {})
    assert finish.timestamp.timestamp() == 12.5
    assert (span._queued, queue.size(), queue.folded, table.spans) == (TAKEN, 0, 0, {})


def _kinds(op: Operation) -> list[OperationType]:
    """The operations ``op`` stands for (a merged create: its create and its finish)."""
    return [_CREATE, _FINISH] if MERGED_FINISH in op.metadata else [op.type]


def test_a_finish_after_the_take_is_queued_as_its_own_operation() -> None:
    """Once the engine took the record, the finish goes the usual way, behind it."""
    queue = SpanQueue()
    table, offered = _table(queue)
    span = OpenSpan("i1", "agent:step", "p0")
    table.open(span, push=False)
    table.create(span, "active", "{}", 1.0)
    [create] = _drain(queue)
    assert create.payload["parent_span_id"] == "p0"
    assert table.finish(span, "complete", None, 2.0, None, None) is None
    assert [(op.type, op.payload["status"]) for op in offered] == [(_FINISH, "complete")]
    assert (span._queued, queue.size(), queue.folded) == (TAKEN, 0, 0)


def test_a_finish_with_its_own_key_and_chosen_ids_are_never_folded() -> None:
    """A caller's idempotency key must reach the API on the finish itself, and a span
    with an id of the caller's own gets random keys: both keep their operations."""
    queue = SpanQueue()
    table, offered = _table(queue)
    keyed = OpenSpan("i1", "t", None)
    table.open(keyed, push=False)
    table.create(keyed, "active", "{}", 1.0)
    table.finish(keyed, "complete", None, 2.0, "my-finish-key-0001", None)
    chosen = OpenSpan("i1", "t", None)
    table.open(chosen, push=False, span_id="mine")
    table.create(chosen, "active", "{}", 1.0)
    table.finish(chosen, "complete", None, 2.0, None, None)
    assert queue.size() == 1  # only the keyed span's record
    assert [(op.type, op.payload["span_id"]) for op in offered] == [
        (_FINISH, "s1"),
        (_CREATE, "mine"),
        (_FINISH, "mine"),
    ]
    assert offered[0].idempotency_key == "my-finish-key-0001"
    assert offered[1].idempotency_key not in (None, "c-mine")


def test_folding_and_taking_on_two_threads_lose_and_repeat_nothing() -> None:
    """With the engine taking on another thread while spans finish, every span yields
    its create and then its finish exactly once, folded or not."""
    queue = SpanQueue()
    table, offered = _table(queue)
    taken: list[Operation] = []
    done = threading.Event()

    def engine() -> None:
        while not done.is_set() or queue.size():
            while len(queue):
                taken.append(queue.get_nowait())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=engine)
    thread.start()
    try:
        for _ in range(30_000):
            span = OpenSpan("i1", "t", None)
            table.open(span, push=False)
            table.create(span, "active", "{}", 1.0)
            table.finish(span, "complete", None, 2.0, None, None)
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(interval)
    # Operations queued the usual way (after a take) went to `offered`; per span the
    # create was taken before its finish was made, in either case.
    seen: dict[str, list[OperationType]] = {}
    for op in [*taken, *offered]:
        seen.setdefault(op.payload["span_id"], []).extend(_kinds(op))
    assert len(seen) == 30_000
    assert all(kinds == [_CREATE, _FINISH] for kinds in seen.values())
    assert (queue.size(), queue.folded) == (0, 0)


class RecordingQueue(InMemoryQueue[Operation]):
    """A user's own queue that notes the class of everything put on it."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[tuple[type, OperationType | None]] = []

    def put_nowait(self, item: Operation) -> None:
        self.kinds.append((type(item), getattr(item, "type", None)))
        super().put_nowait(item)

    async def put(self, item: Operation) -> None:
        self.kinds.append((type(item), getattr(item, "type", None)))
        await super().put(item)


async def test_a_queue_the_user_passes_receives_published_operations(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Spans of every shape reach a user's queue as Operations of the published types."""
    base = make_client()
    queue = RecordingQueue()
    client = PrefactorCoreClient(base.config, queue, transport=base.test_transport)  # type: ignore[attr-defined]
    async with client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:step") as outer:
            await outer.start({"n": 1})
            async with instance.span("agent:step") as inner:
                await inner.start({"n": 2})
                await inner.complete({"ok": True})
        async with instance.span("agent:step") as cancelled:
            await cancelled.cancel()
        await instance.finish()
    assert {cls for cls, _ in queue.kinds} == {Operation}
    span_kinds = [kind for _, kind in queue.kinds if kind in (_CREATE, _FINISH)]
    assert sorted(span_kinds, key=lambda kind: kind.value) == [_CREATE] * 3 + [_FINISH] * 3
    rows = {row["id"]: row["status"] for row in await spans_of(server, instance.id)}
    assert rows == {outer.id: "complete", inner.id: "complete", cancelled.id: "cancelled"}


async def test_a_folded_span_counts_twice_and_reaches_the_server_as_finished(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """One queue entry per span finished in one go: counted as its two operations, and
    stored with its params, result, status and both timestamps."""
    gate = asyncio.Event()
    client = make_client(transport=TestTransport(server.transport, gate=gate))
    async with client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        gate.set()
        assert await client.flush(timeout=10)
        gate.clear()
        queue = client._queue
        assert isinstance(queue, SpanQueue)
        started = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
        finished = datetime(2026, 3, 1, 12, 0, 1, 500_000, tzinfo=UTC)
        async with instance.span("agent:llm") as span:
            await span.start({"model": "m", "prompt": "p"}, started_at=started)
            await span.fail({"response": "r"}, timestamp=finished)
        assert (len(queue), queue.size(), client.statistics().queued) == (1, 2, 2)
        gate.set()
        assert await client.flush(timeout=10)
        assert client.statistics().queued == 0
    [row] = await spans_of(server, instance.id)
    assert row["id"] == span.id
    assert row["status"] == "failed"
    assert row["payload"] == {"model": "m", "prompt": "p"}
    assert row["result_payload"] == {"response": "r"}
    assert datetime.fromisoformat(row["started_at"]) == started
    assert datetime.fromisoformat(row["finished_at"]) == finished


async def test_a_span_finished_after_the_engine_took_it_is_stored_finished(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A span the engine took before it finished sends its finish on its own."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:step") as span:
            await span.start({"n": 1})
            assert await client.flush(timeout=10)  # the engine took and sent the create
            assert span._queued == TAKEN
            await span.complete({"done": True})
    [row] = await spans_of(server, instance.id)
    assert (row["status"], row["result_payload"]) == ("complete", {"done": True})


async def test_a_failure_latched_while_a_record_waits_raises_at_the_finish(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A finish that would be folded raises the latched failure, as a queued finish
    would, and the span is no longer open."""
    gate = asyncio.Event()
    client = make_client(transport=TestTransport(server.transport, gate=gate))
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    span = instance.span("agent:step")
    await span.__aenter__()
    await span.start({})
    assert span._queued == QUEUED
    client._latch(RuntimeError("token revoked"), None)
    with pytest.raises(PrefactorTelemetryFailureError):
        await span.complete()
    assert span._queued == QUEUED
    assert client.span_manager is not None
    assert client.span_manager.open_spans() == []
    gate.set()
    await client.close()
