"""Tests for prefactor_core.queue.base and prefactor_core.queue.memory."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from prefactor_core import InMemoryQueue, Queue, QueueClosedError, QueueFullError
from prefactor_core.queue import QueueStatistics

# Generous deadline for waits that should end at once; it only bounds a failing test.
DEADLINE = 5.0


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (like anyio's wait_all_tasks_blocked).

    Each round is a bare scheduler yield, not a timed sleep; a condition that never
    holds fails the test instead of hanging it.
    """
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


# -- the interface ------------------------------------------------------------------


def test_queue_is_abstract() -> None:
    """The Queue base class cannot be instantiated."""
    with pytest.raises(TypeError):
        Queue()  # type: ignore[abstract]


async def test_minimal_subclass_satisfies_the_interface() -> None:
    """A subclass implementing the five methods is a usable Queue."""

    class ListQueue(Queue[int]):
        def __init__(self) -> None:
            self.items: list[int] = []
            self.is_closed = False

        async def put(self, item: int) -> None:
            self.items.append(item)

        async def get(self) -> int:
            return self.items.pop(0)

        def size(self) -> int:
            return len(self.items)

        async def close(self, num_waiters: int = 1) -> None:
            self.is_closed = True

        def closed(self) -> bool:
            return self.is_closed

    queue = ListQueue()
    await queue.put(1)
    assert queue.size() == 1
    assert await queue.get() == 1
    await queue.close()
    assert queue.closed


def test_in_memory_queue_is_a_queue() -> None:
    """InMemoryQueue implements the Queue interface."""
    assert isinstance(InMemoryQueue(), Queue)


def test_errors_are_exceptions() -> None:
    """QueueClosedError and QueueFullError are distinct Exception subclasses."""
    assert issubclass(QueueClosedError, Exception)
    assert issubclass(QueueFullError, Exception)
    assert not issubclass(QueueClosedError, QueueFullError)
    assert not issubclass(QueueFullError, QueueClosedError)


# -- construction -------------------------------------------------------------------


def test_negative_maxsize_is_rejected() -> None:
    """maxsize below zero raises ValueError."""
    with pytest.raises(ValueError):
        InMemoryQueue(-1)


def test_negative_put_timeout_is_rejected() -> None:
    """A negative put_timeout raises ValueError."""
    with pytest.raises(ValueError):
        InMemoryQueue(1, put_timeout=-0.1)


def test_new_queue_statistics() -> None:
    """A new queue is empty, open and unbounded by default."""
    assert InMemoryQueue().statistics() == QueueStatistics(
        size=0, maxsize=0, waiting_getters=0, waiting_putters=0, closed=False
    )


# -- FIFO and size ------------------------------------------------------------------


async def test_items_come_out_in_fifo_order() -> None:
    """Items are returned in the order they were put."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    for i in range(100):
        await queue.put(i)
    assert [await queue.get() for _ in range(100)] == list(range(100))


async def test_size_and_len_track_items() -> None:
    """size() and len() count the waiting items."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    assert queue.size() == 0
    await queue.put("a")
    queue.put_nowait("b")
    assert queue.size() == len(queue) == 2
    await queue.get()
    assert queue.size() == len(queue) == 1


async def test_unbounded_queue_accepts_many_items() -> None:
    """An unbounded queue never reports full."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    for i in range(10_000):
        queue.put_nowait(i)
    assert queue.size() == 10_000


async def test_get_waits_for_a_put() -> None:
    """A get on an empty queue waits until an item is put."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    getter = asyncio.create_task(queue.get())
    await until(lambda: queue.statistics().waiting_getters == 1)
    assert not getter.done()
    await queue.put("x")
    async with asyncio.timeout(DEADLINE):
        assert await getter == "x"
    assert queue.statistics().waiting_getters == 0


async def test_get_nowait() -> None:
    """get_nowait returns the next item, or raises IndexError on an open empty queue."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    queue.put_nowait("a")
    assert queue.get_nowait() == "a"
    with pytest.raises(IndexError):
        queue.get_nowait()


async def test_each_put_wakes_one_of_several_getters() -> None:
    """With several getters waiting, each item goes to exactly one getter."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await until(lambda: queue.statistics().waiting_getters == 3)
    for i in range(3):
        await queue.put(i)
    async with asyncio.timeout(DEADLINE):
        results = await asyncio.gather(*getters)
    assert sorted(results) == [0, 1, 2]


