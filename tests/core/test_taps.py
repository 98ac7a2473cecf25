"""The engine's taps: observers of each operation the reader takes in."""

from __future__ import annotations

import logging

import pytest

from prefactor_core._engine.taps import Taps
from prefactor_core.operations import Operation, OperationType


def _op(n: int) -> Operation:
    return Operation(OperationType.RECORD_QUALITY, {"instance_id": "i", "n": n}, 1.0, f"k{n}")


def test_without_taps_the_reader_gets_accept_itself() -> None:
    accepted: list[Operation] = []
    assert Taps().wrap(accepted.append) == accepted.append


def test_taps_see_each_operation_before_it_is_accepted_in_order() -> None:
    seen: list[tuple[str, int]] = []
    taps = Taps()
    taps.add(lambda op: seen.append(("first", op.payload["n"])))
    taps.add(lambda op: seen.append(("second", op.payload["n"])))
    accept = taps.wrap(lambda op: seen.append(("accepted", op.payload["n"])))
    accept(_op(1))
    accept(_op(2))
    assert seen == [
        ("first", 1),
        ("second", 1),
        ("accepted", 1),
        ("first", 2),
        ("second", 2),
        ("accepted", 2),
    ]


def test_a_failing_tap_is_counted_logged_once_and_never_stops_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(op: Operation) -> None:
        raise RuntimeError("tap down")

    accepted: list[Operation] = []
    taps = Taps()
    taps.add(broken)
    with caplog.at_level(logging.ERROR, logger="prefactor_core.delivery"):
        accept = taps.wrap(accepted.append)
        for n in range(3):
            accept(_op(n))
    assert len(accepted) == 3
    assert taps.failures == 3
    assert sum("tap failed" in r.getMessage() for r in caplog.records) == 1


def test_removing_a_tap_takes_effect_at_the_next_wrap() -> None:
    seen: list[Operation] = []
    taps = Taps()
    taps.add(seen.append)
    taps.remove(seen.append)
    assert not taps
    with pytest.raises(TypeError, match="callable"):
        taps.add("not a function")  # type: ignore[arg-type]


def test_show_hands_many_operations_to_the_taps_in_order() -> None:
    seen: list[int] = []
    taps = Taps()
    taps.add(lambda op: seen.append(op.payload["n"]))
    taps.add(lambda op: 1 / 0)  # a failing tap does not stop the others
    taps.show([_op(1), _op(2), _op(3)])
    assert seen == [1, 2, 3]
    assert taps.failures == 3
