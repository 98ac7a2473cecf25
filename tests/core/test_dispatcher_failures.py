"""The dispatcher's handling of failures on its own, with a fake sender and a held sleep
(no HTTP, no server, no time passing): retry ordering and backoff, refusals and splits,
the failure latch, urgency, drain and stop."""

from __future__ import annotations

import asyncio

import pytest

from prefactor_core._engine.retry import URGENT_DELAY
from prefactor_http.exceptions import PrefactorApiError

from .dispatcher_fakes import (
    DEADLINE,
    FakeSender,
    Harness,
    HeldSleep,
    Request,
    create,
    finish,
    item_error,
    quiesce,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("turn_budget")]


def unavailable(retry_after: float | None = None) -> PrefactorApiError:
    return PrefactorApiError("busy", "unavailable", 503, retry_after=retry_after)


def fail_first(error: Exception, times: int = 1) -> object:
    """A plan that fails the first ``times`` requests with ``error``."""
    return lambda _request, index: error if index < times else None


# -- retry ordering --------------------------------------------------------------------------


async def test_a_failed_batch_is_retried_before_what_was_queued_after_it() -> None:
    sender = FakeSender(fail_first(unavailable()), hold=lambda r: r.keys[0] == "A:create:s1")
    harness = Harness(sender, num_workers=1)
    harness.put(create("A", "s1"), create("A", "s2"))
    await sender.wait_for(1)
    harness.put(create("A", "s3"), create("B", "b1"))
    await quiesce()
    sender.release()
    assert await harness.finish() == 0
    assert sender.batches() == [
        ["A:create:s1", "A:create:s2"],
        ["A:create:s1", "A:create:s2", "A:create:s3", "B:create:b1"],
    ]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.retried, stats.failed_requests, stats.requests) == (4, 2, 1, 2)
    assert len(harness.sleep.delays) == 1


@pytest.mark.parametrize(
    "error",
    [unavailable(), PrefactorApiError("slow", "rate_limited", 429), ConnectionRefusedError()],
    ids=["503", "429", "connection"],
)
async def test_single_requests_are_retried_in_order(error: Exception) -> None:
    sender = FakeSender(fail_first(error, times=2))
    harness = Harness(sender, bulk=False)
    ops = [create("A", f"s{n}") for n in range(3)]
    harness.put(*ops)
    assert await harness.finish() == 0
    first, *rest = [op.idempotency_key for op in ops]
    assert sender.delivered() == [first, first, first, *rest]
    assert harness.dispatcher.statistics().retried == 2


async def test_the_backoff_doubles_and_a_success_resets_it() -> None:
    # Requests 0, 1 fail; 2 succeeds; 3 fails: the waits are ~1, ~2, then ~1 again.
    sender = FakeSender(lambda _r, index: unavailable() if index in (0, 1, 3) else None)
    harness = Harness(sender, bulk=False, retry_delay_base=1.0, max_retry_delay=30.0)
    harness.put(create("A", "s1"), create("A", "s2"))
    assert await harness.finish() == 0
    first, second, third = harness.sleep.delays
    assert 0.75 <= first <= 1.25
    assert 1.5 <= second <= 2.5
    assert 0.75 <= third <= 1.25


async def test_retry_after_decides_the_wait_within_the_cap() -> None:
    sender = FakeSender(lambda _r, index: unavailable([7.0, 99.0][index]) if index < 2 else None)
    harness = Harness(sender, max_retry_delay=30.0)
    harness.put(create("A", "s1"))
    assert await harness.finish() == 0
    assert harness.sleep.delays == [7.0, 30.0]


async def test_items_the_api_did_not_process_are_sent_again_in_order() -> None:
    """A bulk answer without an output for some items (or a passing error on one) leaves
    them and everything after them to the next request."""

    def plan(request: Request, index: int) -> dict[str, object] | None:
        if index == 0:
            k0, _k1, k2, _k3 = request.keys
            outputs = {k0: {"status": "success"}, k2: item_error("rate_limited")}
            return {"outputs": outputs}
        return None

    sender = FakeSender(plan)
    harness = Harness(sender)
    harness.put(*(create("A", f"s{n}") for n in range(4)))
    assert await harness.finish() == 0
    assert sender.batches()[1] == ["A:create:s1", "A:create:s2", "A:create:s3"]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.retried, stats.rejected) == (4, 3, 0)
    assert len(harness.sleep.delays) == 1


