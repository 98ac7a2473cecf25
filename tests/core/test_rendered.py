"""Span creates rendered once, when the engine takes a span's record from the client's
queue (``_engine.rendered``): the bytes are exactly what ``render_bulk_item`` makes of
the same operation, a retry sends them again unchanged, and anything that changes the
operation (a repair with markers, ``dataclasses.replace``) is rendered afresh."""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections import deque
from typing import Any

import pytest

from prefactor_core import Operation
from prefactor_core._engine.batching import InFlight, take_batch
from prefactor_core._engine.optable import MERGED_FINISH, PAYLOAD_JSON, render_bulk_item
from prefactor_core._engine.rendered import Rendered, render_create
from prefactor_core._open_spans import OpenSpan
from prefactor_core.queue._spans import SpanQueue

from .dispatcher_fakes import FakeSender, Harness, Request, item_error
from .dispatcher_fakes import finish as finish_op
from .test_span_records import _drain
from .test_span_records import _table as record_table

pytestmark = pytest.mark.timeout(60)

PARAMS = '{"q":"caf\u00e9 \\"quoted\\"","n":[1,2.5,null]}'
RESULT = '{"answer":"\u65e5\u672c","ok":true}'


def _plain(op: Operation) -> Operation:
    """The same operation as a plain ``Operation`` (rendered the usual way)."""
    return Operation(op.type, op.payload, op._created, op.idempotency_key, dict(op.metadata))


def _taken(
    *,
    instance: str = "inst-1",
    schema: str = "agent:step",
    parent: str | None = None,
    span_id: str | None = None,
    params: str = PARAMS,
    started: float = 1_764_658_800.123456,
    finish: tuple[str, str | None, float] | None = ("complete", RESULT, 1_764_658_801.5),
) -> Operation:
    """The operation the engine takes for one span queued as its record."""
    queue = SpanQueue()
    table, offered = record_table(queue)
    if span_id is not None:
        table.new_id = lambda: span_id
    span = OpenSpan(instance, schema, parent)
    table.open(span, push=False)
    assert table.create(span, "active", params, started) is None
    if finish is not None:
        status, result, at = finish
        assert table.finish(span, status, result, at, None, None) is None  # type: ignore[arg-type]
    [op] = _drain(queue)
    assert offered == []
    return op


