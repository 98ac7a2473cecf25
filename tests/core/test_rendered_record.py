"""A taken span create holds its fields in one tuple (``Rendered.record``) and builds its
payload, metadata, timestamp and key only when read (``_engine.rendered``): what it
shows is what the engine built eagerly before, the engine's hot paths read the same
lane, span, parent and weight from the record, and the cyclic garbage collector sees one
object per create, not its payload and metadata."""

from __future__ import annotations

import copy
import dataclasses
import gc
import pickle
from collections import deque
from datetime import UTC, datetime
from typing import Any

import pytest

from prefactor_core import Operation
from prefactor_core._engine.batching import InFlight, take_batch
from prefactor_core._engine.lanes import Lanes
from prefactor_core._engine.ledger import Ledger
from prefactor_core._engine.optable import render_bulk_item
from prefactor_core._engine.outcomes import merged, split, weight
from prefactor_core._engine.rendered import Rendered
from prefactor_core._engine.taps import Taps
from prefactor_core._open_spans import OpenSpan
from prefactor_core.queue._spans import SpanQueue
from prefactor_core.queue.spool import _encode

from .test_rendered import CASES, PARAMS, RESULT, _plain, _taken
from .test_span_records import _drain
from .test_span_records import _table as record_table

pytestmark = pytest.mark.timeout(60)

SPAN = "span-1"


def _eager(case: dict[str, Any]) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The payload (its items, in order) and metadata the engine built at take before
    the record: written out here from the case's fields."""
    instance = case.get("instance", "inst-1")
    started = case.get("started", 1_764_658_800.123456)
    finish = case.get("finish", ("complete", RESULT, 1_764_658_801.5))
    items: list[tuple[str, Any]] = [
        ("instance_id", instance),
        ("span_id", case.get("span_id", SPAN)),
        ("schema_name", case.get("schema", "agent:step")),
        ("status", "active" if finish is None else finish[0]),
        ("payload_json", case.get("params", PARAMS)),
        ("started_at", started),
    ]
    metadata: dict[str, Any] = {}
    if finish is not None:
        items += [("result_json", finish[1]), ("finished_at", finish[2])]
        metadata = {"merged_finish": "f-" + case.get("span_id", SPAN)}
    if case.get("parent") is not None:
        items.append(("parent_span_id", case["parent"]))
    return items, metadata


def _case(name: str) -> dict[str, Any]:
    return {"span_id": SPAN, **CASES[name]}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_a_taken_create_shows_the_fields_it_was_built_with_before(name: str) -> None:
    case = _case(name)
    op = _taken(**case)
    assert isinstance(op, Rendered)
    items, metadata = _eager(case)
    payload = op.payload
    assert list(payload.items()) == items  # the same keys, in the same order
    assert op.payload is payload  # built once, then kept
    assert op.metadata == metadata
    assert op.idempotency_key == "c-" + case["span_id"]
    assert op._created == case.get("started", 1_764_658_800.123456)
    assert op.timestamp == datetime.fromtimestamp(op._created, UTC)  # type: ignore[arg-type]
    assert weight(op) == (2 if metadata else 1)


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_a_taken_create_is_its_plain_operation_to_everything_outside_the_engine(
    name: str,
) -> None:
    op = _taken(**_case(name))
    plain = _plain(op)
    fresh = _taken(**_case(name))  # nothing read from it yet
    assert fresh == plain
    assert plain == fresh
    assert repr(_taken(**_case(name))) == repr(plain)
    again = pickle.loads(pickle.dumps(_taken(**_case(name))))
    assert type(again) is Operation
    assert again == plain
    assert _encode(_taken(**_case(name))) == _encode(plain)  # what a spool would store
    assert dataclasses.asdict(_taken(**_case(name))) == dataclasses.asdict(plain)
    assert copy.copy(_taken(**_case(name))) == plain
    replaced = dataclasses.replace(_taken(**_case(name)))
    assert type(replaced) is Rendered
    assert replaced.record is None
    assert replaced.text is None
    assert replaced == plain
    assert render_bulk_item(replaced) == render_bulk_item(plain)
    if op.metadata:  # a merged create: split for a single request
        assert split(_taken(**_case(name))) == split(plain)


def test_a_tap_sees_the_payload_the_engine_built_before() -> None:
    seen: list[dict[str, Any]] = []
    taps = Taps()
    taps.add(lambda op: seen.append(dict(op.payload)))
    op = _taken(span_id=SPAN)
    taps.show([op])
    assert list(seen[0].items()) == _eager({"span_id": SPAN})[0]


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_the_engine_reads_a_records_lane_span_parent_and_weight_as_its_payload_says(
    name: str,
) -> None:
    op = _taken(**_case(name))
    payload, heavy = _plain(op).payload, weight(_plain(op))
    lanes = Lanes(Ledger(None))
    lanes.accept_many([op])
    assert list(lanes.lanes) == [payload["instance_id"]]
    assert lanes.pending == heavy
    one = Lanes(Ledger(None))
    one.accept(_taken(**_case(name)))
    assert list(one.lanes) == [payload["instance_id"]]
    assert one.pending == heavy
    flights = InFlight()
    parent = payload.get("parent_span_id")
    flights.creates = {parent} if parent is not None else {"someone else"}
    assert flights.independent(op) is (parent is None)
    batch = take_batch(lanes.lanes, InFlight(), set(), max_items=10, max_bytes=10**6)
    assert batch is not None
    assert batch.creates == {payload["span_id"]}
    assert batch.weight == heavy
    assert batch.texts == [render_bulk_item(_plain(op))]


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_a_lane_in_flight_stops_at_a_record_whose_parents_create_is_in_flight(
    name: str,
) -> None:
    """``take_batch`` reads a record's parent itself (not through ``independent``): with
    a batch of the lane in flight it takes a record only while its parent's create is
    not in that flight, and stops at the first whose parent's is."""
    op = _taken(**_case(name))
    payload = _plain(op).payload
    lane, parent = payload["instance_id"], payload.get("parent_span_id")
    free = _taken(span_id="free", instance=lane, finish=None)
    flights = InFlight()
    flights.lanes = {lane: 1}
    flights.creates = {parent} if parent is not None else {"someone else"}
    lanes = {lane: deque([free, op, _taken(span_id="after", instance=lane)])}
    batch = take_batch(lanes, flights, set(), max_items=10, max_bytes=10**6)
    assert batch is not None
    taken = [o.payload["span_id"] for o in batch.ops]
    if parent is None:
        assert taken == ["free", payload["span_id"], "after"]
    else:
        assert taken == ["free"]
        assert lanes[lane][0] is op
    assert flights.independent(op) is (parent is None)


