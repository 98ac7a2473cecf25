"""Tests for ``RetryPolicy`` on its own: the one backoff rule of both packages, run on a
fake clock and a fixed random source."""

from __future__ import annotations

import math

import pytest

from prefactor_http import HttpClientConfig, PrefactorRetryExhaustedError
from prefactor_http.retry import RetryHandler, RetryPolicy


class FakeClock:
    """A clock whose sleep returns at once and moves its time forward instead."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_jitter_spreads_each_delay_over_plus_minus_25_percent() -> None:
    """jitter 0 gives 75 % of the nominal delay, jitter near 1 gives 125 %, 0.5 gives it."""
    assert [RetryPolicy(5, 1.0, jitter=lambda: 0.0).delay(n) for n in range(4)] == [
        0.75,
        1.5,
        3.0,
        6.0,
    ]
    assert [RetryPolicy(5, 1.0, jitter=lambda: 0.5).delay(n) for n in range(4)] == [
        1.0,
        2.0,
        4.0,
        8.0,
    ]
    assert RetryPolicy(5, 1.0, jitter=lambda: 0.999).delay(3) == pytest.approx(9.996)


def test_the_cap_applies_after_the_jitter() -> None:
    """No delay is longer than max_delay, whatever the jitter draws."""
    policy = RetryPolicy(None, 1.0, 10.0, jitter=lambda: 0.999)
    assert policy.delay(3) == pytest.approx(9.996)  # 8 s * 1.2495: under the cap
    assert [policy.delay(n) for n in (4, 5, 60)] == [10.0, 10.0, 10.0]


def test_the_multiplier_sets_the_growth() -> None:
    """Each retry waits ``multiplier`` times longer than the one before."""
    policy = RetryPolicy(5, 0.5, 100.0, multiplier=3.0, jitter=lambda: 0.5)
    assert [policy.delay(n) for n in range(4)] == [0.5, 1.5, 4.5, 13.5]


def test_retry_after_replaces_the_delay_and_is_capped() -> None:
    """A Retry-After wins over the schedule, capped at max_delay; below 0 counts as 0."""
    policy = RetryPolicy(5, 1.0, 30.0, jitter=lambda: 0.5)
    assert policy.delay(0, retry_after=7.0) == 7.0
    assert policy.delay(4, retry_after=0.0) == 0.0
    assert policy.delay(0, retry_after=-3.0) == 0.0
    assert policy.delay(0, retry_after=3600.0) == 30.0


def test_a_huge_retry_index_waits_the_cap_instead_of_overflowing() -> None:
    """Growth that overflows a float ends at max_delay (or 0 with a zero first delay)."""
    assert RetryPolicy(None, 1.0, 45.0).delay(100_000) == 45.0
    assert RetryPolicy(None, 1.0).delay(100_000) == math.inf
    assert RetryPolicy(None, 0.0).delay(100_000) == 0.0


def test_allows_counts_retries_and_none_never_stops() -> None:
    """max_retries retries are allowed after the first attempt; None allows any number."""
    assert [RetryPolicy(2, 1.0).allows(n) for n in range(4)] == [True, True, False, False]
    assert not RetryPolicy(0, 1.0).allows(0)
    assert RetryPolicy(None, 1.0).allows(10**9)


async def test_wait_sleeps_the_delay_on_the_injected_clock() -> None:
    """``wait`` sleeps on the policy's clock and returns what it waited."""
    clock = FakeClock()
    policy = RetryPolicy(3, 2.0, 5.0, jitter=lambda: 0.5, sleep=clock.sleep)
    waited = [await policy.wait(n) for n in range(3)]
    assert waited == [2.0, 4.0, 5.0]
    assert clock.sleeps == waited
    assert clock.now == 11.0
    assert await policy.wait(0, retry_after=1.5) == 1.5
    assert clock.now == 12.5


async def test_retry_handler_waits_by_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """``RetryHandler`` retries max_retries times, then raises RetryExhaustedError."""
    clock = FakeClock()
    monkeypatch.setattr("asyncio.sleep", clock.sleep)
    monkeypatch.setattr("random.random", lambda: 0.5)
    config = HttpClientConfig(api_url="http://127.0.0.1:9", api_token="t", max_retries=2)
    calls: list[int] = []

    async def always_fails() -> None:
        calls.append(1)
        raise OSError("down")

    with pytest.raises(PrefactorRetryExhaustedError) as info:
        await RetryHandler(config).execute(always_fails, lambda e: isinstance(e, OSError))
    assert len(calls) == 3
    assert info.value.attempts == 3
    assert clock.sleeps == [1.0, 2.0]