CASES: dict[str, dict[str, Any]] = {
    "merged": {},
    "merged without a result": {"finish": ("failed", None, 1_764_658_800.2)},
    "create only": {"finish": None},
    "with a parent": {"parent": "01kbq9xk3y0000000000000000abcd"},
    "a parent id chosen by the caller": {"parent": 'p "1"\n\u00e9'},
    "span id with other characters": {"span_id": "span-1/\u00e9\"x'"},
    "non-ASCII and quoted names": {"instance": 'i\u00e9"\\', "schema": "t\u00fcp:\x01\u2028"},
    "empty params": {"params": ""},
    "times that round up to the next microsecond and second": {
        "started": 1_764_658_800.9999996,
        "finish": ("complete", RESULT, 1_764_658_801.0000007),
    },
    "before 1970 and far ahead": {
        "started": -1.25,
        "finish": ("cancelled", "null", 4_102_444_800.000001),
    },
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_taken_record_carries_exactly_the_item_render_bulk_item_makes(case: str) -> None:
    op = _taken(**CASES[case])
    assert isinstance(op, Rendered)
    assert op.text is not None
    expected = render_bulk_item(_plain(op))
    assert op.text == expected
    assert render_bulk_item(op) is op.text
    item = json.loads(op.text)
    assert item["idempotency_key"] == op.idempotency_key
    assert item["id"] == op.payload["span_id"]
    assert ("finished_at" in item) == (MERGED_FINISH in op.metadata)


def test_many_instances_and_seconds_render_right_past_what_is_kept() -> None:
    """The kept literals and seconds are refilled without changing any item."""
    for n in range(5_000):
        args = (f"s{n}", f"inst-{n}", f"type:{n % 7}", "complete", "{}", None)
        started, finished = 1_700_000_000.0 + n * 37.25, 1_700_000_000.0 + n * 41.5
        text = render_create(*args, started, '{"r":1}', finished)
        op = _taken(
            instance=args[1],
            schema=args[2],
            span_id=args[0],
            params="{}",
            started=started,
            finish=("complete", '{"r":1}', finished),
        )
        assert text == op.text == render_bulk_item(_plain(op))


def test_text_orjson_refuses_is_rendered_the_usual_way() -> None:
    """A lone surrogate (not valid UTF-8) leaves the text to ``render_bulk_item``'s
    fallback, which escapes it as Python's JSON encoder does."""
    op = _taken(schema="bad\udc80type")
    assert isinstance(op, Rendered)
    assert op.text is None
    text = render_bulk_item(op)
    assert text == render_bulk_item(_plain(op))
    assert json.loads(text)["schema_name"] == "bad\udc80type"


def test_a_replaced_operation_is_rendered_from_its_new_payload() -> None:
    op = _taken()
    changed = dataclasses.replace(op, payload={**op.payload, PAYLOAD_JSON: '{"other":1}'})
    assert json.loads(render_bulk_item(changed))["payload"] == {"other": 1}
    assert json.loads(render_bulk_item(op.replace(idempotency_key="k2")))["idempotency_key"] == "k2"


def test_a_rendered_create_merged_with_its_finish_by_the_engine_goes_merged() -> None:
    """A record taken before its finish came (an ``active`` create, rendered) whose
    finish then waits behind it: the engine's merge makes a new create, rendered from
    its payload, not the create's kept text."""
    active = _taken(span_id="s1", finish=None)
    assert isinstance(active, Rendered)
    ending = finish_op("inst-1", "s1")
    lanes = {"inst-1": deque([active, ending])}
    batch = take_batch(lanes, InFlight(), set(), max_items=10, max_bytes=10**6)
    assert batch is not None
    [op] = batch.ops
    assert op.metadata[MERGED_FINISH] == ending.idempotency_key
    item = json.loads(batch.texts[0])
    assert (item["status"], item["result_payload"]) == ("complete", {"ok": True})
    assert "finished_at" in item
    assert batch.texts[0] != active.text


class BodySender(FakeSender):
    """A fake sender that also keeps every request's body as sent."""

    def __init__(self, plan: Any = None) -> None:
        super().__init__(plan)
        self.bodies: list[bytes] = []

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        self.bodies.append(body)
        return await super().post(path, body)


async def test_a_retry_sends_the_rendered_bytes_again_unchanged() -> None:
    ops = [_taken(span_id=f"s{n}") for n in range(3)] + [_taken(span_id="s3", finish=None)]
    sender = BodySender(lambda _r, index: ConnectionRefusedError("down") if index == 0 else None)
    harness = Harness(sender)
    harness.put(*ops)
    assert await harness.finish() == 0
    expected = b'{"items":[' + b",".join(render_bulk_item(_plain(op)) for op in ops) + b"]}"
    assert sender.bodies == [expected, expected]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.retried, stats.dropped) == (7, 4, 0)


async def test_a_refused_rendered_create_is_re_sent_with_the_marker_not_its_old_text() -> None:
    def plan(request: Request, index: int) -> object:
        if index == 0:
            error = item_error("validation_error", "payload does not match the schema")
            error["errors"] = {"payload": ["no"]}
            return {"outputs": {request.keys[0]: error}}
        return None

    sender = BodySender(plan)
    harness = Harness(sender)
    op = _taken(span_id="s1")
    harness.put(op)
    assert await harness.finish() == 0
    first, second = (json.loads(body)["items"][0] for body in sender.bodies)
    assert first["payload"] == json.loads(PARAMS)
    assert second["payload"] != first["payload"]
    assert "rejected" in json.dumps(second["payload"])
    assert second["result_payload"] == first["result_payload"]
    assert second["idempotency_key"] == first["idempotency_key"] == "c-s1"
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.rejected, stats.dropped) == (2, 1, 0)


def test_a_table_without_a_records_queue_makes_plain_operations() -> None:
    """Only records taken from the client's own queue are rendered ahead."""
    table, offered = record_table(SpanQueue())
    table.offer_span = None
    span = OpenSpan("i1", "agent:step", None)
    table.open(span, push=False)
    assert table.create(span, "active", "{}", 1.0) is None
    assert [type(op) for op in offered] == [Operation]


def test_a_rendered_create_is_an_operation_equal_to_its_plain_copy() -> None:
    """A rendered create is an ``Operation``: equal to its plain copy, pickled as one."""
    op = _taken()
    assert op == _plain(op)
    again = pickle.loads(pickle.dumps(op))
    assert type(again) is Operation
    assert again == op
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.text = b"x"  # type: ignore[misc]
