"""The dispatcher's pure rules called directly: ``batching`` (what the next bulk request
carries) and ``settlement.read_bulk_answer`` (how a bulk answer is read)."""

from __future__ import annotations

import json
from collections import deque

from prefactor_core._engine.batching import (
    SCAN_STEP,
    STEP_ITEMS,
    BatchPlan,
    InFlight,
    bulk_body,
    bulk_types,
    merge,
    take_batch,
)
from prefactor_core._engine.settlement import read_bulk_answer
from prefactor_core._engine.wire import render_bulk_item
from prefactor_core.operations import Operation, OperationType

from .dispatcher_fakes import create, finish, item_error, quality, start


def lanes_of(*ops: Operation) -> dict[str, deque[Operation]]:
    lanes: dict[str, deque[Operation]] = {}
    for op in ops:
        lanes.setdefault(op.payload["instance_id"], deque()).append(op)
    return lanes


def keys(ops: list[Operation]) -> list[str | None]:
    return [op.idempotency_key for op in ops]


def test_merge_folds_a_finish_into_its_unsent_create_only() -> None:
    sent_before = create("A", "s2")
    ops = [create("A", "s1"), sent_before, finish("A", "s2"), finish("A", "s1"), finish("A", "x")]
    out = merge(ops, {id(sent_before)})
    assert keys(out) == ["A:create:s1", "A:create:s2", "A:finish:s2", "A:finish:x"]
    assert out[0].metadata["merged_finish"] == "A:finish:s1"
    assert out[0].payload["status"] == "complete"
    assert "merged_finish" not in out[1].metadata


def test_take_batch_counts_what_it_took_and_leaves_the_rest_in_order() -> None:
    ops = [create("A", f"s{n}") for n in range(5)] + [finish("A", "s0")]
    lanes = lanes_of(*ops)
    batch = take_batch(lanes, InFlight(), set(), max_items=3, max_bytes=10**6)
    assert batch is not None
    assert [op.idempotency_key for op in batch.ops] == [
        "A:create:s0",
        "A:create:s1",
        "A:create:s2",
    ]
    # s0's finish was merged into s0's create: four queued operations in three items.
    assert batch.weight == 4
    assert keys(list(lanes["A"])) == ["A:create:s3", "A:create:s4"]
    assert (batch.lanes, batch.barriers, batch.creates) == ({"A"}, set(), {"s0", "s1", "s2"})
    assert batch.lane_ids == ["A"] * 3
    assert batch.routed() == list(zip(["A"] * 3, batch.ops, strict=True))


def test_take_batch_marks_barriers_and_skips_lanes_behind_one_in_flight() -> None:
    flights = InFlight()
    lanes = lanes_of(start("A"), create("A", "a1"), create("B", "b1"))
    first = take_batch(lanes, flights, set(), max_items=1, max_bytes=10**6)
    assert first is not None
    assert first.barriers == {"A"}
    flights.take_off(first)
    second = take_batch(lanes, flights, set(), max_items=10, max_bytes=10**6)
    assert second is not None
    assert [op.idempotency_key for op in second.ops] == ["B:create:b1"]
    flights.land(first)
    assert (flights.lanes, flights.barriers) == ({}, {})


def test_take_batch_stops_a_lane_at_an_action_not_sent_in_bulk() -> None:
    lanes = lanes_of(create("A", "a1"), quality("A"), create("A", "a2"), create("B", "b1"))
    types = bulk_types(["agent_spans/create"])
    batch = take_batch(lanes, InFlight(), set(), max_items=10, max_bytes=10**6, bulk_types=types)
    assert batch is not None
    assert [op.idempotency_key for op in batch.ops] == ["A:create:a1", "B:create:b1"]
    assert keys(list(lanes["A"])) == ["A:quality:score", "A:create:a2"]


def test_take_batch_always_takes_one_item_even_over_the_byte_budget() -> None:
    """An item larger than the budget still goes (alone): the server's answer decides."""
    lanes = lanes_of(create("A", "a1"), create("A", "a2"))
    batch = take_batch(lanes, InFlight(), set(), max_items=10, max_bytes=100)
    assert batch is not None
    assert [op.idempotency_key for op in batch.ops] == ["A:create:a1"]
    assert keys(list(lanes["A"])) == ["A:create:a2"]


def test_bulk_types_reads_the_listed_actions() -> None:
    assert bulk_types(True) == frozenset(OperationType)
    assert bulk_types(False) == bulk_types([]) == bulk_types(["unknown/action"]) == frozenset()
    assert bulk_types(["agent_spans/finish", "x"]) == {OperationType.FINISH_SPAN}


