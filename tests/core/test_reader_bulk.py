"""The reader takes what waits in the SDK's own queues many at a time (``_pop_many`` and
``Lanes.accept_many``): the same operations in the same order and the same counts as
one at a time, never past the lanes' cap, and a user's subclass that changes how one
item is taken is still read one item at a time."""

from __future__ import annotations

import asyncio

import pytest

from prefactor_core import InMemoryQueue, Operation
from prefactor_core._engine.lanes import Lanes
from prefactor_core._engine.ledger import Ledger
from prefactor_core._engine.outcomes import weight
from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.reader import Reader
from prefactor_core._engine.taps import Taps
from prefactor_core._open_spans import OpenSpan
from prefactor_core.queue._spans import SpanQueue

from .dispatcher_fakes import FakeSender, Harness, create, finish
from .test_span_records import _table as record_table

pytestmark = pytest.mark.timeout(60)


def _records(queue: SpanQueue, count: int, *, unfinished: int = 0) -> None:
    """Queue ``count`` spans of instance i1 as records, ids s1, s2, ...: folded but for
    the last ``unfinished``."""
    table, offered = record_table(queue)
    for n in range(count):
        span = OpenSpan("i1", "agent:step", None)
        table.open(span, push=False)
        assert table.create(span, "active", f'{{"n":{n}}}', 1.0 + n) is None
        if n < count - unfinished:
            assert table.finish(span, "complete", None, 2.0 + n, None, None) is None
    assert offered == []


async def test_many_at_once_are_the_operations_one_at_a_time_would_be() -> None:
    one, many = SpanQueue(), SpanQueue()
    _records(one, 5)
    _records(many, 5)
    one.put_nowait(finish("i1", "x"))
    many.put_nowait(finish("i1", "x"))
    singly = [one.get_nowait() for _ in range(6)]
    together = many._pop_many(10)
    assert together == singly
    assert [type(op) for op in together] == [type(op) for op in singly]
    assert (many.size(), many.folded, len(many)) == (0, 0, 0)


async def test_many_at_once_mixes_folded_and_open_records_and_operations() -> None:
    """Records with and without their finish and plain operations between them, taken
    many at once: the operations one at a time would give, in order; a record's
    finish that comes after the take is queued as its own operation."""
    one, many = SpanQueue(), SpanQueue()
    for queue in (one, many):
        _records(queue, 3, unfinished=1)
        queue.put_nowait(finish("i1", "x"))
        _records(queue, 2, unfinished=1)
    assert (many.size(), many.folded) == (9, 3)
    singly = [one.get_nowait() for _ in range(6)]
    together = many._pop_many(4) + many._pop_many(10)
    assert together == singly
    assert [op.metadata.get("merged_finish") is not None for op in together] == [
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert (many.size(), many.folded, len(many)) == (0, 0, 0)
    table, offered = record_table(many)
    late = OpenSpan("i1", "agent:step", None)
    table.open(late, push=False)
    assert table.create(late, "active", "{}", 1.0) is None
    [taken] = many._pop_many(5)
    assert table.finish(late, "complete", None, 2.0, None, None) is None
    assert [op.idempotency_key for op in (taken, *offered)] == [
        "c-" + late._id,
        "f-" + late._id,
    ]
    assert many.folded == 0


async def test_taking_many_from_a_full_queue_lets_waiting_puts_in() -> None:
    queue: InMemoryQueue[Operation] = InMemoryQueue(2, put_timeout=5.0)
    queue.put_nowait(create("A", "s1"))
    queue.put_nowait(create("A", "s2"))
    puts = [asyncio.create_task(queue.put(create("A", f"s{n}"))) for n in (3, 4)]
    await asyncio.sleep(0)
    assert [op.idempotency_key for op in queue._pop_many(5)] == ["A:create:s1", "A:create:s2"]
    await asyncio.wait_for(asyncio.gather(*puts), 5)
    assert [op.idempotency_key for op in queue._pop_many(5)] == ["A:create:s3", "A:create:s4"]


@pytest.mark.parametrize("cap", [1, 2, 7, 10])
async def test_the_reader_never_fills_the_lanes_past_their_cap(cap: int) -> None:
    """Merged creates weigh two: the lanes stop within one operation of the cap, as when
    they are taken one at a time."""
    queue = SpanQueue()
    _records(queue, 30)
    lanes = Lanes(Ledger(None))
    reader = Reader(queue, lanes, cap, lambda: None, Pacer())
    moved = 0
    while lanes.pending < cap:
        moved += reader._take_waiting(queue, 100)
    assert cap <= lanes.pending <= cap + 1
    assert lanes.pending == sum(weight(op) for op in lanes.lanes["i1"]) == 2 * moved
    assert queue.size() == 2 * (30 - moved)


class Renaming(InMemoryQueue[Operation]):
    """A user's queue that changes how one item is taken (only ``_pop``)."""

    def _pop(self) -> Operation:
        op = super()._pop()
        return op.replace(idempotency_key="renamed-" + str(op.idempotency_key))


async def test_a_subclass_that_changes_how_one_item_is_taken_is_read_one_at_a_time() -> None:
    sender = FakeSender()
    harness = Harness(sender, queue=Renaming())
    harness.put(create("A", "s1"), create("A", "s2"), finish("A", "s1"))
    assert await harness.finish() == 0
    assert sender.delivered() == ["renamed-A:create:s1", "renamed-A:create:s2"]


async def test_spans_through_the_clients_own_queue_keep_order_and_counts() -> None:
    """Records, merged and not, and operations behind them: each key once, in order."""
    queue = SpanQueue()
    _records(queue, 253, unfinished=3)
    sender = FakeSender()
    harness = Harness(sender, queue=queue, batch_size=40)
    assert await harness.finish() == 0
    keys = [f"c-s{n}" for n in range(1, 254)]
    assert sender.delivered() == keys
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.queued, stats.dropped) == (2 * 250 + 3, 0, 0)


async def test_taps_see_what_is_taken_many_at_a_time() -> None:
    """The engine's taps (the OTel mirror) see every operation of the many-at-a-time
    path, in order, before the lanes take them."""
    queue = SpanQueue()
    _records(queue, 12)
    lanes = Lanes(Ledger(None))
    taps = Taps()
    seen: list[Operation] = []
    taps.add(seen.append)
    reader = Reader(queue, lanes, 1_000, lambda: None, Pacer(), taps)
    assert reader._take_waiting(queue, 100) == 12
    assert seen == list(lanes.lanes["i1"])
    assert len(seen) == 12
