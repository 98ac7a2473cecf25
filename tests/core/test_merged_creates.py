"""Span creates that reach the engine already carrying their finish (``MERGED_FINISH``:
what the client's own queue hands over for a span whose finish was folded into its
record). One lane entry, one bulk item, but two operations in every count the user sees
(queued, in flight, sent, dropped); order, retries, refusals and the single-request path
as for a create and its finish queued apart."""

from __future__ import annotations

from collections import deque

import pytest

from prefactor_core import Operation, OperationType
from prefactor_core._engine.batching import InFlight, take_batch
from prefactor_core._engine.optable import MERGED_FINISH
from prefactor_core._engine.outcomes import merged, weight
from prefactor_core.queue._spans import SpanQueue
from prefactor_http.exceptions import PrefactorApiError
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .dispatcher_fakes import (
    FakeSender,
    Harness,
    Request,
    create,
    finish,
    finish_instance,
    item_error,
    quiesce,
    register,
    start,
)
from .support import spans_of

pytestmark = pytest.mark.timeout(60)


_FINISH = OperationType.FINISH_SPAN


def whole(instance: str, span: str, parent: str | None = None) -> Operation:
    """A create that carries its finish, as the client's queue hands it to the engine."""
    op = merged(create(instance, span, parent), finish(instance, span))
    assert op.metadata == {MERGED_FINISH: f"{instance}:finish:{span}"}
    return op


def test_a_batch_weighs_two_for_each_merged_create_and_leaves_the_rest_in_order() -> None:
    lane = [whole("A", f"s{n}") for n in range(4)] + [create("A", "s4"), finish("A", "s4")]
    lanes = {"A": deque(lane)}
    batch = take_batch(lanes, InFlight(), set(), max_items=3, max_bytes=10**6)
    assert batch is not None
    assert batch.ops == lane[:3]
    assert batch.weight == 6
    # s4's create and finish (behind s3) merged already; what goes back is still 4.
    assert [op.idempotency_key for op in lanes["A"]] == ["A:create:s3", "A:create:s4"]
    assert sum(weight(op) for op in lanes["A"]) == 4
    rest = take_batch(lanes, InFlight(), set(), max_items=3, max_bytes=10**6)
    assert rest is not None
    assert [op.idempotency_key for op in rest.ops] == ["A:create:s3", "A:create:s4"]
    assert rest.weight == 4
    assert rest.texts[1] == batch.texts[0].replace(b"s0", b"s4")
    assert not lanes["A"]


async def test_merged_creates_count_as_two_queued_in_flight_and_sent() -> None:
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, bulk=None)
    harness.put(whole("A", "s1"), whole("A", "s2"), whole("B", "b1"), create("B", "b2"))
    await quiesce()  # the reader moved them into the lanes; nothing is sent unconfigured
    assert harness.queue.size() == 0
    assert harness.dispatcher.statistics().queued == 7
    harness.dispatcher.configure(bulk=True)
    await sender.wait_for(1)
    stats = harness.dispatcher.statistics()
    assert (stats.queued, stats.in_flight) == (0, 7)
    sender.release()
    assert await harness.finish() == 0
    stats = harness.dispatcher.statistics()
    assert (stats.queued, stats.in_flight, stats.sent, stats.dropped) == (0, 0, 7, 0)
    assert sender.batches() == [["A:create:s1", "A:create:s2", "B:create:b1", "B:create:b2"]]
    s1 = sender.requests[0].items[0]
    assert (s1["status"], s1["result_payload"]) == ("complete", {"ok": True})
    assert s1["finished_at"] > s1["started_at"]