def test_a_records_finish_that_came_later_merges_by_its_span_id() -> None:
    """A create taken open (no finish yet) meets its finish in the lane: the batch
    merges them, finding the create by the span id in its record."""
    from .dispatcher_fakes import finish as finish_op

    active = _taken(span_id=SPAN, finish=None)
    other = _taken(span_id="other", finish=None)
    lanes = {"inst-1": deque([other, active, finish_op("inst-1", SPAN)])}
    batch = take_batch(lanes, InFlight(), set(), max_items=10, max_bytes=10**6)
    assert batch is not None
    assert [op.payload["span_id"] for op in batch.ops] == ["other", SPAN]
    assert batch.ops[0] is other
    assert batch.weight == 3


def test_the_collector_sees_one_untracked_tuple_and_no_dicts_in_a_taken_create() -> None:
    """What makes the engine's creates cheap for the cyclic garbage collector: no payload
    or metadata dict until something reads them, and the fields in a tuple the collector
    stops tracking the first time it sees it."""
    ops = [_taken(span_id=f"s{n}", **({"finish": None} if n % 2 else {})) for n in range(4)]
    for op in ops:
        assert isinstance(op, Rendered)
        assert op.record is not None
        referents = gc.get_referents(op)
        assert not any(isinstance(r, dict) for r in referents)
        assert [r for r in referents if isinstance(r, tuple)] == [op.record]
    gc.collect(0)
    assert not any(gc.is_tracked(op.record) for op in ops)
    # The engine's own reads leave it so.
    lanes = Lanes(Ledger(None))
    lanes.accept_many(list(ops))
    assert take_batch(lanes.lanes, InFlight(), set(), max_items=10, max_bytes=10**6)
    assert sum(weight(op) for op in ops) == 6
    assert not any(isinstance(r, dict) for op in ops for r in gc.get_referents(op))


def _taken_then_finished(case: dict[str, Any]) -> tuple[Operation, Operation]:
    """A record taken before its finish came, and the finish the table queued after."""
    queue = SpanQueue()
    table, offered = record_table(queue)
    table.new_id = lambda: case["span_id"]
    span = OpenSpan(case.get("instance", "inst-1"), case.get("schema", "agent:step"), None)
    if case.get("parent") is not None:
        span = OpenSpan(span._instance_id, span._schema_name, case["parent"])
    table.open(span, push=False)
    started = case.get("started", 1_764_658_800.123456)
    assert table.create(span, "active", case.get("params", PARAMS), started) is None
    [create] = _drain(queue)
    status, result, at = case.get("finish") or ("complete", RESULT, 1_764_658_801.5)
    assert table.finish(span, status, result, at, None, None) is None  # type: ignore[arg-type]
    [finish] = offered
    return create, finish


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_a_create_taken_open_merged_with_its_finish_is_the_merge_of_its_plain_copy(
    name: str,
) -> None:
    """The engine's merge of a taken create and its finish makes a record that carries
    the finish, equal to (and rendered as) the merge of the plain operations."""
    create, finish = _taken_then_finished(_case(name))
    expected = merged(_plain(create), finish)
    both = merged(create, finish)
    assert isinstance(both, Rendered)
    assert both.record is not None
    assert both == expected
    assert both.text == render_bulk_item(_plain(both)) == render_bulk_item(expected)
    assert weight(both) == 2
    assert create.text is not None  # the open create is left as it was
    assert b"finished_at" not in create.text


def test_a_finish_with_a_key_of_its_own_merges_the_usual_way() -> None:
    create, finish = _taken_then_finished(_case("merged"))
    other = finish.replace(idempotency_key="mine")
    both = merged(create, other)
    assert type(both) is Operation
    assert both.metadata["merged_finish"] == "mine"
    assert both == merged(_plain(create), other)


def test_a_finish_without_its_time_merges_the_usual_way() -> None:
    """Only a finish with a time makes a record (a record's end is a number)."""
    create, finish = _taken_then_finished(_case("merged"))
    untimed = finish.replace(payload={**finish.payload, "timestamp": None})
    both = merged(create, untimed)
    assert type(both) is Operation
    assert both == merged(_plain(create), untimed)
    assert both.payload["finished_at"] is None
