"""Tests for prefactor_core.queue.executor.TaskExecutor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from prefactor_core import InMemoryQueue, QueueClosedError, TaskExecutor
from prefactor_core.queue import ExecutorStatistics

DEADLINE = 5.0


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds; fail instead of hanging.

    Each round is a bare scheduler yield (as anyio's wait_all_tasks_blocked does), never
    a timed sleep.
    """
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


class SleepRecorder:
    """An injected sleep that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class FlakyHandler:
    """Fails the first ``failures`` calls per item with ``error``, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("boom")
        self.calls: dict[object, int] = {}
        self.done: list[object] = []

    async def __call__(self, item: object) -> None:
        self.calls[item] = self.calls.get(item, 0) + 1
        if self.calls[item] <= self.failures:
            raise self.error
        self.done.append(item)


# -- construction -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"num_workers": 0}, {"max_retries": -1}, {"retry_delay_base": -0.5}],
)
async def test_constructor_rejects_bad_values(kwargs: dict[str, float]) -> None:
    """Zero workers, negative retries or a negative base delay raise ValueError."""

    async def handler(item: object) -> None:
        pass

    with pytest.raises(ValueError):
        TaskExecutor(InMemoryQueue(), handler, **kwargs)  # type: ignore[arg-type]


# -- processing ---------------------------------------------------------------------


async def test_workers_process_every_item() -> None:
    """Every queued item reaches the handler exactly once."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    seen: list[int] = []

    async def handler(item: int) -> None:
        seen.append(item)

    executor = TaskExecutor(queue, handler, num_workers=3)
    executor.start()
    for i in range(50):
        await queue.put(i)
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert sorted(seen) == list(range(50))
    assert executor.statistics().processed == 50


async def test_single_worker_keeps_fifo_order() -> None:
    """With one worker, items are handled in queue order."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    seen: list[int] = []

    async def handler(item: int) -> None:
        seen.append(item)

    executor = TaskExecutor(queue, handler, num_workers=1)
    executor.start()
    for i in range(20):
        await queue.put(i)
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert seen == list(range(20))


async def test_workers_process_concurrently() -> None:
    """num_workers items are in the handler at the same time."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    release = asyncio.Event()
    inside: list[int] = []

    async def handler(item: int) -> None:
        inside.append(item)
        await release.wait()

    executor = TaskExecutor(queue, handler, num_workers=3)
    executor.start()
    for i in range(5):
        await queue.put(i)
    await until(lambda: len(inside) == 3)
    assert executor.statistics().in_flight == 3
    assert queue.size() == 2
    release.set()
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert sorted(inside) == [0, 1, 2, 3, 4]


# -- retries ------------------------------------------------------------------------


async def test_retries_use_exponential_backoff_with_jitter() -> None:
    """Delays before retry n are retry_delay_base * 2**n within ±25 % jitter."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    handler = FlakyHandler(failures=4)
    sleep = SleepRecorder()
    base = 0.5
    executor = TaskExecutor(
        queue, handler, num_workers=1, max_retries=4, retry_delay_base=base, sleep=sleep
    )
    executor.start()
    await queue.put("item")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert handler.calls == {"item": 5}
    assert handler.done == ["item"]
    assert len(sleep.delays) == 4
    for n, delay in enumerate(sleep.delays):
        nominal = base * 2**n
        assert nominal * 0.75 <= delay <= nominal * 1.25
    # Growth: each delay's lowest possible value is above the previous one's lowest.
    assert sleep.delays[3] > sleep.delays[0] * 2
    assert executor.statistics() == ExecutorStatistics(
        workers=0, processed=1, retried=4, failed=0, in_flight=0
    )