def test_read_bulk_answer_stops_at_the_first_refused_item() -> None:
    ops = [("A", create("A", f"s{n}")) for n in range(4)]
    k = [op.idempotency_key for _, op in ops]
    answer = read_bulk_answer(
        [op for _, op in ops],
        ["A"] * len(ops),
        {
            "outputs": {
                k[1]: {"status": "success"},
                k[2]: item_error("validation_error", "bad"),
                k[3]: {"status": "success"},
            }
        },
    )
    assert keys(answer.delivered) == [k[1]]
    assert [op.idempotency_key for _, op in answer.unprocessed] == [k[0]]
    assert answer.refused is not None
    assert answer.refused[0] == 2
    assert (answer.refused[1].status_code, answer.transient) == (422, None)


def test_read_bulk_answer_leaves_everything_from_a_passing_error_on() -> None:
    ops = [("A", finish("A", f"s{n}")) for n in range(3)]
    k = [op.idempotency_key for _, op in ops]
    outputs = {k[0]: item_error("conflict", "done"), k[1]: item_error("unavailable", "busy")}
    answer = read_bulk_answer([op for _, op in ops], ["A"] * 3, {"outputs": outputs})
    assert keys(answer.delivered) == [k[0]]  # a finish that conflicts is already done
    assert [op.idempotency_key for _, op in answer.unprocessed] == k[1:]
    assert answer.transient is not None
    assert answer.refused is None
    nothing = read_bulk_answer([op for _, op in ops], ["A"] * 3, {"outputs": "not an object"})
    assert nothing.unprocessed == ops


def test_a_batch_planned_in_steps_is_the_batch_take_batch_takes() -> None:
    ops = [op for n in range(300) for op in (create("A", f"s{n}"), finish("A", f"s{n}"))]
    ops += [create("B", f"b{n}") for n in range(300)]
    at_once, stepwise = lanes_of(*ops), lanes_of(*ops)
    expected = take_batch(at_once, InFlight(), set(), max_items=500, max_bytes=10**6)
    plan = BatchPlan(stepwise, InFlight(), set(), max_items=500, max_bytes=10**6)
    # 500 items rendered at most STEP_ITEMS per step: the loop runs between steps.
    assert len(list(plan.steps())) >= 500 // STEP_ITEMS - 1
    assert stepwise["A"]
    assert len(stepwise["A"]) == 600
    batch = plan.commit()
    assert batch is not None
    assert expected is not None
    assert keys(batch.ops) == keys(expected.ops)
    assert batch.texts == expected.texts
    assert batch.weight == expected.weight
    assert keys(list(stepwise["B"])) == keys(list(at_once["B"]))
    assert stepwise.keys() == at_once.keys()
    assert not stepwise["A"]


def test_a_plan_looks_at_a_long_lane_in_steps_and_the_lane_may_grow_meanwhile() -> None:
    """Looking at the heads of a long lane is split into steps too (even when only one
    item fits), and operations queued behind them meanwhile change nothing."""
    lanes = lanes_of(*[create("A", f"s{n}") for n in range(2000)])
    one = len(render_bulk_item(lanes["A"][0])) + len(b'{"items":[]}')
    plan = BatchPlan(lanes, InFlight(), set(), max_items=1000, max_bytes=one)
    steps = 0
    for _ in plan.steps():
        steps += 1
        lanes["A"].append(create("A", f"late{steps}"))  # the reader moves more in
    assert steps >= 2000 // SCAN_STEP - 1
    batch = plan.commit()
    assert batch is not None
    assert keys(batch.ops) == ["A:create:s0"]
    assert len(lanes["A"]) == 1999 + steps


def test_a_plan_takes_the_lanes_as_they_are_when_a_retry_came_back_meanwhile() -> None:
    retried = create("A", "s0")
    lanes = lanes_of(*[create("A", f"s{n}") for n in range(1, 250)])
    plan = BatchPlan(lanes, InFlight(), set(), max_items=200, max_bytes=10**6)
    steps = plan.steps()
    next(steps)
    lanes["A"].appendleft(retried)  # an answer put s0 back at the head of its lane
    for _ in steps:
        pass
    batch = plan.commit()
    assert batch is not None
    taken = keys(batch.ops)
    assert taken == [f"A:create:s{n}" for n in range(200)]  # the retry first, in order
    assert keys(list(lanes["A"])) == [f"A:create:s{n}" for n in range(200, 250)]


def test_a_bulk_body_is_the_envelope_around_the_items() -> None:
    items = [b'{"n":%d}' % n for n in range(5)]
    for count in range(len(items) + 1):
        body = bulk_body(items[:count])
        assert body == b'{"items":[' + b",".join(items[:count]) + b"]}"
        assert json.loads(body) == {"items": [{"n": n} for n in range(count)]}
