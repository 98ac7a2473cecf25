"""The dispatcher's rules on their own, with a fake sender (no HTTP, no server): merging,
lanes, barriers, caps and the single-request fallback. Failures, retries and stopping are
in ``test_dispatcher_failures.py``."""

from __future__ import annotations

import asyncio

import pytest

from prefactor_core import Operation
from prefactor_core._engine import pacing
from prefactor_core._engine.batching import STEP_ITEMS
from prefactor_core.queue.memory import InMemoryQueue

from .dispatcher_fakes import (
    BULK,
    FakeSender,
    Harness,
    Request,
    create,
    finish,
    finish_instance,
    item_error,
    quality,
    quiesce,
    register,
    start,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("turn_budget")]


# -- merging --------------------------------------------------------------------------------


async def test_a_create_and_its_finish_waiting_together_go_out_as_one_item() -> None:
    sender = FakeSender()
    harness = Harness(sender)
    harness.put(create("A", "s1"), finish("A", "s1"))
    assert await harness.finish() == 0
    assert sender.batches() == [["A:create:s1"]]
    item = sender.requests[0].items[0]
    assert (item["status"], item["result_payload"]) == ("complete", {"ok": True})
    assert item["finished_at"] > item["started_at"]
    # The merged item stands for both operations.
    assert harness.dispatcher.statistics().sent == 2


@pytest.mark.parametrize("flag", ["no_merge", "recovered"])
async def test_a_flagged_create_is_not_merged_with_its_finish(flag: str) -> None:
    """A pending create (``no_merge``) and one replayed from a spool (``recovered``) reach
    the API as they were queued."""
    sender = FakeSender()
    harness = Harness(sender)
    harness.put(create("A", "s1", **{flag: True}), finish("A", "s1"))
    await harness.finish()
    assert sender.delivered() == ["A:create:s1", "A:finish:s1"]
    assert sender.requests[0].items[0]["status"] == "active"


async def test_a_create_already_sent_once_is_not_merged_on_its_retry() -> None:
    """The first attempt may have been stored: its retry must be the same create."""
    sender = FakeSender(
        lambda _r, index: ConnectionRefusedError("down") if index == 0 else None,
        hold=lambda r: r.keys == ["A:create:s1"],
    )
    harness = Harness(sender)
    await harness.put_behind(create("A", "s1"), finish("A", "s1"))
    await harness.finish()
    assert sender.batches() == [["A:create:s1"], ["A:create:s1", "A:finish:s1"]]
    assert sender.requests[1].items[0]["status"] == "active"


async def test_only_a_finish_and_its_own_create_merge() -> None:
    sender = FakeSender()
    harness = Harness(sender)
    harness.put(create("A", "s1"), create("A", "s2"), finish("A", "s2"), finish("A", "s1"))
    await harness.finish()
    assert sender.batches() == [["A:create:s1", "A:create:s2"]]
    s1, s2 = sender.requests[0].items
    assert (s1["status"], s2["status"]) == ("complete", "complete")


# -- lanes ---------------------------------------------------------------------------------


async def test_order_within_an_instance_is_the_order_of_the_queue() -> None:
    sender = FakeSender()
    harness = Harness(sender, batch_size=3)
    ops = [register("A"), start("A")]
    ops += [create("A", f"s{n}", no_merge=True) for n in range(5)]
    ops += [finish_instance("A")]
    harness.put(*ops)
    await harness.finish()
    assert sender.delivered() == [op.idempotency_key for op in ops]
    assert max(len(keys) for keys in sender.batches()) <= 3


async def test_one_bulk_request_carries_the_heads_of_many_instances() -> None:
    sender = FakeSender()
    harness = Harness(sender)
    harness.put(create("A", "a1"), create("B", "b1"), create("A", "a2"))
    await harness.finish()
    assert sender.batches() == [["A:create:a1", "A:create:a2", "B:create:b1"]]