async def test_jitter_varies_the_delays() -> None:
    """Jitter makes the first retry delays of many items differ."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    handler = FlakyHandler(failures=1)
    sleep = SleepRecorder()
    executor = TaskExecutor(queue, handler, num_workers=1, retry_delay_base=1.0, sleep=sleep)
    executor.start()
    for i in range(20):
        await queue.put(i)
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert len(sleep.delays) == 20
    assert all(0.75 <= delay <= 1.25 for delay in sleep.delays)
    assert len(set(sleep.delays)) > 1


async def test_max_retries_is_respected() -> None:
    """An item that always fails is tried 1 + max_retries times, then counted as failed."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    handler = FlakyHandler(failures=100)
    sleep = SleepRecorder()
    executor = TaskExecutor(queue, handler, num_workers=1, max_retries=2, sleep=sleep)
    executor.start()
    await queue.put("doomed")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert handler.calls == {"doomed": 3}
    assert len(sleep.delays) == 2
    stats = executor.statistics()
    assert (stats.processed, stats.retried, stats.failed) == (0, 2, 1)


async def test_zero_max_retries_tries_once() -> None:
    """With max_retries=0 a failing item is tried once and never slept on."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    handler = FlakyHandler(failures=1)
    sleep = SleepRecorder()
    executor = TaskExecutor(queue, handler, num_workers=1, max_retries=0, sleep=sleep)
    executor.start()
    await queue.put("once")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert handler.calls == {"once": 1}
    assert sleep.delays == []
    assert executor.statistics().failed == 1


async def test_not_retryable_error_stops_retries() -> None:
    """When is_retryable returns False the item is not retried."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    error = ValueError("permanent")
    handler = FlakyHandler(failures=100, error=error)
    sleep = SleepRecorder()
    asked: list[Exception] = []

    def is_retryable(exc: Exception) -> bool:
        asked.append(exc)
        return False

    executor = TaskExecutor(
        queue, handler, num_workers=1, max_retries=5, is_retryable=is_retryable, sleep=sleep
    )
    executor.start()
    await queue.put("item")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert handler.calls == {"item": 1}
    assert asked == [error]
    assert sleep.delays == []
    assert executor.statistics().failed == 1


async def test_is_retryable_decides_per_error() -> None:
    """Retryable errors are retried; a non-retryable one ends the retries."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    errors = [ConnectionError("transient"), ConnectionError("again"), KeyError("permanent")]
    calls = 0

    async def handler(item: str) -> None:
        nonlocal calls
        calls += 1
        raise errors[calls - 1]

    sleep = SleepRecorder()
    executor = TaskExecutor(
        queue,
        handler,
        num_workers=1,
        max_retries=10,
        is_retryable=lambda exc: isinstance(exc, ConnectionError),
        sleep=sleep,
    )
    executor.start()
    await queue.put("item")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert calls == 3
    assert len(sleep.delays) == 2
    assert executor.statistics().failed == 1


async def test_raising_is_retryable_does_not_kill_the_worker() -> None:
    """If is_retryable itself raises, the item fails and the worker carries on."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    done: list[str] = []

    async def handler(item: str) -> None:
        if item == "bad":
            raise RuntimeError("handler failed")
        done.append(item)

    def is_retryable(exc: Exception) -> bool:
        raise TypeError("predicate is broken")

    executor = TaskExecutor(queue, handler, num_workers=1, is_retryable=is_retryable)
    executor.start()
    await queue.put("bad")
    await queue.put("good")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert done == ["good"]
    assert executor.statistics().failed == 1
    assert executor.statistics().processed == 1


async def test_failing_item_does_not_stop_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    """A worker logs an item that failed for good and goes on with the next item."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    done: list[str] = []

    async def handler(item: str) -> None:
        if item == "bad":
            raise RuntimeError("always")
        done.append(item)

    executor = TaskExecutor(queue, handler, num_workers=1, max_retries=1, sleep=SleepRecorder())
    executor.start()
    for item in ("bad", "good-1", "good-2"):
        await queue.put(item)
    with caplog.at_level(logging.WARNING, logger="prefactor_core.executor"):
        async with asyncio.timeout(DEADLINE):
            await executor.stop()
    assert done == ["good-1", "good-2"]
    assert any("giving up" in record.getMessage() for record in caplog.records)


async def test_default_sleep_is_used_without_injection() -> None:
    """Without an injected sleep, retries still happen (a zero base delay keeps it instant)."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    handler = FlakyHandler(failures=2)
    executor = TaskExecutor(queue, handler, num_workers=1, retry_delay_base=0)
    executor.start()
    await queue.put("item")
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert handler.calls == {"item": 3}
    assert executor.statistics().retried == 2