async def test_a_server_without_bulk_gets_the_create_then_the_finish_with_their_keys() -> None:
    sender = FakeSender()
    harness = Harness(sender, bulk=False)
    harness.put(whole("A", "s1"), create("A", "s2"))
    assert await harness.finish() == 0
    assert [(r.path, r.keys) for r in sender.requests] == [
        ("/api/v1/agent_spans", ["A:create:s1"]),
        ("/api/v1/agent_spans/s1/finish", ["A:finish:s1"]),
        ("/api/v1/agent_spans", ["A:create:s2"]),
    ]
    created, finished = sender.requests[0].items[0], sender.requests[1].items[0]
    assert created["status"] == "active"
    assert "result_payload" not in created
    assert "finished_at" not in created
    assert (finished["status"], finished["result_payload"]) == ("complete", {"ok": True})
    assert finished["timestamp"] > created["started_at"]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped, stats.requests) == (3, 0, 3)


async def test_a_retried_merged_create_goes_again_unchanged_and_is_counted_once() -> None:
    sender = FakeSender(lambda _r, index: ConnectionRefusedError("down") if index == 0 else None)
    harness = Harness(sender)
    harness.put(whole("A", "s1"), whole("A", "s2"))
    assert await harness.finish() == 0
    assert sender.batches() == [["A:create:s1", "A:create:s2"]] * 2
    assert sender.requests[0].items == sender.requests[1].items
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.retried, stats.dropped, stats.queued) == (4, 2, 0, 0)


async def test_order_holds_with_merged_creates_and_operations_in_one_lane() -> None:
    ops = [register("A"), start("A"), whole("A", "p"), create("A", "c1", "p")]
    ops += [whole("A", "c2", "p"), finish("A", "c1"), whole("A", "q"), finish_instance("A")]
    sender = FakeSender()
    harness = Harness(sender, batch_size=2)
    harness.put(*ops)
    assert await harness.finish() == 0
    # Each key once, in the order queued (c1's finish merged into its create).
    assert sender.delivered() == [op.idempotency_key for op in ops if op.type is not _FINISH]
    assert max(len(keys) for keys in sender.batches()) <= 2
    assert harness.dispatcher.statistics().sent == 2 + 2 + 2 + 2 + 2 + 1


async def test_a_merged_create_refused_for_good_drops_two_and_spares_the_next() -> None:
    def plan(request: Request, _index: int) -> object:
        if request.keys[0] == "A:create:s1":
            return {"outputs": {"A:create:s1": item_error("unknown_span_type", "no type")}}
        return None

    sender = FakeSender(plan)
    harness = Harness(sender)
    harness.put(whole("A", "s1"), whole("A", "s2"))
    assert await harness.finish() == 0
    assert sender.batches() == [["A:create:s1", "A:create:s2"], ["A:create:s2"]]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped, stats.rejected) == (2, 2, 1)


async def test_after_a_fatal_answer_merged_creates_are_dropped_as_two_each() -> None:
    sender = FakeSender(lambda _r, _i: PrefactorApiError("no", "unauthorized", 401))
    harness = Harness(sender)
    harness.put(whole("A", "s1"), create("A", "s2"))
    await sender.wait_for(1)
    await quiesce()
    assert len(harness.failures) == 1
    harness.dispatcher.drop_everything()  # what the client does on the failure
    harness.put(whole("A", "s3"), whole("B", "b1"), finish("A", "s2"))
    await harness.finish()
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped, stats.queued) == (0, 3 + 5, 0)


async def test_spans_through_the_clients_queue_are_stored_once_each_and_counted(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The client's own queue folds finishes into their records; the server stores every
    span once, finished, and the counts are those of a create and a finish each."""
    async with make_client(batch_size=50) as client:
        assert isinstance(client._queue, SpanQueue)
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        assert await client.flush(timeout=10)
        before = client.statistics().sent
        for n in range(300):
            async with instance.span("agent:step") as span:
                await span.start({"n": n})
                await span.complete({"r": n})
        assert await client.flush(timeout=10)
        stats = client.statistics()
    spans = await spans_of(server, instance.id)
    assert sorted(s["payload"]["n"] for s in spans) == list(range(300))
    assert all(s["status"] == "complete" for s in spans)
    assert all(s["result_payload"] == {"r": s["payload"]["n"]} for s in spans)
    assert all(s["finished_at"] is not None for s in spans)
    assert (stats.sent - before, stats.dropped, stats.queued, stats.in_flight) == (600, 0, 0, 0)