async def test_single_requests_keep_one_request_per_instance_in_flight() -> None:
    """A held instance holds only itself: the other instance's operations all arrive
    while the held one has sent nothing but its first."""
    sender = FakeSender(hold=lambda r: r.keys[0].startswith("A:"))
    harness = Harness(sender, bulk=False, num_workers=2)
    harness.put(create("A", "a1"), create("A", "a2"))
    harness.put(*(create("B", f"b{n}") for n in range(4)))
    await sender.wait_for(5)
    await quiesce()
    assert sender.delivered() == ["A:create:a1", *(f"B:create:b{n}" for n in range(4))]
    assert sender.peak == 2
    sender.release()
    assert await harness.finish() == 0
    assert sender.delivered()[-1] == "A:create:a2"


async def test_a_refused_register_drops_its_instance_and_spares_the_others() -> None:
    def plan(request: Request, _index: int) -> dict[str, object]:
        # Like the API: processing stops at the refused item.
        outputs: dict[str, object] = {}
        for key in request.keys:
            if key == "A:register":
                outputs[key] = item_error("validation_error", "bad agent")
                break
            outputs[key] = {"status": "success"}
        return {"outputs": outputs}

    sender = FakeSender(plan)
    harness = Harness(sender)
    harness.put(register("A"), create("A", "a1"), register("B"), create("B", "b1"))
    await sender.wait_for(1)
    await quiesce()
    harness.put(create("A", "a2"), create("B", "b2"))
    await harness.finish()
    delivered = sender.delivered()
    # One batch; the API stopped at the refused register: a1 and B's were not processed.
    assert delivered[:4] == ["A:register", "A:create:a1", "B:register", "B:create:b1"]
    assert delivered[4:] == ["B:register", "B:create:b1", "B:create:b2"]
    stats = harness.dispatcher.statistics()
    assert (stats.dropped, stats.rejected) == (3, 1)


# -- barriers and dependencies while a request is in flight ------------------------------------


@pytest.mark.parametrize(
    "barrier",
    [register, start, finish_instance, quality],
    ids=["register", "start", "finish", "quality"],
)
async def test_nothing_of_an_instance_overtakes_its_instance_operation_in_flight(
    barrier: object,
) -> None:
    """Register, start, finish and quality records wait for nothing, but nothing behind
    them in their instance is sent until they are answered; other instances go on."""
    assert callable(barrier)
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, batch_size=1, num_workers=3)
    harness.put(barrier("A"), create("A", "a1"), create("B", "b1"))
    await sender.wait_for(2)
    await quiesce()
    assert sender.batches() == [[barrier("A").idempotency_key], ["B:create:b1"]]
    sender.release()
    await harness.finish()
    assert sender.delivered()[-1] == "A:create:a1"


async def test_independent_creates_of_one_instance_are_pipelined() -> None:
    """The control for the barrier test: creates with no parent in flight overlap."""
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, batch_size=1, num_workers=3)
    harness.put(create("A", "a1"), create("A", "a2"), create("A", "a3"))
    await sender.wait_for(3)
    assert sender.peak == 3
    sender.release()
    await harness.finish()


@pytest.mark.parametrize("dependent", ["child", "finish"])
async def test_what_depends_on_a_create_in_flight_waits_for_its_answer(dependent: str) -> None:
    """A child's create waits for its parent's create; a finish waits for its create."""
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, batch_size=1, num_workers=3)
    later = create("A", "c", parent="p") if dependent == "child" else finish("A", "p")
    harness.put(create("A", "p", no_merge=True), later, create("B", "b1"))
    await sender.wait_for(2)
    await quiesce()
    assert sender.batches() == [["A:create:p"], ["B:create:b1"]]
    sender.release()
    await harness.finish()
    assert sender.delivered()[-1] == later.idempotency_key


# -- caps ------------------------------------------------------------------------------------


async def test_batches_hold_at_most_batch_size_or_the_servers_item_cap() -> None:
    sender = FakeSender()
    harness = Harness(sender, batch_size=4, num_workers=1)
    harness.dispatcher.configure(bulk=True, max_items=3)
    ops = [create("A", f"s{n}") for n in range(7)]
    harness.put(*ops)
    await harness.finish()
    assert [len(keys) for keys in sender.batches()] == [3, 3, 1]
    assert sender.delivered() == [op.idempotency_key for op in ops]


