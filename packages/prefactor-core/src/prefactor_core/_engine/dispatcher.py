"""The dispatcher: takes queued operations and delivers them, in order, in batches.

Shape of the engine::

    caller ──put──► Queue ──reader──► lanes (one FIFO per agent instance) ──► senders ──► API

* **Order.** Every operation of an agent instance goes through that instance's lane
  (``lanes.Lanes``). A lane has at most one single request in flight; bulk requests may
  overlap for one lane, but never carry an operation that depends on one in flight
  (``batching``). So for one instance the server sees register, start, span creates and
  finishes in the order the caller made them, and a retried request is retried before
  anything behind it. Different instances proceed concurrently.
* **Batches.** Operations of the actions the server lists in its capabilities go in bulk:
  one request carries the head operations of many lanes (up to ``batch_size``
  operations and the server's byte cap, lingering ``batch_linger`` for a fuller batch).
  The others (all of them against a server without bulk) go one per request, in lane
  order. ``num_workers`` requests are in flight at most. A span create that was never
  attempted and whose finish sits in the same batch goes out as one create that already
  carries the terminal status, result and both timestamps (the client's own queue
  hands most creates over so already; such a create counts as two operations, and a
  single request gets its create and then its finish).
* **Retries.** Transient failures (connection errors, timeouts, 429, 5xx) put the
  operations back at the head of their lanes and back off exponentially with jitter,
  honouring ``Retry-After`` (``retry.Backoff``; ``flush()`` and ``close()`` cut the wait
  short). Each operation keeps its idempotency key, so a retry of a request the server
  had already stored is answered from the server's idempotency table instead of storing
  a duplicate.
* **Answers** are settled by ``settlement.Settlement`` and counted by ``ledger.Ledger``;
  nothing here raises into the agent (only the client's failure latch reaches it).

This module is the scheduling: the reader task (queue → lanes, paused at a cap so that
memory stays bounded while the API is down), the scheduler task (lanes → requests), the
request tasks (``Settlement.send_bulk``/``send_single``), the backoff pause, and the
lifecycle (drain, stop, flush waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from prefactor_core._engine.batching import ALL_BULK, BatchPlan, bulk_types
from prefactor_core._engine.lanes import Lanes
from prefactor_core._engine.ledger import Ledger, OnDelivered
from prefactor_core._engine.optable import MERGED_FINISH
from prefactor_core._engine.outcomes import (
    DeliveryStatistics,
    ItemError,
    Sender,
    split,
    weight,
)
from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.reader import Reader
from prefactor_core._engine.retry import Backoff, Sleep
from prefactor_core._engine.settlement import Settlement
from prefactor_core._engine.taps import Taps
from prefactor_core._engine.wire import BULK_ACTIONS
from prefactor_core.config import QueueConfig
from prefactor_core.operations import Operation, OperationType
from prefactor_core.queue.base import Queue

__all__ = ["DeliveryStatistics", "Dispatcher", "ItemError", "Sender"]

logger = logging.getLogger("prefactor_core.delivery")


class Dispatcher:
    """Moves operations from the queue to the API; see the module docstring."""

    def __init__(
        self,
        queue: Queue[Operation],
        sender: Sender,
        config: QueueConfig,
        *,
        on_permanent_failure: Callable[[Exception, Operation], None],
        on_delivered: OnDelivered | None = None,
        on_control: Callable[[str, str | None], None] | None = None,
        sleep: Sleep | None = None,
        taps: Taps | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._queue = queue
        self._config = config
        self._ledger = ledger = Ledger(on_delivered)
        self._pacer = pacer = Pacer() if pacer is None else pacer
        self._lanes = lanes = Lanes(ledger)
        self._backoff = backoff = Backoff(
            config.retry_delay_base, config.max_retry_delay, sleep=sleep
        )
        self._settlement = Settlement(
            sender,
            lanes,
            ledger,
            max_retries=config.max_retries,
            back_off=self._back_off,
            on_success=backoff.reset,
            on_too_large=self._shrink,
            on_permanent_failure=on_permanent_failure,
            on_control=on_control,
            pacer=pacer,
        )

        # Set by configure(): nothing is sent until the server's capabilities are known.
        self._configured = False
        self._bulk_types: frozenset[OperationType] = frozenset()  # sent in bulk
        self._bulk_only: frozenset[OperationType] | None = None  # None: every type is bulk
        self._bulk_max_items = config.batch_size
        self._bulk_max_bytes = 10 * 1024 * 1024
        self._pause: asyncio.Task[None] | None = None  # a backoff wait in progress

        # The reader stops taking from the queue while this many operations wait in
        # lanes: without it an unreachable API would let lanes grow without bound,
        # bypassing the queue's bound. Two batches of operations (a full batch of merged
        # creates): what waits beyond stays in the queue as the caller left it, which
        # keeps fewer of the engine's operations alive for the garbage collector's young
        # collections to scan (with one per worker besides, its middle collections took
        # 2-4 ms of the agent's loop each).
        self._lane_cap = cap = max(config.batch_size * 2, 1_000)
        self._reading = Reader(queue, lanes, cap, self._poke, pacer, taps)
        self._room = self._reading.room
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._linger_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and scheduler tasks."""
        self._reader = asyncio.create_task(self._reading.run(), name="prefactor-delivery-reader")
        self._scheduler = asyncio.create_task(self._schedule(), name="prefactor-delivery")

    def configure(
        self,
        *,
        bulk: bool | Iterable[str],
        max_items: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """Set how to send, once the server is known.

        Args:
            bulk: The bulk actions the server lists (``capabilities.bulk_actions``):
                operations of those actions go in bulk requests, the others one per
                request, in order. True means every action, False none.
            max_items: The server's cap on items per bulk request.
            max_bytes: The server's cap on a bulk request's body.
        """
        types = bulk_types(bulk)
        if types and types != ALL_BULK:
            logger.info(
                "the API takes only some actions in bulk; %s go in single requests",
                ", ".join(sorted(BULK_ACTIONS[t] for t in ALL_BULK - types)),
            )
        self._bulk_types = types
        self._bulk_only = None if types == ALL_BULK else types
        self._configured = True
        if max_items:
            self._bulk_max_items = max(1, min(self._config.batch_size, max_items))
        if max_bytes:
            self._bulk_max_bytes = max_bytes
        self._poke()

    async def drain(self, timeout: float, *, count_as_dropped: bool = True) -> int:
        """Deliver what is left within ``timeout`` seconds, then stop.

        Call after the queue was closed. Returns how many operations could not be
        delivered; they are counted as dropped unless ``count_as_dropped`` is False
        (a spool keeps them for the next process).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                if self._reader is not None:
                    await asyncio.shield(self._reader)
                await self.wait_idle()
        return await self.stop(count_as_dropped=count_as_dropped)

    def begin_urgent(self) -> None:
        """A flush or close is waiting: retry now, then at short intervals."""
        self._backoff.begin_urgent()

    def end_urgent(self) -> None:
        """A flush stopped waiting: back to the normal backoff."""
        self._backoff.end_urgent()

    async def stop(self, *, count_as_dropped: bool = True) -> int:
        """Stop at once; return how many operations were not delivered."""
        ledger = self._ledger
        # Requests still unanswered are given up too (their tasks forget them when cancelled).
        in_flight = ledger.in_flight
        running = (self._reader, self._scheduler, self._pause, *self._tasks)
        for task in running:
            if task is not None and not task.done():
                task.cancel()
        tasks = [t for t in (*running, *ledger.pending_acks()) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        left = self._lanes.clear() + in_flight + self._queue.size()
        ledger.in_flight = 0
        if count_as_dropped:
            ledger.dropped += left
        self._resolve_idle()
        return left

    # -- flushing -----------------------------------------------------------------

    def idle(self) -> bool:
        """True when nothing is queued, waiting or in flight."""
        return self._lanes.pending == 0 and self._ledger.in_flight == 0 and self._queue.size() == 0

    async def wait_idle(self) -> None:
        """Wait until everything accepted so far has been delivered or dropped."""
        while not self.idle():
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            self._poke()
            await waiter

    def _resolve_idle(self) -> None:
        if self._idle_waiters and (self.idle() or self._stopped()):
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _stopped(self) -> bool:
        return self._scheduler is not None and self._scheduler.done()

    # -- statistics and the failure latch --------------------------------------------

    def statistics(self) -> DeliveryStatistics:
        """Return the engine's counters."""
        return self._ledger.statistics(
            queued=self._lanes.pending + self._queue.size(),
            rejected=self._settlement.rejections.count,
        )

    def count_dropped(self, n: int = 1) -> None:
        """Count operations dropped before they reached the engine."""
        self._ledger.dropped += n

    def drop_everything(self) -> int:
        """Drop every waiting operation (after a permanent failure); return how many."""
        self._lanes.latched = True
        dropped = self._lanes.clear()
        self._ledger.dropped += dropped
        self._room.set()
        self._resolve_idle()
        return dropped

    # -- the scheduler: lanes → requests ------------------------------------------

    def _poke(self) -> None:
        self._wake.set()

    def _poke_at(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._poke)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        lanes = self._lanes
        while True:
            if not self._wake.is_set():
                self._pacer.rest()
            await self._wake.wait()
            self._wake.clear()
            if self._reader is not None and self._reader.done() and self.idle():
                self._resolve_idle()
                return
            self._resolve_idle()
            if lanes.pending < self._lane_cap:
                self._room.set()
            if not self._configured or not lanes.pending:
                self._linger_since = None
                continue
            if self._pause is not None:
                continue  # backing off; the end of the wait pokes
            more = False
            if not self._bulk_types:
                self._dispatch_single()
            else:
                if self._bulk_only is not None:
                    self._dispatch_single()
                more = await self._dispatch_bulk(loop.time())
            if lanes.pending < self._lane_cap:
                self._room.set()
            if more:
                # The next batch, after the agent's loop ran if this turn is used.
                self._poke()
                if self._pacer.due():
                    await self._pacer.turn()

    async def _dispatch_bulk(self, now: float) -> bool:
        """Send the next bulk batch; True when one went and a worker is still free.

        Wait briefly for a fuller batch, unless one is full already, something is in
        flight (its answer will wake us), or the queue is closing.
        """
        lanes = self._lanes
        closing = self._reader is not None and self._reader.done()
        if lanes.pending < self._bulk_max_items and not self._tasks and not closing:
            if self._linger_since is None:
                self._linger_since = now
            deadline = self._linger_since + self._config.batch_linger
            if now < deadline:
                self._poke_at(deadline)
                return False
        self._linger_since = None
        if len(self._tasks) >= self._config.num_workers:
            return False
        # Planned in steps, the agent's loop running between turns (see ``BatchPlan``),
        # beginning in a turn of its own when the scheduler was woken in another's.
        pacer = self._pacer
        if pacer.due():
            await pacer.turn()
        max_items = self._bulk_max_items
        plan = BatchPlan(
            lanes.lanes,
            lanes.flights,
            lanes.attempted,
            max_items=max_items,
            max_bytes=self._bulk_max_bytes,
            skip=lanes.busy,
            bulk_types=self._bulk_only,
        )
        for _ in plan.steps():
            if pacer.due():
                await pacer.turn()
        if self._pause is not None or self._bulk_max_items != max_items:
            # A failure meanwhile: back off, or plan smaller batches (nothing was taken).
            self._poke()
            return False
        batch = plan.commit()
        if batch is None:
            return False
        lanes.pending -= batch.weight
        lanes.flights.take_off(batch)
        self._ledger.in_flight += batch.weight
        self._spawn(self._settlement.send_bulk(batch))
        return len(self._tasks) < self._config.num_workers

    def _dispatch_single(self) -> None:
        """One request per lane whose head is not sent in bulk (every lane without bulk);
        a lane with a bulk request in flight waits for its answer, to keep order."""
        lanes = self._lanes
        bulk_types = self._bulk_types
        flying = lanes.flights.lanes
        for lane_id, lane in lanes.lanes.items():
            if len(self._tasks) >= self._config.num_workers:
                return
            if lane_id in lanes.busy or not lane:
                continue
            if bulk_types and (lane[0].type in bulk_types or lane_id in flying):
                continue
            op = lane.popleft()
            if MERGED_FINISH in op.metadata and id(op) not in lanes.attempted:
                # One request takes one operation: the create now, its finish next.
                op, finish = split(op)
                lane.appendleft(finish)
            lanes.pending -= weight(op)
            self._ledger.in_flight += weight(op)
            lanes.busy.add(lane_id)
            self._spawn(self._settlement.send_single(lane_id, op))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._resolve_idle()
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            logger.error("delivery task failed", exc_info=task.exception())
        self._poke()

    def _shrink(self, max_items: int) -> None:
        """The API refused a batch as too large: send smaller ones from now on."""
        self._bulk_max_items = max_items

    # -- backing off ----------------------------------------------------------------

    def _back_off(self, error: Exception) -> None:
        delay = self._backoff.delay_after(error)
        if self._pause is not None:
            self._pause.cancel()  # the newest failure decides when to try again
        self._pause = asyncio.ensure_future(self._wait(delay))
        logger.warning("delivery failed (%s); retrying in %.2fs", error, delay)

    async def _wait(self, delay: float) -> None:
        try:
            await self._backoff.wait(delay)
        finally:
            if self._pause is asyncio.current_task():
                self._pause = None
                self._poke()