# -- refusals ----------------------------------------------------------------------------------


async def test_a_refused_item_is_repaired_and_the_rest_follow_it_in_order() -> None:
    def plan(request: Request, index: int) -> dict[str, object] | None:
        if index == 0:
            k0, k1, _k2, _k3 = request.keys
            return {"outputs": {k0: {"status": "success"}, k1: item_error("validation_error")}}
        return None

    sender = FakeSender(plan)
    harness = Harness(sender)
    harness.put(*(create("A", f"s{n}") for n in range(4)))
    assert await harness.finish() == 0
    assert sender.batches()[1] == ["A:create:s1", "A:create:s2", "A:create:s3"]
    repaired = sender.requests[1].items[0]
    assert repaired["payload"] != {"n": 1}  # a marker in place of the refused params
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.rejected, stats.dropped, stats.retried) == (4, 1, 0, 0)
    assert harness.sleep.delays == []  # a refusal is not a reason to wait


async def test_a_repaired_create_is_new_and_merges_with_its_finish() -> None:
    """The refused create was not stored: its repair, never sent, takes the finish that
    waits behind it (a create that was sent and goes again does not, see
    ``test_a_create_already_sent_once_is_not_merged_on_its_retry``)."""
    sender = FakeSender(
        lambda r, index: (
            {"outputs": {r.keys[0]: item_error("validation_error")}} if index == 0 else None
        ),
        hold=lambda r: r.keys == ["A:create:s1"],
    )
    harness = Harness(sender)
    await harness.put_behind(create("A", "s1"), finish("A", "s1"))
    assert await harness.finish() == 0
    assert sender.batches() == [["A:create:s1"], ["A:create:s1"]]
    repaired = sender.requests[1].items[0]
    assert (repaired["status"], repaired["result_payload"]) == ("complete", {"ok": True})
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.rejected, stats.retried) == (2, 1, 0)


async def test_a_conflict_on_a_finish_counts_as_delivered() -> None:
    sender = FakeSender(
        lambda r, _i: {"outputs": {k: item_error("conflict", "finished") for k in r.keys}}
    )
    harness = Harness(sender)
    harness.put(finish("A", "s1"))
    assert await harness.finish() == 0
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.rejected, stats.dropped) == (1, 0, 0)


async def test_a_batch_too_large_for_the_api_is_split() -> None:
    """A whole-request refusal that names no item halves the batches; nothing is lost."""
    too_large = PrefactorApiError("too large", "request_too_large", 413)
    sender = FakeSender(lambda r, _i: too_large if len(r.items) > 2 else None)
    harness = Harness(sender, num_workers=1)
    ops = [create("A", f"s{n}") for n in range(8)]
    harness.put(*ops)
    assert await harness.finish() == 0
    assert [len(keys) for keys in sender.batches()] == [8, 4, 2, 2, 2, 2]
    assert sender.delivered()[8 + 4 :] == [op.idempotency_key for op in ops]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped, stats.rejected) == (8, 0, 0)


@pytest.mark.parametrize("where", ["request", "item"])
async def test_a_fatal_answer_is_reported_once_and_its_batch_dropped(where: str) -> None:
    denied = PrefactorApiError("no", "unauthorized", 401)

    def plan(request: Request, _index: int) -> object:
        if where == "request":
            return denied
        return {"outputs": {request.keys[0]: item_error("unauthorized", "no")}}

    sender = FakeSender(plan)
    harness = Harness(sender)
    harness.put(create("A", "s1"), create("A", "s2"))
    await harness.finish()
    assert len(harness.failures) == 1
    error, op = harness.failures[0]
    assert (getattr(error, "status_code", None), op.idempotency_key) == (401, "A:create:s1")
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped) == (0, 2)