async def test_batches_stay_under_the_servers_byte_cap() -> None:
    sender = FakeSender()
    harness = Harness(sender, num_workers=1)
    harness.dispatcher.configure(bulk=True, max_bytes=2_000)
    ops = [create("A", f"s{n}") for n in range(20)]
    harness.put(*ops)
    await harness.finish()
    assert len(sender.requests) > 1
    assert all(request.size <= 2_000 for request in sender.requests)
    assert sender.delivered() == [op.idempotency_key for op in ops]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
async def test_at_most_num_workers_requests_are_in_flight(bulk: bool) -> None:
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, bulk=bulk, batch_size=1, num_workers=2)
    harness.put(*(create(lane, "s") for lane in "ABCDE"))
    await sender.wait_for(2)
    await quiesce()
    assert len(sender.requests) == 2
    sender.release()
    assert await harness.finish() == 0
    assert sender.peak == 2
    assert sorted(sender.delivered()) == [f"{lane}:create:s" for lane in "ABCDE"]


async def test_the_reader_stops_taking_from_the_queue_while_delivery_is_stuck() -> None:
    """Lanes are bounded: with the API holding, operations stay in the (bounded) queue
    instead of piling up in lanes; all of them are delivered, in order, once it answers."""
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, batch_size=1, num_workers=1)
    ops = [create("A", f"s{n}") for n in range(3_000)]
    harness.put(*ops)
    await sender.wait_for(1)
    await quiesce()
    assert harness.queue.size() > 0
    assert harness.dispatcher.statistics().queued == len(ops) - 1
    sender.release()
    assert await harness.finish() == 0
    assert sender.delivered() == [op.idempotency_key for op in ops]


# -- configuration -----------------------------------------------------------------------------


async def test_nothing_is_sent_before_the_server_is_known() -> None:
    sender = FakeSender()
    harness = Harness(sender, bulk=None)
    harness.put(create("A", "s1"))
    await quiesce()
    assert sender.requests == []
    assert harness.dispatcher.statistics().queued == 1
    harness.dispatcher.configure(bulk=True)
    await harness.finish()
    assert sender.delivered() == ["A:create:s1"]


async def test_without_bulk_every_operation_goes_to_its_own_endpoint_in_order() -> None:
    sender = FakeSender()
    harness = Harness(sender, bulk=False)
    ops = [register("A"), start("A"), create("A", "s1"), finish("A", "s1")]
    ops += [quality("A"), finish_instance("A")]
    harness.put(*ops)
    assert await harness.finish() == 0
    assert [request.path for request in sender.requests] == [
        "/api/v1/agent_instance/register",
        "/api/v1/agent_instance/A/start",
        "/api/v1/agent_spans",
        "/api/v1/agent_spans/s1/finish",
        "/api/v1/agent_instance/A/record_quality",
        "/api/v1/agent_instance/A/finish",
    ]
    assert sender.delivered() == [op.idempotency_key for op in ops]
    assert BULK not in {request.path for request in sender.requests}
    assert harness.dispatcher.statistics().sent == len(ops)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
async def test_a_terminate_control_in_an_answer_is_passed_on(bulk: bool) -> None:
    control = {"control": {"terminate": True, "reason": "stop now"}}

    def plan(request: Request, _index: int) -> dict[str, object]:
        if request.path != BULK:
            return control if request.keys == ["B:create:b1"] else {}
        outputs = {key: {"status": "success"} for key in request.keys}
        outputs["B:create:b1"] = {"status": "success", **control}
        return {"outputs": outputs}

    sender = FakeSender(plan)
    harness = Harness(sender, bulk=bulk)
    harness.put(create("A", "a1"), create("B", "b1"), create("B", "b2"))
    assert await harness.finish() == 0
    assert harness.terminated == [("B", "stop now")]