async def test_cancelled_getter_passes_its_wake_up_on() -> None:
    """A getter cancelled after being woken hands the item's wake-up to the next getter."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    first = asyncio.create_task(queue.get())
    await until(lambda: queue.statistics().waiting_getters == 1)
    second = asyncio.create_task(queue.get())
    await until(lambda: queue.statistics().waiting_getters == 2)
    await queue.put("x")  # wakes `first`, which has not run yet
    first.cancel()
    async with asyncio.timeout(DEADLINE):
        assert await second == "x"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert queue.statistics().waiting_getters == 0


async def test_cancelled_waiting_getter_leaves_no_waiter_behind() -> None:
    """Cancelling a waiting get removes it from the waiting getters."""
    queue: InMemoryQueue[str] = InMemoryQueue()
    getter = asyncio.create_task(queue.get())
    await until(lambda: queue.statistics().waiting_getters == 1)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert queue.statistics().waiting_getters == 0
    await queue.put("x")
    assert queue.get_nowait() == "x"


# -- close --------------------------------------------------------------------------


async def test_closed_flag() -> None:
    """``closed`` (a property, as published) is False until close() is called, then True."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    assert queue.closed is False
    await queue.close()
    assert queue.closed is True
    assert queue.statistics().closed is True


async def test_get_on_closed_empty_queue_raises() -> None:
    """get() on a closed, empty queue raises QueueClosedError."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    await queue.close()
    with pytest.raises(QueueClosedError):
        await queue.get()
    with pytest.raises(QueueClosedError):
        queue.get_nowait()


async def test_items_left_after_close_are_still_gettable() -> None:
    """Items queued before close() can still be taken, then get() raises."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    for i in range(3):
        await queue.put(i)
    await queue.close()
    assert queue.size() == 3
    assert [await queue.get() for _ in range(2)] == [0, 1]
    assert queue.get_nowait() == 2
    with pytest.raises(QueueClosedError):
        await queue.get()


async def test_put_after_close_raises() -> None:
    """put() and put_nowait() on a closed queue raise QueueClosedError and add nothing."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    await queue.close()
    with pytest.raises(QueueClosedError):
        await queue.put(1)
    with pytest.raises(QueueClosedError):
        queue.put_nowait(1)
    assert queue.size() == 0


async def test_close_wakes_every_waiting_getter() -> None:
    """close() wakes all getters blocked in get() (even with num_waiters=1); they raise."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(4)]
    await until(lambda: queue.statistics().waiting_getters == 4)
    await queue.close(num_waiters=1)
    async with asyncio.timeout(DEADLINE):
        results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(result, QueueClosedError) for result in results)
    assert queue.statistics().waiting_getters == 0


async def test_close_is_idempotent() -> None:
    """Closing twice is harmless."""
    queue: InMemoryQueue[int] = InMemoryQueue()
    await queue.close()
    await queue.close()
    assert queue.closed


# -- bounded queue ------------------------------------------------------------------


async def test_put_nowait_raises_when_full() -> None:
    """put_nowait on a full bounded queue raises QueueFullError and adds nothing."""
    queue: InMemoryQueue[int] = InMemoryQueue(2)
    queue.put_nowait(1)
    queue.put_nowait(2)
    with pytest.raises(QueueFullError):
        queue.put_nowait(3)
    assert queue.size() == 2
    assert queue.statistics().maxsize == 2


async def test_put_without_timeout_raises_at_once_when_full() -> None:
    """With put_timeout=0 a put on a full queue raises QueueFullError without waiting."""
    queue: InMemoryQueue[int] = InMemoryQueue(1)
    await queue.put(1)
    with pytest.raises(QueueFullError):
        await queue.put(2)
    assert queue.statistics().waiting_putters == 0