async def test_a_broken_sender_is_retried_max_retries_times_then_dropped() -> None:
    sender = FakeSender(lambda _r, _i: ValueError("a bug"))
    harness = Harness(sender, bulk=False, max_retries=2)
    harness.put(create("A", "s1"))
    await harness.finish()
    assert sender.delivered() == ["A:create:s1"] * 3
    stats = harness.dispatcher.statistics()
    assert (stats.dropped, stats.failed_requests, stats.retried) == (1, 3, 2)


# -- the failure latch, urgency, drain and stop --------------------------------------------------


async def stuck(spans: int) -> tuple[FakeSender, Harness]:
    """``spans`` creates of one instance against an API that holds every request; returns
    once the first batch (two creates) is in flight and the rest wait in the lane."""
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender, batch_size=2, num_workers=1)
    harness.put(*(create("A", f"s{n}") for n in range(spans)))
    await sender.wait_for(1)
    await quiesce()
    return sender, harness


async def test_drop_everything_drops_what_waits_and_all_that_comes_later() -> None:
    sender, harness = await stuck(4)
    assert harness.dispatcher.drop_everything() == 2
    harness.put(create("A", "late"))
    sender.release()
    assert await harness.finish() == 0
    assert sender.delivered() == ["A:create:s0", "A:create:s1"]
    stats = harness.dispatcher.statistics()
    assert (stats.sent, stats.dropped) == (2, 3)


async def test_urgency_cuts_a_long_backoff_short() -> None:
    """A flush or close during a 30-second backoff retries at once, then at short
    intervals."""
    sleep = HeldSleep(hold=True)
    sender = FakeSender(fail_first(unavailable(), times=2))
    harness = Harness(sender, sleep=sleep, retry_delay_base=30.0, max_retry_delay=60.0)
    harness.put(create("A", "s1"))
    async with asyncio.timeout(DEADLINE):
        await sleep.requested.wait()
    await quiesce()
    assert len(sender.requests) == 1
    assert sleep.delays[0] >= 22.5
    sleep.hold = False
    harness.dispatcher.begin_urgent()
    assert await harness.finish() == 0
    assert len(sender.requests) == 3
    assert sleep.delays[1] <= URGENT_DELAY
    harness.dispatcher.end_urgent()


async def test_drain_reports_and_drops_what_it_could_not_deliver() -> None:
    _sender, harness = await stuck(5)
    await harness.queue.close()
    assert await harness.dispatcher.drain(0.01) == 5
    stats = harness.dispatcher.statistics()
    assert (stats.dropped, stats.queued, stats.in_flight) == (5, 0, 0)


async def test_stop_for_a_spool_does_not_count_drops() -> None:
    """What a spool keeps for the next process is not dropped."""
    _sender, harness = await stuck(3)
    assert await harness.dispatcher.stop(count_as_dropped=False) == 3
    assert harness.dispatcher.statistics().dropped == 0


async def test_wait_idle_returns_once_everything_is_answered() -> None:
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender)
    harness.put(create("A", "s1"), finish("A", "s1"))
    await sender.wait_for(1)
    assert not harness.dispatcher.idle()
    waiting = asyncio.ensure_future(harness.dispatcher.wait_idle())
    await quiesce()
    assert not waiting.done()
    sender.release()
    async with asyncio.timeout(DEADLINE):
        await waiting
    assert harness.dispatcher.idle()
    assert harness.dispatcher.statistics().sent == 2
    await harness.finish()


async def test_a_merged_create_in_flight_counts_for_both_operations() -> None:
    """A span's create and finish merged into one item are two operations: in flight,
    and undelivered when the deadline passes."""
    sender = FakeSender(hold=lambda _r: True)
    harness = Harness(sender)
    harness.put(create("A", "s1"), finish("A", "s1"))
    await sender.wait_for(1)
    assert harness.dispatcher.statistics().in_flight == 2
    await harness.queue.close()
    assert await harness.dispatcher.drain(0.01) == 2
    assert harness.dispatcher.statistics().dropped == 2
