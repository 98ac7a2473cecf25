"""One request's life: sending it, then settling the API's answer (what was delivered,
what was refused, what goes again).

* **Two forms of answer.** A bulk answer lists every item's output, or, from our server
  asked for it (``Prefer: omit=success``), only the outputs that are no plain success,
  marked ``"omitted": "success"`` with ``"processed"``, how many items ran: an item
  before that count without an output succeeded, and one after it did not run. An
  answer that lists nothing and ran everything settles the whole batch at once.
* **Delivered.** Counted, forgotten, acknowledged to a spool; a ``control`` object asking
  to terminate the instance is passed on. A 409 on an operation for which it means
  "already done" (``CONFLICT_IS_DONE``) counts as delivered.
* **Not processed.** Bulk items without an output, and the items from a transient item
  error on, go back to the head of their lanes in order; a transient item error (or a
  transient failure of the whole request: connection errors, timeouts, 429, 5xx) backs
  off before the next attempt.
* **Refused.** The API stops processing a bulk request at a refused item: the item is
  repaired or dropped (``rejection.Rejections``) and the items after it go back to their
  lanes. A refused register kills its lane; a create refused for good drops its
  span's finish. A whole request refused without naming an item is split in halves.
* **Fatal.** 401/403 drop the operations and are reported to the client (which latches).
* **Broken.** A failure that is no HTTP error at all (a bug, a broken response, a bulk
  answer that ran none of the items and blames none) is retried ``max_retries`` times in
  a row, then its operations are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from prefactor_core._engine.batching import STEP_ITEMS, Batch, at_once, bulk_body
from prefactor_core._engine.lanes import Lanes
from prefactor_core._engine.ledger import Ledger
from prefactor_core._engine.optable import INSTANCE_ID, MERGED_FINISH, SPAN_ID
from prefactor_core._engine.outcomes import (
    CONFLICT_IS_DONE,
    ITEM_STATUS,
    TRANSIENT_ITEM_CODES,
    ItemError,
    Sender,
    is_transient,
    weight,
)
from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.rejection import Rejections, blamed_item, is_fatal
from prefactor_core._engine.wire import BULK_ACTIONS, render_single
from prefactor_core.operations import Operation, OperationType
from prefactor_http.exceptions import PrefactorApiError

__all__ = ["BulkAnswer", "Settlement", "read_bulk_answer"]

logger = logging.getLogger("prefactor_core.delivery")

Routed = tuple[str, Operation]
"""An operation with the id of its lane."""


@dataclass(slots=True)
class BulkAnswer:
    """A bulk response read item by item.

    Attributes:
        delivered: Items the API stored (or had already applied).
        unprocessed: Items to send again, in order.
        transient: The passing item error that stopped processing, if one did.
        refused: The position and error of the item the API refused, if one was.
        controls: Delivered items whose output carries a ``control`` object.
    """

    delivered: list[Operation] = field(default_factory=list)
    unprocessed: list[Routed] = field(default_factory=list)
    transient: ItemError | None = None
    refused: tuple[int, ItemError] | None = None
    controls: list[tuple[Operation, dict[str, Any]]] = field(default_factory=list)


def read_bulk_answer(
    ops: list[Operation], lane_ids: list[str], response: dict[str, Any]
) -> BulkAnswer:
    """Read the outputs of a bulk response for the items ``ops``, taken from the lanes
    ``lane_ids`` (one each; see the module)."""
    return at_once(_read(ops, lane_ids, response))


_RAN_NOTHING = "the bulk answer ran none of the items and blamed none"

_SUCCESS: dict[str, Any] = {"status": "success"}
"""The output of an item an answer that omits the plain successes does not list."""
_UNLISTED: Any = object()


def _processed(response: dict[str, Any]) -> int | None:
    """How many items ran, when ``response`` omits the plain successes; else None."""
    processed = response.get("processed")
    if response.get("omitted") == "success" and type(processed) is int:
        return processed
    return None


def _read(
    ops: list[Operation], lane_ids: list[str], response: dict[str, Any]
) -> Generator[None, None, BulkAnswer]:
    """``read_bulk_answer``, yielding every ``STEP_ITEMS`` items."""
    outputs = response.get("outputs")
    # The count is only read with its outputs (an answer without them is no form we know).
    processed = _processed(response) if isinstance(outputs, dict) else None
    if not isinstance(outputs, dict):
        outputs = {}
    answer = BulkAnswer()
    if processed is not None and not outputs and processed >= len(ops):
        answer.delivered = ops.copy()  # every item ran and none needs a word
        return answer
    for position, op in enumerate(ops):
        if position and not position % STEP_ITEMS:
            yield
        output = outputs.get(op.idempotency_key, _UNLISTED)
        if output is _UNLISTED:  # a listed output that is no object did not run (below)
            output = _SUCCESS if processed is not None and position < processed else None
        if not isinstance(output, dict):
            answer.unprocessed.append((lane_ids[position], op))
            continue
        if output.get("status") == "success":
            answer.delivered.append(op)
            if "control" in output:
                answer.controls.append((op, output))
            continue
        code = str(output.get("code") or "unknown")
        message = str(output.get("message") or "bulk item failed")
        if code == "conflict" and op.type in CONFLICT_IS_DONE:
            logger.debug("%s already applied (%s); counted as delivered", op.type.name, message)
            answer.delivered.append(op)
            continue
        error = ItemError(
            message,
            code,
            ITEM_STATUS.get(code, 400),
            output.get("errors") or {},
            method="POST",
            path=f"/api/v1/bulk [{BULK_ACTIONS[op.type]}]",
        )
        if code in TRANSIENT_ITEM_CODES:
            answer.transient = error
            answer.unprocessed.extend(zip(lane_ids[position:], ops[position:], strict=True))
        else:
            answer.refused = (position, error)
        break
    return answer


class Settlement:
    """Applies answers and failures to the lanes and the ledger (see the module).

    Args:
        sender: What sends the requests.
        lanes: Where operations to send again go back to.
        ledger: The counters and the spool's acknowledgements.
        max_retries: How often a broken (non-HTTP) failure is retried in a row.
        back_off: Starts a backoff wait after a transient failure.
        on_success: Called after any delivery (resets the backoff).
        on_too_large: Called with the new batch size when a batch must be split.
        on_permanent_failure: Reports a fatal answer to the client.
        on_control: Reports a ``control.terminate`` of an instance to the client.
        pacer: The engine's turns on the agent's loop (``pacing.Pacer``).
    """

    def __init__(
        self,
        sender: Sender,
        lanes: Lanes,
        ledger: Ledger,
        *,
        max_retries: int,
        back_off: Callable[[Exception], None],
        on_success: Callable[[], None],
        on_too_large: Callable[[int], None],
        on_permanent_failure: Callable[[Exception, Operation], None],
        on_control: Callable[[str, str | None], None] | None,
        pacer: Pacer,
    ) -> None:
        self._sender = sender
        self._lanes = lanes
        self._ledger = ledger
        self._max_retries = max_retries
        self._back_off = back_off
        self._on_success = on_success
        self._on_too_large = on_too_large
        self._on_permanent_failure = on_permanent_failure
        self._on_control = on_control
        self._pacer = pacer
        self._broken_in_a_row = 0
        self.rejections = Rejections()

    async def send_bulk(self, batch: Batch) -> None:
        """Send a bulk request (taken off by the dispatcher) and settle its answer."""
        ledger = self._ledger
        lanes = self._lanes
        pacer = self._pacer
        ops = batch.ops
        try:
            # Building the body and sending it take a turn each. Every request goes
            # through the same turns, so requests leave in the order the dispatcher
            # took their batches.
            await pacer.turn()
            body = bulk_body(batch.texts)
            ledger.requests += 1
            await pacer.turn()
            response = await pacer.metered(self._sender.post("/api/v1/bulk", body))
        except Exception as error:
            ledger.failed_requests += 1
            self.failed(batch.routed(), error)
        else:
            # The HTTP layer read the answer in this step of the loop; settle it in the
            # next turns (the agent's loop runs in between).
            await pacer.turn()
            await self.bulk(batch, response)
        finally:
            ledger.in_flight -= batch.weight
            lanes.flights.land(batch)
        await self._let_go(ops)

    async def send_single(self, lane_id: str, op: Operation) -> None:
        """Send one operation in its own request and settle the answer."""
        ledger = self._ledger
        path, body = render_single(op)
        ledger.requests += 1
        try:
            response = await self._pacer.metered(self._sender.post(path, body))
        except PrefactorApiError as error:
            await self.single_error(lane_id, op, error)
        except Exception as error:
            ledger.failed_requests += 1
            self.failed([(lane_id, op)], error)
        else:
            await self.single(op, response)
        finally:
            ledger.in_flight -= weight(op)
            self._lanes.busy.discard(lane_id)

    async def bulk(self, batch: Batch, response: dict[str, Any]) -> None:
        """Settle the answer to the bulk request that carried ``batch``.

        The answer is read ``STEP_ITEMS`` items at a time, the agent's loop running in
        between once a turn is used; what it decides (counting, requeueing, refusing)
        happens at once after.
        """
        pacer = self._pacer
        ops, lane_ids = batch.ops, batch.lane_ids
        steps = _read(ops, lane_ids, response)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                answer: BulkAnswer = done.value
                break
            if pacer.due():
                await pacer.turn()
        if pacer.due():
            await pacer.turn()
        if len(answer.unprocessed) == len(ops) and answer.transient is None:
            # Nothing ran and no item is blamed (no outputs, "processed": 0): a broken
            # answer, retried after a backoff like one, not sent again at once.
            self._ledger.failed_requests += 1
            self.failed(answer.unprocessed, ValueError(_RAN_NOTHING))
            return
        delivered = answer.delivered
        for op, output in answer.controls:
            self.control(op, output)
        if delivered:
            # All of them (the usual answer): the batch knows what they weigh.
            await self._delivered(delivered, batch.weight if len(delivered) == len(ops) else None)
        if answer.refused is not None:
            position, error = answer.refused
            if is_fatal(error):
                self._lanes.forget(ops)
                self._permanent(error, ops[position])
                self._ledger.dropped += sum(weight(o) for o in ops[position:])
                return
            # Processing stopped at the refused item: the ones after it are unprocessed.
            after = list(zip(lane_ids[position + 1 :], ops[position + 1 :], strict=True))
            self.refuse(answer.unprocessed, (lane_ids[position], ops[position]), after, error)
            return
        if answer.unprocessed:
            self._lanes.requeue(answer.unprocessed)
            if answer.transient is not None:
                self._ledger.retried += len(answer.unprocessed)
                self._back_off(answer.transient)

    async def single(self, op: Operation, response: dict[str, Any]) -> None:
        """Settle the success of a single request."""
        self.control(op, response)
        await self._delivered([op])

    async def single_error(self, lane_id: str, op: Operation, error: PrefactorApiError) -> None:
        """Settle a single request the API answered with an error."""
        if error.status_code == 409 and op.type in CONFLICT_IS_DONE:
            await self.single(op, {})
            return
        self._ledger.failed_requests += 1
        if not is_fatal(error) and not is_transient(error):
            self.refuse([], (lane_id, op), [], error)
        else:
            self.failed([(lane_id, op)], error)

    def failed(self, ops: list[Routed], error: Exception) -> None:
        """Settle a request that failed as a whole (see the module)."""
        ledger = self._ledger
        if is_transient(error):
            ledger.retried += len(ops)
            self._lanes.requeue(ops)
            self._back_off(error)
            return
        if is_fatal(error):
            self._lanes.forget(op for _, op in ops)
            self._permanent(error, ops[0][1])
            ledger.dropped += sum(weight(op) for _, op in ops)
            return
        if isinstance(error, PrefactorApiError):
            # The server refused the whole request: find the item at fault, or split.
            index = blamed_item(error) if len(ops) > 1 else 0
            if index is not None and index < len(ops):
                self.refuse(ops[:index], ops[index], ops[index + 1 :], error)
                return
            size = max(1, len(ops) // 2)
            self._on_too_large(size)
            logger.info(
                "the API refused a batch of %d (%s %s); batches now hold %d",
                len(ops),
                error.status_code,
                error.code,
                size,
            )
            self._lanes.requeue(ops)
            return
        # Not an HTTP error at all (a bug, a broken response): retry a few times.
        self._broken_in_a_row += 1
        if self._broken_in_a_row > self._max_retries:
            logger.error("dropping %d operation(s) after %r", len(ops), error)
            ledger.dropped += sum(weight(op) for _, op in ops)
            self._lanes.forget(op for _, op in ops)
            return
        ledger.retried += len(ops)
        self._lanes.requeue(ops)
        self._back_off(error)

    def refuse(
        self, before: list[Routed], refused: Routed, after: list[Routed], error: PrefactorApiError
    ) -> None:
        """Handle one refused operation: repair or drop it, and requeue the others in order."""
        lane_id, op = refused
        lanes = self._lanes
        lanes.forget([op])
        repaired = self.rejections.repair(op, error)
        if repaired is None:
            self._ledger.give_up([op])
            if op.type is OperationType.REGISTER_AGENT_INSTANCE:
                lanes.kill(lane_id)
            elif op.type is OperationType.CREATE_SPAN and MERGED_FINISH not in op.metadata:
                lanes.lose_span(op.payload[SPAN_ID], lane_id, after)
        rest = [*before, *([(lane_id, repaired)] if repaired is not None else []), *after]
        lanes.requeue(rest)
        if repaired is not None:
            lanes.attempted.discard(id(repaired))  # a new operation, never sent

    def control(self, op: Operation, response: dict[str, Any]) -> None:
        """Pass on a request to terminate the operation's instance."""
        control = response.get("control")
        if self._on_control is not None and isinstance(control, dict) and control.get("terminate"):
            reason = control.get("reason")
            self._on_control(op.payload[INSTANCE_ID], reason if isinstance(reason, str) else None)

    async def _delivered(self, ops: list[Operation], total: int | None = None) -> None:
        self._broken_in_a_row = 0
        self._on_success()
        self._lanes.forget(ops)
        await self._ledger.delivered(ops, total)

    async def _let_go(self, ops: list[Operation]) -> None:
        """Drop a settled batch's operations from the end, ``STEP_ITEMS`` at a time:
        freeing hundreds of delivered operations at once would hold the loop too."""
        pacer = self._pacer
        while ops:
            del ops[-STEP_ITEMS:]
            if ops and pacer.due():
                await pacer.turn()
        pacer.rest()

    def _permanent(self, error: Exception, op: Operation) -> None:
        logger.error("telemetry failed permanently on %s: %s", op.type.name, error)
        self._on_permanent_failure(error, op)