async def test_put_waits_up_to_put_timeout_then_raises() -> None:
    """A put on a full queue waits about put_timeout, then raises QueueFullError."""
    put_timeout = 0.05
    queue: InMemoryQueue[int] = InMemoryQueue(1, put_timeout=put_timeout)
    await queue.put(1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(QueueFullError):
        async with asyncio.timeout(DEADLINE):
            await queue.put(2)
    elapsed = loop.time() - started
    assert elapsed >= put_timeout * 0.9
    assert elapsed < DEADLINE
    assert queue.size() == 1
    assert queue.statistics().waiting_putters == 0


async def test_put_succeeds_when_a_getter_frees_room() -> None:
    """A waiting put completes as soon as a get frees a slot."""
    queue: InMemoryQueue[str] = InMemoryQueue(1, put_timeout=60.0)
    await queue.put("first")
    putter = asyncio.create_task(queue.put("second"))
    await until(lambda: queue.statistics().waiting_putters == 1)
    assert not putter.done()
    assert await queue.get() == "first"
    async with asyncio.timeout(DEADLINE):
        await putter
    assert queue.get_nowait() == "second"
    assert queue.statistics().waiting_putters == 0


async def test_get_nowait_also_frees_room_for_a_waiting_put() -> None:
    """get_nowait wakes a waiting put too."""
    queue: InMemoryQueue[int] = InMemoryQueue(1, put_timeout=60.0)
    await queue.put(1)
    putter = asyncio.create_task(queue.put(2))
    await until(lambda: queue.statistics().waiting_putters == 1)
    assert queue.get_nowait() == 1
    async with asyncio.timeout(DEADLINE):
        await putter
    assert queue.get_nowait() == 2


async def test_waiting_putters_keep_fifo_order() -> None:
    """Several waiting puts are admitted one per freed slot, in order."""
    queue: InMemoryQueue[int] = InMemoryQueue(1, put_timeout=60.0)
    await queue.put(0)
    putters = []
    for i in (1, 2, 3):
        putters.append(asyncio.create_task(queue.put(i)))
        await until(lambda n=i: queue.statistics().waiting_putters == n)
    received = []
    async with asyncio.timeout(DEADLINE):
        for _ in range(4):
            received.append(await queue.get())
        await asyncio.gather(*putters)
    assert received == [0, 1, 2, 3]


async def test_close_wakes_waiting_putters_with_closed_error() -> None:
    """close() wakes puts waiting for room; they raise QueueClosedError."""
    queue: InMemoryQueue[int] = InMemoryQueue(1, put_timeout=60.0)
    await queue.put(1)
    putter = asyncio.create_task(queue.put(2))
    await until(lambda: queue.statistics().waiting_putters == 1)
    await queue.close()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(QueueClosedError):
            await putter
    assert queue.size() == 1


async def test_statistics_counts_waiters() -> None:
    """statistics() reports the waiting getters and putters."""
    full: InMemoryQueue[int] = InMemoryQueue(1, put_timeout=60.0)
    await full.put(0)
    putters = [asyncio.create_task(full.put(i)) for i in (1, 2)]
    empty: InMemoryQueue[int] = InMemoryQueue()
    getters = [asyncio.create_task(empty.get()) for _ in range(3)]
    await until(
        lambda: full.statistics().waiting_putters == 2 and empty.statistics().waiting_getters == 3
    )
    assert full.statistics() == QueueStatistics(
        size=1, maxsize=1, waiting_getters=0, waiting_putters=2, closed=False
    )
    assert empty.statistics() == QueueStatistics(
        size=0, maxsize=0, waiting_getters=3, waiting_putters=0, closed=False
    )
    await full.close()
    await empty.close()
    results: list[Any] = await asyncio.gather(*putters, *getters, return_exceptions=True)
    assert all(isinstance(result, QueueClosedError) for result in results)


# -- a long backlog is kept out of the garbage collector's scans --------------------


@pytest.fixture
def clean_freeze(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start and end with nothing frozen and no queue holding a freeze."""
    from prefactor_core.queue import _gc_backlog

    gc.unfreeze()
    monkeypatch.setattr(_gc_backlog, "_holders", set())
    monkeypatch.setattr(_gc_backlog, "_foreign", False)
    yield
    gc.unfreeze()


class Item:
    """A queued object the collector tracks (like an operation)."""

    __slots__ = ("__weakref__", "payload")

    def __init__(self) -> None:
        self.payload: dict[str, Any] = {"a": []}


async def test_a_growing_backlog_is_frozen_until_the_queue_closes(clean_freeze: None) -> None:
    queue: InMemoryQueue[Item] = InMemoryQueue(freeze_step=8)
    for _ in range(7):
        queue.put_nowait(Item())
    assert gc.get_freeze_count() == 0
    await queue.put(Item())  # the 8th
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert all(gc.is_tracked(item) for item in queue._items)
    for _ in range(8):
        queue.put_nowait(Item())  # 16: frozen again, with the new items
    assert gc.get_freeze_count() > frozen
    while queue.size():
        await queue.get()
    # Drained: still frozen (unfreezing now would make the next full collection walk
    # the whole heap at once), and the delivered items are gone from the freeze.
    assert 0 < gc.get_freeze_count() < frozen
    await queue.close()
    assert gc.get_freeze_count() == 0


async def test_a_drained_queue_freezes_its_next_backlog_from_the_step_again(
    clean_freeze: None,
) -> None:
    queue: InMemoryQueue[Item] = InMemoryQueue(freeze_step=8)
    for _ in range(16):
        queue.put_nowait(Item())
    while queue.size() > 2:
        queue.get_nowait()  # drained to a quarter of the step
    young = [Item() for _ in range(5)]
    for item in young:
        queue.put_nowait(item)  # 7 queued: under the step, not frozen yet
    assert not any(_frozen(item) for item in young)
    queue.put_nowait(Item())  # 8: the step, counted afresh after the drain
    assert all(_frozen(item) for item in young)
    await queue.close()
    assert not any(_frozen(item) for item in young)


def _frozen(obj: object) -> bool:
    """Whether ``obj`` is in the collector's permanent generation (``gc.freeze``)."""
    return gc.is_tracked(obj) and not any(obj is o for o in gc.get_objects())


async def test_frozen_items_are_still_freed_when_delivered(clean_freeze: None) -> None:
    queue: InMemoryQueue[Item] = InMemoryQueue(freeze_step=4)
    items = [Item() for _ in range(4)]
    freed: list[int] = []
    refs = [weakref.ref(item, lambda _r: freed.append(1)) for item in items]
    for item in items:
        queue.put_nowait(item)
    assert gc.get_freeze_count() > 0
    del items, item
    queue.get_nowait()
    assert len(freed) == 1  # reference counting, while still frozen
    assert gc.get_freeze_count() > 0
    assert sum(ref() is None for ref in refs) == 1


async def test_the_freeze_ends_only_when_every_queue_has_closed(clean_freeze: None) -> None:
    first: InMemoryQueue[Item] = InMemoryQueue(freeze_step=4)
    second: InMemoryQueue[Item] = InMemoryQueue(freeze_step=4)
    for _ in range(4):
        first.put_nowait(Item())
        second.put_nowait(Item())
    while first.size():
        first.get_nowait()
    await first.close()
    assert gc.get_freeze_count() > 0  # the second still holds its freeze
    while second.size():
        second.get_nowait()
    assert gc.get_freeze_count() > 0  # drained, but open
    await second.close()
    assert gc.get_freeze_count() == 0


async def test_a_process_that_freezes_on_its_own_is_left_alone(clean_freeze: None) -> None:
    keep = [Item() for _ in range(3)]
    gc.freeze()  # as a pre-fork server does
    # Which objects are frozen, not how many: an object frozen earlier may be freed by
    # reference counting at any moment (another test's thread), which lowers the count.
    assert _in_generations(keep) == 0
    queue: InMemoryQueue[Item] = InMemoryQueue(freeze_step=4)
    queued = [Item() for _ in range(8)]
    for item in queued:
        queue.put_nowait(item)
    assert _in_generations(queued) == len(queued)  # not frozen by the queue
    while queue.size():
        queue.get_nowait()
    await queue.close()
    assert _in_generations(keep) == 0  # and never unfrozen by it


def _in_generations(items: list[Item]) -> int:
    """How many of ``items`` are in the collector's generations (the rest are frozen)."""
    ids = {id(item) for item in items}
    return sum(1 for obj in gc.get_objects() if id(obj) in ids)


async def test_freezing_can_be_turned_off(clean_freeze: None) -> None:
    queue: InMemoryQueue[Item] = InMemoryQueue(freeze_step=0)
    for _ in range(100):
        queue.put_nowait(Item())
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError, match="freeze_step"):
        InMemoryQueue(freeze_step=-1)
