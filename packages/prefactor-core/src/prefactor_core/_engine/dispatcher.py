"""The dispatcher: takes queued operations and delivers them, in order, in batches.

Shape of the engine::

    caller ──put──► Queue ──reader──► lanes (one FIFO per agent instance) ──► senders ──► API

* **Order.** Every operation of an agent instance goes through that instance's lane,
  and a lane has at most one request in flight. So for one instance the server sees
  register, start, span creates and finishes in the order the caller made them, and a
  retried request is retried before anything behind it. Different instances proceed
  concurrently.
* **Batches.** When the server supports bulk, one request carries the head operations
  of many lanes (up to ``batch_size`` operations and the server's byte cap); otherwise
  each lane sends one operation per request, ``num_workers`` lanes at a time. A span
  create that was never attempted and whose finish sits in the same batch goes out as
  one create that already carries the terminal status, result and both timestamps.
* **Retries.** Transient failures (connection errors, timeouts, 429, 5xx) put the
  operations back at the head of their lanes and back off exponentially with jitter,
  honouring ``Retry-After`` (``retry.Backoff``; ``flush()`` and ``close()`` cut the wait
  short). Each operation keeps its idempotency key, so a retry of a request the server
  had already stored is answered from the server's idempotency table instead of storing
  a duplicate.
* **Refusals.** A refused operation (422, 413, 404, ...) is reported and repaired or
  dropped by ``rejection.Rejections``; the rest of the run goes on. Only a fatal answer
  (401, 403) is reported to the client, which latches it; from then on operations are
  dropped and counted. A batch the server finds too large is split.
* **Never raises.** Everything here runs in background tasks; errors are logged and
  counted, and reach the agent only through the client's failure latch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prefactor_core._engine.outcomes import (
    CONFLICT_IS_DONE,
    ITEM_STATUS,
    TRANSIENT_ITEM_CODES,
    DeliveryStatistics,
    ItemError,
    Sender,
    is_transient,
    merged,
    weight,
)
from prefactor_core._engine.rejection import Rejections, blamed_item, is_fatal
from prefactor_core._engine.retry import Backoff, Sleep
from prefactor_core._engine.wire import BULK_ACTIONS, render_bulk_item, render_single
from prefactor_core.config import QueueConfig
from prefactor_core.operations import Operation, OperationType
from prefactor_core.queue.base import Queue, QueueClosedError
from prefactor_http.exceptions import PrefactorApiError

__all__ = ["DeliveryStatistics", "Dispatcher", "ItemError", "Sender"]

logger = logging.getLogger("prefactor_core.delivery")


@dataclass(slots=True)
class _Batch:
    ops: list[tuple[str, Operation]]
    texts: list[str]
    lanes: set[str]
    barriers: set[str]
    creates: set[str]


_BARRIER_TYPES = frozenset(
    {
        OperationType.REGISTER_AGENT_INSTANCE,
        OperationType.START_AGENT_INSTANCE,
        OperationType.FINISH_AGENT_INSTANCE,
        OperationType.RECORD_QUALITY,
    }
)


class Dispatcher:
    """Moves operations from the queue to the API; see the module docstring."""

    def __init__(
        self,
        queue: Queue[Operation],
        sender: Sender,
        config: QueueConfig,
        *,
        on_permanent_failure: Callable[[Exception, Operation], None],
        on_delivered: Callable[[list[Operation]], Awaitable[None]] | None = None,
        on_control: Callable[[str, str | None], None] | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._queue = queue
        self._sender = sender
        self._config = config
        self._on_permanent_failure = on_permanent_failure
        self._on_delivered = on_delivered
        self._on_control = on_control

        self._lanes: dict[str, deque[Operation]] = {}
        self._busy: set[str] = set()  # single requests: lanes with one in flight
        # Bulk requests may overlap for one lane (pipelining), but a batch never carries
        # an operation that depends on one still in flight: a span finish whose create,
        # or a child whose parent's create, is in flight waits; so does anything behind
        # an instance-level operation (register, start, finish, quality) in flight.
        self._lane_flights: dict[str, int] = {}
        self._barriers: dict[str, int] = {}
        self._flying_creates: set[str] = set()
        self._attempted: set[int] = set()  # id() of operations sent at least once
        self._pending = 0

        # Set by configure(): None until the server's capabilities are known.
        self._bulk: bool | None = None
        self._bulk_max_items = config.batch_size
        self._bulk_max_bytes = 10 * 1024 * 1024

        self._failures_in_a_row = 0
        self._backoff = Backoff(config.retry_delay_base, config.max_retry_delay, sleep=sleep)
        self._pause: asyncio.Task[None] | None = None  # a backoff wait in progress
        self._latched = False
        self._rejections = Rejections()
        # Instances whose register was refused: they do not exist on the server.
        self._dead: set[str] = set()
        # Spans whose create was refused for good: their finish is dropped, not sent.
        self._lost: set[str] = set()
        self._acks: set[asyncio.Future[None]] = set()

        # The reader stops taking from the queue while this many operations wait in
        # lanes: without it an unreachable API would let lanes grow without bound,
        # bypassing the queue's bound. Enough for every worker to send a full batch.
        self._lane_cap = max(config.batch_size * (config.num_workers + 1), 1_000)
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._linger_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

        self._sent = 0
        self._retried = 0
        self._dropped = 0
        self._in_flight = 0
        self._requests = 0
        self._failed_requests = 0

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and scheduler tasks."""
        self._reader = asyncio.create_task(self._read(), name="prefactor-delivery-reader")
        self._scheduler = asyncio.create_task(self._schedule(), name="prefactor-delivery")

    def configure(
        self, *, bulk: bool, max_items: int | None = None, max_bytes: int | None = None
    ) -> None:
        """Set how to send (bulk or single requests), once the server is known."""
        self._bulk = bulk
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
        running = (self._reader, self._scheduler, self._pause, *self._tasks)
        for task in running:
            if task is not None and not task.done():
                task.cancel()
        tasks = [t for t in (*running, *self._acks) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        left = (
            sum(weight(op) for lane in self._lanes.values() for op in lane)
            + self._in_flight
            + self._queue.size()
        )
        self._pending = 0
        self._in_flight = 0
        self._lanes.clear()
        if count_as_dropped:
            self._dropped += left
        self._resolve_idle()
        return left

    # -- flushing -----------------------------------------------------------------

    def idle(self) -> bool:
        """True when nothing is queued, waiting or in flight."""
        return self._pending == 0 and self._in_flight == 0 and self._queue.size() == 0

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

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> DeliveryStatistics:
        """Return the engine's counters."""
        return DeliveryStatistics(
            queued=self._pending + self._queue.size(),
            in_flight=self._in_flight,
            sent=self._sent,
            retried=self._retried,
            dropped=self._dropped,
            requests=self._requests,
            failed_requests=self._failed_requests,
            rejected=self._rejections.count,
        )

    def count_dropped(self, n: int = 1) -> None:
        """Count operations dropped before they reached the engine."""
        self._dropped += n

    # -- failure latch ------------------------------------------------------------

    def drop_everything(self) -> int:
        """Drop every waiting operation (after a permanent failure); return how many."""
        self._latched = True
        dropped = sum(weight(op) for lane in self._lanes.values() for op in lane)
        self._lanes.clear()
        self._pending = 0
        self._dropped += dropped
        self._room.set()
        self._resolve_idle()
        return dropped

    # -- the reader: queue → lanes --------------------------------------------------

    async def _read(self) -> None:
        queue = self._queue
        while True:
            while self._pending >= self._lane_cap and not self._latched:
                self._room.clear()
                await self._room.wait()
            try:
                op = await queue.get()
            except QueueClosedError:
                self._poke()
                return
            self._accept(op)
            # Take whatever else is already there in one go, then wake the scheduler once.
            while queue.size() and self._pending < self._lane_cap:
                try:
                    self._accept(await queue.get())
                except QueueClosedError:
                    break
            self._poke()

    def _accept(self, op: Operation) -> None:
        lane_id: str = op.payload["instance_id"]
        if self._latched:
            self._dropped += 1
            return
        if lane_id in self._dead:
            self._give_up([op])
            return
        if (
            self._lost
            and op.type is OperationType.FINISH_SPAN
            and op.payload["span_id"] in self._lost
        ):
            self._lost.discard(op.payload["span_id"])
            self._give_up([op])
            return
        lane = self._lanes.get(lane_id)
        if lane is None:
            lane = self._lanes[lane_id] = deque()
        lane.append(op)
        self._pending += 1

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
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reader is not None and self._reader.done() and self.idle():
                self._resolve_idle()
                return
            self._resolve_idle()
            if self._pending < self._lane_cap:
                self._room.set()
            if self._bulk is None or not self._pending:
                self._linger_since = None
                continue
            now = loop.time()
            if self._pause is not None:
                continue  # backing off; the end of the wait pokes
            if self._bulk:
                self._dispatch_bulk(now)
            else:
                self._dispatch_single()
            if self._pending < self._lane_cap:
                self._room.set()

    def _dispatch_bulk(self, now: float) -> None:
        # Wait briefly for a fuller batch, unless one is full already, something is in
        # flight (its answer will wake us), or the queue is closing.
        closing = self._reader is not None and self._reader.done()
        if self._pending < self._bulk_max_items and not self._tasks and not closing:
            if self._linger_since is None:
                self._linger_since = now
            deadline = self._linger_since + self._config.batch_linger
            if now < deadline:
                self._poke_at(deadline)
                return
        self._linger_since = None
        while len(self._tasks) < self._config.num_workers:
            batch = self._take_bulk_batch()
            if batch is None:
                return
            self._spawn(self._send_bulk(batch))

    def _dispatch_single(self) -> None:
        for lane_id, lane in self._lanes.items():
            if len(self._tasks) >= self._config.num_workers:
                return
            if lane_id in self._busy or not lane:
                continue
            op = lane.popleft()
            self._pending -= 1
            self._in_flight += 1
            self._busy.add(lane_id)
            self._spawn(self._send_single(lane_id, op))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            logger.error("delivery task failed", exc_info=task.exception())
        self._poke()

    def _take_bulk_batch(self) -> _Batch | None:
        ops: list[tuple[str, Operation]] = []
        texts: list[str] = []
        lanes: set[str] = set()
        barriers: set[str] = set()
        creates: set[str] = set()
        # Characters, not bytes: keep a margin for non-ASCII text.
        budget = int(self._bulk_max_bytes * 0.9) - 16
        room = self._bulk_max_items
        for lane_id, lane in self._lanes.items():
            if room <= 0 or budget <= 0:
                break
            if not lane or lane_id in self._barriers:
                continue
            flying = self._lane_flights.get(lane_id, 0)
            # Take twice the room: a create and its finish usually merge into one item.
            taken: list[Operation] = []
            limit = 2 * room
            while lane and len(taken) < limit:
                if flying and not self._independent(lane[0]):
                    break
                taken.append(lane.popleft())
            if not taken:
                continue
            self._pending -= len(taken)
            merged = self._merge(taken)
            for index, op in enumerate(merged):
                text = render_bulk_item(op) if index < room else ""
                if index >= room or (ops and len(text) + 1 > budget):
                    rest = merged[index:]
                    lane.extendleft(reversed(rest))
                    self._pending += len(rest)
                    if index < room:
                        budget = 0
                    break
                ops.append((lane_id, op))
                texts.append(text)
                budget -= len(text) + 1
                lanes.add(lane_id)
                kind = op.type
                if kind is OperationType.CREATE_SPAN:
                    creates.add(op.payload["span_id"])
                elif kind in _BARRIER_TYPES:
                    barriers.add(lane_id)
            room = self._bulk_max_items - len(ops)
        if not ops:
            return None
        for lane_id in lanes:
            self._lane_flights[lane_id] = self._lane_flights.get(lane_id, 0) + 1
        for lane_id in barriers:
            self._barriers[lane_id] = self._barriers.get(lane_id, 0) + 1
        self._flying_creates.update(creates)
        self._in_flight += len(ops)
        return _Batch(ops, texts, lanes, barriers, creates)

    def _independent(self, op: Operation) -> bool:
        """True when ``op`` depends on nothing in flight (see ``_lane_flights``)."""
        kind = op.type
        if kind is OperationType.CREATE_SPAN:
            parent = op.payload.get("parent_span_id")
            return parent is None or parent not in self._flying_creates
        if kind is OperationType.FINISH_SPAN:
            return op.payload["span_id"] not in self._flying_creates
        return False

    def _land(self, batch: _Batch) -> None:
        """Clear the in-flight marks of an answered (or failed) batch."""
        for lane_id in batch.lanes:
            left = self._lane_flights.get(lane_id, 1) - 1
            if left:
                self._lane_flights[lane_id] = left
            else:
                self._lane_flights.pop(lane_id, None)
        for lane_id in batch.barriers:
            left = self._barriers.get(lane_id, 1) - 1
            if left:
                self._barriers[lane_id] = left
            else:
                self._barriers.pop(lane_id, None)
        self._flying_creates.difference_update(batch.creates)

    def _merge(self, ops: list[Operation]) -> list[Operation]:
        """Fold each span finish into its create when the create was never sent."""
        creates: dict[str, int] = {}
        out: list[Operation] = []
        for op in ops:
            if (
                op.type is OperationType.CREATE_SPAN
                and id(op) not in self._attempted
                and not op.metadata.get("no_merge")
                and not op.metadata.get("recovered")
            ):
                creates[op.payload["span_id"]] = len(out)
                out.append(op)
            elif op.type is OperationType.FINISH_SPAN and op.payload["span_id"] in creates:
                index = creates.pop(op.payload["span_id"])
                out[index] = merged(out[index], op)
            else:
                out.append(op)
        return out

    # -- sending --------------------------------------------------------------------

    async def _send_bulk(self, batch: _Batch) -> None:
        body = ('{"items":[' + ",".join(batch.texts) + "]}").encode()
        for _, op in batch.ops:
            self._attempted.add(id(op))
        self._requests += 1
        try:
            response = await self._sender.post("/api/v1/bulk", body)
        except Exception as error:
            self._failed_requests += 1
            self._settle_failed(batch.ops, error)
        else:
            await self._settle_bulk(batch.ops, response)
        finally:
            self._in_flight -= len(batch.ops)
            self._land(batch)
            self._resolve_idle()

    async def _settle_bulk(
        self, ops: list[tuple[str, Operation]], response: dict[str, Any]
    ) -> None:
        outputs = response.get("outputs")
        if not isinstance(outputs, dict):
            outputs = {}
        delivered: list[Operation] = []
        unprocessed: list[tuple[str, Operation]] = []
        transient: Exception | None = None
        refused: tuple[int, ItemError] | None = None
        for position, (lane_id, op) in enumerate(ops):
            output = outputs.get(op.idempotency_key)
            if not isinstance(output, dict):
                unprocessed.append((lane_id, op))
                continue
            if output.get("status") == "success":
                delivered.append(op)
                self._check_control(op, output)
                continue
            code = str(output.get("code") or "unknown")
            message = str(output.get("message") or "bulk item failed")
            if code == "conflict" and op.type in CONFLICT_IS_DONE:
                logger.debug("%s already applied (%s); counted as delivered", op.type.name, message)
                delivered.append(op)
                continue
            item_error = ItemError(
                message,
                code,
                ITEM_STATUS.get(code, 400),
                output.get("errors") or {},
                method="POST",
                path=f"/api/v1/bulk [{BULK_ACTIONS[op.type]}]",
            )
            if code in TRANSIENT_ITEM_CODES:
                transient = item_error
                unprocessed.extend(ops[position:])
                break
            refused = (position, item_error)
            break
        self._sent += sum(weight(op) for op in delivered)
        if delivered:
            self._succeeded()
            self._forget(delivered)
            if self._on_delivered is not None:
                await self._on_delivered(delivered)
        if refused is not None:
            position, error = refused
            if is_fatal(error):
                self._forget(o for _, o in ops)
                self._permanent(error, ops[position][1])
                self._dropped += sum(weight(o) for _, o in ops[position:])
                return
            # Processing stopped at the refused item: the ones after it are unprocessed.
            self._refuse(unprocessed, ops[position], ops[position + 1 :], error)
            return
        if unprocessed:
            self._requeue(unprocessed)
            if transient is not None:
                self._retried += len(unprocessed)
                self._back_off(transient)

    async def _send_single(self, lane_id: str, op: Operation) -> None:
        path, body = render_single(op)
        self._attempted.add(id(op))
        self._requests += 1
        try:
            response = await self._sender.post(path, body.encode())
        except PrefactorApiError as error:
            if error.status_code == 409 and op.type in CONFLICT_IS_DONE:
                await self._delivered_one(op, {})
            elif not is_fatal(error) and not is_transient(error):
                self._failed_requests += 1
                self._refuse([], (lane_id, op), [], error)
            else:
                self._failed_requests += 1
                self._settle_failed([(lane_id, op)], error)
        except Exception as error:
            self._failed_requests += 1
            self._settle_failed([(lane_id, op)], error)
        else:
            await self._delivered_one(op, response)
        finally:
            self._in_flight -= 1
            self._busy.discard(lane_id)
            self._resolve_idle()

    async def _delivered_one(self, op: Operation, response: dict[str, Any]) -> None:
        self._sent += weight(op)
        self._succeeded()
        self._check_control(op, response)
        self._forget([op])
        if self._on_delivered is not None:
            await self._on_delivered([op])

    def _settle_failed(self, ops: list[tuple[str, Operation]], error: Exception) -> None:
        if is_transient(error):
            self._retried += len(ops)
            self._requeue(ops)
            self._back_off(error)
            return
        if is_fatal(error):
            self._forget(op for _, op in ops)
            self._permanent(error, ops[0][1])
            self._dropped += sum(weight(op) for _, op in ops)
            return
        if isinstance(error, PrefactorApiError):
            # The server refused the whole request: find the item at fault, or split.
            index = blamed_item(error) if len(ops) > 1 else 0
            if index is not None and index < len(ops):
                self._refuse(ops[:index], ops[index], ops[index + 1 :], error)
                return
            self._bulk_max_items = max(1, len(ops) // 2)
            logger.info(
                "the API refused a batch of %d (%s %s); batches now hold %d",
                len(ops),
                error.status_code,
                error.code,
                self._bulk_max_items,
            )
            self._requeue(ops)
            return
        # Not an HTTP error at all (a bug, a broken response): retry a few times.
        self._failures_in_a_row += 1
        if self._failures_in_a_row > self._config.max_retries:
            logger.error("dropping %d operation(s) after %r", len(ops), error)
            self._dropped += sum(weight(op) for _, op in ops)
            self._forget(op for _, op in ops)
            return
        self._retried += len(ops)
        self._requeue(ops)
        self._back_off(error)

    def _refuse(
        self,
        before: list[tuple[str, Operation]],
        refused: tuple[str, Operation],
        after: list[tuple[str, Operation]],
        error: PrefactorApiError,
    ) -> None:
        """Handle one refused operation: repair or drop it, and requeue the others in order."""
        lane_id, op = refused
        self._forget([op])
        repaired = self._rejections.repair(op, error)
        if repaired is None:
            self._give_up([op])
            if op.type is OperationType.REGISTER_AGENT_INSTANCE:
                self._kill_lane(lane_id)
            elif op.type is OperationType.CREATE_SPAN and "merged_finish" not in op.metadata:
                self._lose_span(op.payload["span_id"], lane_id, after)
        rest = [*before, *([(lane_id, repaired)] if repaired is not None else []), *after]
        self._requeue(rest)

    def _lose_span(self, span_id: str, lane_id: str, after: list[tuple[str, Operation]]) -> None:
        """Drop the finish of a span the server will never have (now or when it comes)."""
        for index, (_, later) in enumerate(after):
            if later.type is OperationType.FINISH_SPAN and later.payload["span_id"] == span_id:
                del after[index]
                self._give_up([later])
                return
        lane = self._lanes.get(lane_id) or ()
        for later in lane:
            if later.type is OperationType.FINISH_SPAN and later.payload["span_id"] == span_id:
                lane.remove(later)  # type: ignore[union-attr]
                self._pending -= 1
                self._give_up([later])
                return
        self._lost.add(span_id)

    def _kill_lane(self, lane_id: str) -> None:
        """Drop what waits for an instance the server will never know."""
        self._dead.add(lane_id)
        lane = self._lanes.pop(lane_id, None)
        if lane:
            self._pending -= len(lane)
            self._forget(lane)
            self._give_up(list(lane))

    def _give_up(self, ops: list[Operation]) -> None:
        """Count refused operations as dropped; a spool forgets them (they would only be
        refused again by the next process)."""
        self._dropped += sum(weight(op) for op in ops)
        if self._on_delivered is not None and ops:
            ack = asyncio.ensure_future(self._on_delivered(ops))
            self._acks.add(ack)
            ack.add_done_callback(self._acks.discard)

    def _succeeded(self) -> None:
        self._failures_in_a_row = 0
        self._backoff.reset()

    def _permanent(self, error: Exception, op: Operation) -> None:
        logger.error("telemetry failed permanently on %s: %s", op.type.name, error)
        self._on_permanent_failure(error, op)

    def _requeue(self, ops: Iterable[tuple[str, Operation]]) -> None:
        """Put operations back at the head of their lanes, in their original order."""
        by_lane: dict[str, list[Operation]] = {}
        for lane_id, op in ops:
            by_lane.setdefault(lane_id, []).append(op)
        for lane_id, lane_ops in by_lane.items():
            if self._latched:
                self._dropped += sum(weight(op) for op in lane_ops)
                continue
            if lane_id in self._dead:
                self._give_up(lane_ops)
                continue
            lane = self._lanes.get(lane_id)
            if lane is None:
                lane = self._lanes[lane_id] = deque()
            lane.extendleft(reversed(lane_ops))
            self._pending += len(lane_ops)

    def _forget(self, ops: Iterable[Operation]) -> None:
        for op in ops:
            self._attempted.discard(id(op))
        # Drop empty lanes so memory does not grow with the number of instances.
        for lane_id in [
            k
            for k, lane in self._lanes.items()
            if not lane and k not in self._busy and k not in self._lane_flights
        ]:
            del self._lanes[lane_id]

    def _back_off(self, error: Exception) -> None:
        self._failures_in_a_row += 1
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

    def _check_control(self, op: Operation, response: dict[str, Any]) -> None:
        control = response.get("control")
        if self._on_control is not None and isinstance(control, dict) and control.get("terminate"):
            reason = control.get("reason")
            self._on_control(op.payload["instance_id"], reason if isinstance(reason, str) else None)
