"""Tests for prefactor_core._open_spans: the table of open spans on its own.

A list stands in for the queue, so each test sees exactly the operations the table
queues and their order.
"""

from __future__ import annotations

import itertools

from prefactor_core import OperationType
from prefactor_core._open_spans import FINISHED, PREPARED, STARTED, OpenSpan, SpanTable
from prefactor_core.context_stack import SpanContextStack
from prefactor_core.operations import Operation


def _table() -> tuple[SpanTable, list[Operation]]:
    queued: list[Operation] = []
    numbers = itertools.count(1)

    async def enqueue(op: Operation) -> None:
        queued.append(op)

    def offer(op: Operation) -> bool:
        queued.append(op)
        return True

    table = SpanTable(enqueue, offer, new_id=lambda: f"s{next(numbers)}")
    return table, queued


def _summary(ops: list[Operation]) -> list[tuple[str, str, str]]:
    return [(op.type.name, op.payload["span_id"], op.payload["status"]) for op in ops]


def test_a_span_opened_inside_another_takes_it_as_parent_and_leaves_the_stack() -> None:
    """The innermost open span of this task is the parent; leave() pops it."""
    table, _ = _table()
    outer, inner = OpenSpan("i1", "t", None), OpenSpan("i1", "t", None)
    table.open(outer, push=True)
    table.open(inner, push=True)
    assert (outer.id, inner.id, inner.parent_span_id) == ("s1", "s2", "s1")
    assert SpanContextStack.get_stack() == ["s1", "s2"]
    table.leave(inner.id)
    table.leave(outer.id)
    assert SpanContextStack.get_stack() == []


def test_a_span_of_another_instance_is_never_the_parent() -> None:
    """The API would refuse a parent from another instance, so none is taken."""
    table, _ = _table()
    outer, other = OpenSpan("i1", "t", None), OpenSpan("i2", "t", None)
    table.open(outer, push=True)
    table.open(other, push=False)
    assert other.parent_span_id is None
    table.leave(outer.id)


def test_a_child_started_first_is_held_until_its_parents_create_is_queued() -> None:
    """Nothing of the child is queued before its parent's create; then both, in order."""
    table, queued = _table()
    parent, child = OpenSpan("i1", "t", None), OpenSpan("i1", "t", None)
    table.open(parent, push=True)
    table.open(child, push=True)
    assert table.create(child, "active", "{}", 1.0) is None
    assert table.finish(child, "complete", None, 2.0, None, None) is None
    assert queued == []
    assert child._state == FINISHED
    assert parent._state == PREPARED
    table.create(parent, "active", "{}", 0.5)
    assert parent._state == STARTED
    assert _summary(queued) == [
        ("CREATE_SPAN", "s1", "active"),
        ("CREATE_SPAN", "s2", "active"),
        ("FINISH_SPAN", "s2", "complete"),
    ]
    assert queued[1].payload["parent_span_id"] == "s1"
    table.leave(child.id)
    table.leave(parent.id)


def test_keys_derive_from_made_ids_and_are_random_for_chosen_ones() -> None:
    """Made ids give c-/f- keys; a chosen id's keys are random; a given key is kept."""
    table, queued = _table()
    made, chosen, keyed = (OpenSpan("i1", "t", None) for _ in range(3))
    table.open(made, push=False)
    table.open(chosen, push=False, span_id="mine")
    table.open(keyed, push=False)
    for span in (made, chosen):
        table.create(span, "active", "{}", 1.0)
        table.finish(span, "complete", None, 2.0, None, None)
    table.create(keyed, "active", "{}", 1.0)
    table.finish(keyed, "failed", '{"e":1}', 2.0, "my-own-finish-key", None)
    keys = [op.idempotency_key for op in queued]
    assert keys[:2] == ["c-s1", "f-s1"]
    assert all(key and not key.startswith(("c-", "f-")) for key in keys[2:4])
    assert keys[4:] == ["c-s2", "my-own-finish-key"]
    assert table.spans == {}
    assert table.chosen == set()


def test_cancel_before_start_queues_a_pending_create_that_is_never_merged() -> None:
    """A span finished as cancelled before it started is created pending, then
    cancelled; the create is marked so the engine never folds the two together."""
    table, queued = _table()
    span = OpenSpan("i1", "t", None)
    table.open(span, push=False)
    table.finish(span, "cancelled", None, 2.0, None, '{"q":1}')
    assert _summary(queued) == [
        ("CREATE_SPAN", "s1", "pending"),
        ("FINISH_SPAN", "s1", "cancelled"),
    ]
    assert queued[0].payload["payload_json"] == '{"q":1}'
    assert queued[0].metadata == {"no_merge": True}
    assert queued[1].type is OperationType.FINISH_SPAN