# -- stop ---------------------------------------------------------------------------


async def test_stop_drains_every_queued_item_and_never_cancels() -> None:
    """Items queued before stop() are all processed; no handler is cancelled."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    gate = asyncio.Event()
    processed: list[int] = []
    cancelled: list[int] = []

    async def handler(item: int) -> None:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        processed.append(item)

    executor = TaskExecutor(queue, handler, num_workers=2)
    executor.start()
    for i in range(10):
        await queue.put(i)
    stopper = asyncio.create_task(executor.stop())
    await until(lambda: queue.closed and executor.statistics().in_flight == 2)
    assert not stopper.done()
    assert processed == []
    with pytest.raises(QueueClosedError):
        await queue.put(99)
    gate.set()
    async with asyncio.timeout(DEADLINE):
        await stopper
    assert sorted(processed) == list(range(10))
    assert cancelled == []
    assert queue.size() == 0
    assert executor.running is False


async def test_stop_wakes_idle_workers() -> None:
    """stop() returns when every worker was idle, waiting in get()."""
    queue: InMemoryQueue[int] = InMemoryQueue()

    async def handler(item: int) -> None:
        pass

    executor = TaskExecutor(queue, handler, num_workers=4)
    executor.start()
    await until(lambda: queue.statistics().waiting_getters == 4)
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert executor.statistics().workers == 0


async def test_stop_without_start_closes_the_queue() -> None:
    """stop() on an executor that never started closes the queue and returns."""
    queue: InMemoryQueue[int] = InMemoryQueue()

    async def handler(item: int) -> None:
        pass

    executor = TaskExecutor(queue, handler)
    await executor.stop()
    assert queue.closed


async def test_stop_twice_is_harmless() -> None:
    """A second stop() returns at once."""
    queue: InMemoryQueue[int] = InMemoryQueue()

    async def handler(item: int) -> None:
        pass

    executor = TaskExecutor(queue, handler)
    executor.start()
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
        await executor.stop()
    assert not executor.running


async def test_start_twice_raises() -> None:
    """start() on a running executor raises RuntimeError."""
    queue: InMemoryQueue[int] = InMemoryQueue()

    async def handler(item: int) -> None:
        pass

    executor = TaskExecutor(queue, handler, num_workers=2)
    executor.start()
    with pytest.raises(RuntimeError):
        executor.start()
    assert executor.statistics().workers == 2
    async with asyncio.timeout(DEADLINE):
        await executor.stop()


# -- statistics ---------------------------------------------------------------------


async def test_statistics_through_the_lifecycle() -> None:
    """statistics() reports workers, in-flight items and counters as work proceeds."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    gate = asyncio.Event()

    async def handler(item: int) -> None:
        await gate.wait()

    executor = TaskExecutor(queue, handler, num_workers=2)
    assert executor.statistics() == ExecutorStatistics(
        workers=0, processed=0, retried=0, failed=0, in_flight=0
    )
    assert executor.running is False
    executor.start()
    assert executor.running is True
    assert executor.statistics().workers == 2
    for i in range(3):
        await queue.put(i)
    await until(lambda: executor.statistics().in_flight == 2)
    assert executor.statistics().processed == 0
    gate.set()
    async with asyncio.timeout(DEADLINE):
        await executor.stop()
    assert executor.statistics() == ExecutorStatistics(
        workers=0, processed=3, retried=0, failed=0, in_flight=0
    )