async def test_a_large_batch_is_taken_over_several_turns_of_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine runs on the agent's loop: planning a 500-item batch hands the loop
    back between chunks, so another task runs several times before the request goes
    (with no time budget per turn: a turn after every chunk)."""
    monkeypatch.setattr(pacing, "TURN_BUDGET", 0.0)
    monkeypatch.setattr(pacing, "TURN_MAX", 0.0)
    sender = FakeSender()
    harness = Harness(sender, bulk=None, batch_size=500, num_workers=1)
    harness.put(*[op for n in range(500) for op in (create("A", f"s{n}"), finish("A", f"s{n}"))])
    await harness.read_all()  # everything is in the lane; nothing is sent yet
    assert sender.requests == []
    ticks = 0
    ticks_before_request: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while not sender.requests:
            ticks += 1
            await asyncio.sleep(0)
        ticks_before_request.append(ticks)

    task = asyncio.create_task(ticker())
    harness.dispatcher.configure(bulk=True)
    await sender.wait_for(1)
    await task
    assert len(sender.requests[0].items) == 500
    assert ticks_before_request[0] >= 500 // STEP_ITEMS + 1
    assert await harness.finish() == 0
    assert len(sender.delivered()) == 500


async def test_a_large_answer_is_settled_over_several_turns_of_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settling a 500-item answer hands the loop back after the HTTP step and between
    chunks of the answer: another task runs several times before the items count as sent
    (with no time budget per turn: a turn after every chunk)."""
    monkeypatch.setattr(pacing, "TURN_BUDGET", 0.0)
    monkeypatch.setattr(pacing, "TURN_MAX", 0.0)
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, bulk=None, batch_size=500, num_workers=1)
    harness.put(*[create("A", f"s{n}") for n in range(500)])
    await harness.read_all()  # everything is in the lane: one request carries it all
    harness.dispatcher.configure(bulk=True)
    await sender.wait_for(1)
    assert len(sender.requests[0].items) == 500
    assert harness.dispatcher.statistics().sent == 0
    ticks = 0
    ticks_before_settled: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while harness.dispatcher.statistics().sent == 0:
            ticks += 1
            await asyncio.sleep(0)
        ticks_before_settled.append(ticks)

    task = asyncio.create_task(ticker())
    sender.release()
    await task
    assert ticks_before_settled[0] >= 500 // STEP_ITEMS + 1
    assert harness.dispatcher.statistics().sent == 500
    assert await harness.finish() == 0


async def test_a_queue_subclass_that_changes_get_is_read_through_its_get() -> None:
    """The SDK's own queue is read without an await per operation; a subclass whose
    ``get`` does something of its own still sees every operation go through it."""
    taken: list[str | None] = []

    class Counting(InMemoryQueue[Operation]):
        async def get(self) -> Operation:
            op = await super().get()
            taken.append(op.idempotency_key)
            return op

    sender = FakeSender()
    harness = Harness(sender, queue=Counting())
    ops = [create("A", f"s{n}") for n in range(250)]
    harness.put(*ops)
    assert await harness.finish() == 0
    assert taken == sender.delivered() == [op.idempotency_key for op in ops]


async def test_the_lanes_take_two_batches_and_the_rest_waits_in_the_queue() -> None:
    """While nothing can be sent (the server is not known yet), the reader moves two
    batches of operations into the lanes and leaves the rest in the queue: counted as
    queued, and taken as the lanes empty."""
    harness = Harness(FakeSender(), bulk=None, batch_size=600)
    harness.put(*[create("A", f"s{n}") for n in range(3000)])
    reading = harness.dispatcher._reading
    for _ in range(10_000):
        if not reading.room.is_set():
            break
        await asyncio.sleep(0)
    await quiesce()
    assert harness.dispatcher._lanes.pending == 2 * 600
    assert harness.queue.size() == 3000 - 2 * 600
    assert harness.dispatcher.statistics().queued == 3000
    harness.dispatcher.configure(bulk=True)
    assert await harness.finish() == 0
    assert len(harness.sender.delivered()) == 3000
