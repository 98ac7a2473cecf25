"""``settlement.read_bulk_answer`` on the two forms of a bulk answer: every output listed
(any server), and only the outputs that are no plain success (our server, asked with
``Prefer: omit=success``: ``"omitted": "success"`` and ``"processed"``)."""

from __future__ import annotations

from typing import Any

from prefactor_core._engine.settlement import read_bulk_answer
from prefactor_core.operations import Operation

from .dispatcher_fakes import create, item_error


def _ops(n: int) -> list[Operation]:
    return [create("A", f"s{n}") for n in range(n)]


def _keys(ops: list[Operation]) -> list[str | None]:
    return [op.idempotency_key for op in ops]


def _omitted(processed: int, **outputs: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "outputs": outputs, "omitted": "success", "processed": processed}


def test_an_answer_that_lists_nothing_delivers_every_item() -> None:
    ops = _ops(40)
    answer = read_bulk_answer(ops, ["A"] * 40, _omitted(40))
    assert _keys(answer.delivered) == _keys(ops)
    assert answer.delivered is not ops  # the batch's own list is let go of apart
    assert (answer.unprocessed, answer.refused, answer.transient, answer.controls) == (
        [], None, None, []
    )  # fmt: skip


def test_items_after_the_processed_count_did_not_run() -> None:
    ops = _ops(40)
    answer = read_bulk_answer(ops, ["A"] * 40, _omitted(25))
    assert _keys(answer.delivered) == _keys(ops[:25])
    assert [op for _, op in answer.unprocessed] == ops[25:]


def test_a_listed_error_stops_as_in_the_full_answer() -> None:
    ops = _ops(30)
    k = _keys(ops)
    refused = read_bulk_answer(
        ops, ["A"] * 30, _omitted(21, **{str(k[20]): item_error("validation_error", "bad")})
    )
    assert _keys(refused.delivered) == k[:20]
    assert refused.refused is not None
    assert refused.refused[0] == 20
    assert refused.unprocessed == []
    passing = read_bulk_answer(
        ops, ["A"] * 30, _omitted(21, **{str(k[20]): item_error("unavailable", "busy")})
    )
    assert _keys(passing.delivered) == k[:20]
    assert [op for _, op in passing.unprocessed] == ops[20:]
    assert passing.transient is not None


def test_a_listed_success_with_control_is_passed_on() -> None:
    ops = _ops(5)
    k = _keys(ops)
    control = {"status": "success", "id": "s3", "control": {"terminate": True}}
    answer = read_bulk_answer(ops, ["A"] * 5, _omitted(5, **{str(k[3]): control}))
    assert _keys(answer.delivered) == k
    assert answer.controls == [(ops[3], control)]


def test_without_the_marker_a_missing_output_means_not_run() -> None:
    """A full answer (another server), or a marker this SDK does not know: only the items
    listed as successes are delivered."""
    ops = _ops(3)
    k = _keys(ops)
    listed = {str(k[0]): {"status": "success"}}
    for response in (
        {"outputs": listed},
        {"outputs": listed, "omitted": "success"},  # no count: not the form we know
        {"outputs": listed, "omitted": "success", "processed": "3"},
        {"outputs": listed, "omitted": "errors", "processed": 3},
    ):
        answer = read_bulk_answer(ops, ["A"] * 3, response)
        assert _keys(answer.delivered) == k[:1], response
        assert [op for _, op in answer.unprocessed] == ops[1:], response
