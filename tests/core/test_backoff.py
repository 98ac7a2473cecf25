"""Tests for ``Backoff``: the failures in a row of the engine's endless retry loops, on
the shared ``RetryPolicy``, with a fake clock and a fixed random source."""

from __future__ import annotations

import asyncio

from prefactor_core._engine.retry import URGENT_DELAY, Backoff
from prefactor_http import PrefactorApiError

DEADLINE = 5.0


class HeldSleep:
    """A clock whose sleeps never end by themselves: only ``hurry()`` can cut them."""

    def __init__(self) -> None:
        self.requested: list[float] = []
        self.started = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        self.started.set()
        await asyncio.Event().wait()


def _backoff(**kwargs: float) -> Backoff:
    return Backoff(kwargs.get("base", 1.0), kwargs.get("cap", 30.0), jitter=lambda: 0.5)


def test_delays_double_per_failure_in_a_row_up_to_the_cap() -> None:
    """1, 2, 4, 8, 16, then the cap; ``reset`` starts over from the base."""
    backoff = _backoff()
    assert [backoff.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.failures == 7
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_jitter_never_takes_a_delay_past_the_cap() -> None:
    """The longest jitter still waits at most the cap (``max_retry_delay`` is the longest)."""
    backoff = Backoff(1.0, 2.0, jitter=lambda: 0.999)
    assert max(backoff.next_delay() for _ in range(10)) == 2.0


def test_a_positive_retry_after_wins_and_a_zero_one_is_ignored() -> None:
    """Retry-After replaces the delay (capped); 0 falls back to the schedule, so an
    endless loop against a server that always says 0 still backs off."""
    backoff = _backoff(cap=10.0)
    assert backoff.next_delay(retry_after=7.0) == 7.0
    assert backoff.next_delay(retry_after=99.0) == 10.0
    assert backoff.next_delay(retry_after=0.0) == 4.0  # the third failure in a row


def test_delay_after_reads_the_errors_retry_after() -> None:
    """An API error's ``retry_after`` is honoured; other errors take the schedule."""
    backoff = _backoff()
    busy = PrefactorApiError("busy", "unavailable", status_code=503, retry_after=5.0)
    assert backoff.delay_after(busy) == 5.0
    assert backoff.delay_after(OSError("refused")) == 2.0


def test_urgency_keeps_every_delay_short_until_it_ends() -> None:
    """While a flush waits, no delay is longer than URGENT_DELAY."""
    backoff = _backoff()
    backoff.begin_urgent()
    assert [backoff.next_delay() for _ in range(3)] == [URGENT_DELAY] * 3
    backoff.end_urgent()
    assert backoff.next_delay() == 8.0


async def test_hurry_ends_a_wait_in_progress() -> None:
    """A wait on a clock that never fires ends when ``hurry()`` is called."""
    sleep = HeldSleep()
    backoff = Backoff(1.0, 30.0, sleep=sleep, jitter=lambda: 0.5)
    async with asyncio.timeout(DEADLINE):
        waiting = asyncio.create_task(backoff.wait(backoff.next_delay()))
        await sleep.started.wait()
        assert not waiting.done()
        backoff.hurry()
        await waiting
    assert sleep.requested == [1.0]


async def test_begin_urgent_cuts_the_wait_and_shortens_the_next() -> None:
    """A flush that starts mid-wait ends the wait; the next wait asks for URGENT_DELAY."""
    sleep = HeldSleep()
    backoff = Backoff(10.0, 30.0, sleep=sleep, jitter=lambda: 0.5)
    async with asyncio.timeout(DEADLINE):
        first = asyncio.create_task(backoff.wait(backoff.next_delay()))
        await sleep.started.wait()
        backoff.begin_urgent()
        await first
        sleep.started.clear()
        second = asyncio.create_task(backoff.wait(25.0))
        await sleep.started.wait()
        backoff.hurry()
        await second
    assert sleep.requested == [10.0, URGENT_DELAY]
