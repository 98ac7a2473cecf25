"""What goes into the next bulk request: the dispatcher's batching rules, free of I/O.

* **Lanes.** Operations wait in one FIFO per agent instance (a lane). A batch takes the
  head operations of many lanes, in lane order, up to an item cap and a byte budget.
* **Pipelining.** Bulk requests may overlap for one lane, but a batch never carries an
  operation that depends on one still in flight (``InFlight``): a span finish whose
  create is in flight waits, so does a child whose parent's create is in flight, and so
  does everything behind an instance-level operation (register, start, finish, quality:
  the *barriers*) in flight.
* **Merging.** A span create that was never attempted and whose finish is taken in the
  same batch goes out as one create that already carries the terminal status, result and
  both timestamps; a create flagged ``no_merge`` (cancel before start) or ``recovered``
  (replayed from a spool) never merges. The client's own queue hands most creates over
  merged already (``MERGED_FINISH``); they weigh two operations (``outcomes.weight``)
  and a run of them needs no merging at all.
* **Per action.** Only the operation types the server accepts in bulk are taken; a lane
  whose head is of another type is left to a single request, so order is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import is_
from typing import TypeVar

from prefactor_core._engine.optable import (
    MERGED_FINISH,
    NO_MERGE,
    PARENT_SPAN_ID,
    RECOVERED,
    SPAN_ID,
    TABLE,
    WaitsFor,
)
from prefactor_core._engine.outcomes import merged
from prefactor_core._engine.rendered import MERGED, PARENT, SPAN, TEXT, Rendered
from prefactor_core._engine.wire import BULK_ACTIONS, render_bulk_item
from prefactor_core.operations import Operation, OperationType

__all__ = [
    "ALL_BULK",
    "BARRIER_TYPES",
    "ENVELOPE",
    "SCAN_STEP",
    "STEP_ITEMS",
    "Batch",
    "BatchPlan",
    "InFlight",
    "at_once",
    "bulk_body",
    "bulk_types",
    "merge",
    "take_batch",
]

STEP_ITEMS = 16
"""The items the engine handles in one piece of work (reading the queue, planning a
batch, settling an answer); between pieces it checks its time on the agent's event loop
(``pacing.Pacer``)."""

SCAN_STEP = 8 * STEP_ITEMS
"""The lane heads a batch plan looks at in one piece of work (a look is cheaper than
handling an item)."""

ENVELOPE = b'{"items":[]}'
"""A bulk request's body around its items (``bulk_body``)."""

BARRIER_TYPES = frozenset(
    kind for kind, spec in TABLE.items() if spec.waits_for is WaitsFor.INSTANCE
)
"""Instance-level operations: nothing behind them in their lane overtakes them."""

_T = TypeVar("_T")

ALL_BULK = frozenset(BULK_ACTIONS)
"""Every operation type that has a bulk action."""

_CREATE = OperationType.CREATE_SPAN
_FINISH = OperationType.FINISH_SPAN


@dataclass(slots=True)
class Batch:
    """The operations of one bulk request, rendered, with what they hold in flight.

    Attributes:
        ops: The operations, in request order.
        lane_ids: The lane each operation was taken from, one per operation (two lists
            rather than a tuple per item: fewer objects for the collector).
        texts: The rendered items (JSON, UTF-8), one per operation.
        lanes: The lanes the batch took from.
        barriers: The lanes whose barrier operation the batch carries.
        creates: The span ids whose create the batch carries.
        weight: How many queued operations the batch carries (``outcomes.weight``: a
            merged create counts for two), which is what it took from the lanes.
    """

    ops: list[Operation]
    lane_ids: list[str]
    texts: list[bytes]
    lanes: set[str]
    barriers: set[str]
    creates: set[str]
    weight: int

    def routed(self) -> list[tuple[str, Operation]]:
        """(lane id, operation) of each item, in request order."""
        return list(zip(self.lane_ids, self.ops, strict=True))


def bulk_body(texts: list[bytes]) -> bytes:
    """The body of a bulk request carrying the rendered items ``texts``.

    Made by one join, the envelope joined to the first and last item: adding it to the
    joined items would copy a body of hundreds of kilobytes twice more.
    """
    if len(texts) < 2:
        return b'{"items":[' + b"".join(texts) + b"]}"
    return b",".join([b'{"items":[' + texts[0], *texts[1:-1], texts[-1] + b"]}"])


class InFlight:
    """What the bulk requests in flight carry that later operations may depend on."""

    __slots__ = ("barriers", "creates", "lanes")

    def __init__(self) -> None:
        self.lanes: dict[str, int] = {}  # lane id -> batches in flight taking from it
        self.barriers: dict[str, int] = {}  # lane id -> batches carrying its barrier
        self.creates: set[str] = set()  # span ids whose create is in flight

    def independent(self, op: Operation) -> bool:
        """True when ``op`` depends on nothing in flight of its lane."""
        kind = op.type
        if kind is _CREATE:
            record = op.record if op.__class__ is Rendered else None
            parent = op.payload.get(PARENT_SPAN_ID) if record is None else record[PARENT]
            return parent is None or parent not in self.creates
        if kind is _FINISH:
            return op.payload[SPAN_ID] not in self.creates
        return False

    def take_off(self, batch: Batch) -> None:
        """Mark a batch as in flight."""
        for lane_id in batch.lanes:
            self.lanes[lane_id] = self.lanes.get(lane_id, 0) + 1
        for lane_id in batch.barriers:
            self.barriers[lane_id] = self.barriers.get(lane_id, 0) + 1
        self.creates.update(batch.creates)

    def land(self, batch: Batch) -> None:
        """Clear the marks of an answered (or failed) batch."""
        _decrement(self.lanes, batch.lanes)
        _decrement(self.barriers, batch.barriers)
        self.creates.difference_update(batch.creates)


def _decrement(counts: dict[str, int], keys: set[str]) -> None:
    for key in keys:
        left = counts.get(key, 1) - 1
        if left:
            counts[key] = left
        else:
            counts.pop(key, None)


def bulk_types(bulk: bool | Iterable[str]) -> frozenset[OperationType]:
    """The operation types to send in bulk.

    Args:
        bulk: The bulk action names a server lists (``capabilities.bulk_actions``); True
            for all of ours, False for none.
    """
    if isinstance(bulk, bool):
        return ALL_BULK if bulk else frozenset()
    names = set(bulk)
    return frozenset(kind for kind, action in BULK_ACTIONS.items() if action in names)


def merge(ops: list[Operation], attempted: Container[int]) -> list[Operation]:
    """Fold each span finish into its create when the create was never sent.

    Args:
        ops: Consecutive operations of one lane.
        attempted: ``id()`` of the operations that were sent and went back to their
            lane (``Lanes.attempted``; never merged: the server may have stored the
            first attempt).
    """
    return at_once(_merge(ops, attempted))


def _merge(
    ops: list[Operation], attempted: Container[int]
) -> Generator[None, None, list[Operation]]:
    """``merge``, yielding every ``STEP_ITEMS`` operations."""
    creates: dict[str, int] = {}
    out: list[Operation] = []
    for position, op in enumerate(ops):
        if position and not position % STEP_ITEMS:
            yield
        kind = op.type
        record = op.record if op.__class__ is Rendered else None
        if record is not None:  # a create taken from the client's queue: never flagged
            if id(op) not in attempted:
                creates[record[SPAN]] = len(out)
            out.append(op)
        elif (
            kind is _CREATE
            and id(op) not in attempted
            and not op.metadata.get(NO_MERGE)
            and not op.metadata.get(RECOVERED)
        ):
            creates[op.payload[SPAN_ID]] = len(out)
            out.append(op)
        elif kind is _FINISH and op.payload[SPAN_ID] in creates:
            index = creates.pop(op.payload[SPAN_ID])
            out[index] = merged(out[index], op)
        else:
            out.append(op)
    return out


def take_batch(
    lanes: dict[str, deque[Operation]],
    flights: InFlight,
    attempted: Container[int],
    *,
    max_items: int,
    max_bytes: int,
    skip: Container[str] = (),
    bulk_types: Container[OperationType] | None = None,
) -> Batch | None:
    """Take the next bulk batch from the heads of ``lanes`` (which it pops), or None.

    Args:
        lanes: The waiting operations by lane; taken ones are removed, the rest stay.
        flights: What is in flight (see the module docstring); not changed here.
        attempted: ``id()`` of operations sent before and put back (see ``merge``).
        max_items: The most items in the request.
        max_bytes: The server's cap on the request body.
        skip: Lanes not to take from (a single request of theirs is in flight).
        bulk_types: The operation types the server takes in bulk; all when None.
    """
    return at_once(
        _take(lanes.items(), flights, attempted, max_items, max_bytes, skip, bulk_types, None)
    )


def at_once(steps: Generator[None, None, _T]) -> _T:
    """Run steps (a generator that yields between them) without a break; return their
    result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: _T = done.value
            return result


class BatchPlan:
    """``take_batch`` done in steps, so that the event loop can run between them.

    Iterate ``steps()`` (each step renders at most ``STEP_ITEMS`` items; let the loop run
    between steps), then call ``commit()``. The plan reads the lanes' heads without
    taking them, and ``flights``, ``attempted`` and ``skip`` as they are during the
    steps: while it runs, the dispatcher takes nothing else, so these can only let more through (an
    answer lands), never less. ``commit`` takes the planned operations from the lanes if
    their heads are still the very operations the plan saw; if anything came back to a
    lane's head meanwhile (a retry), it takes the batch at once with ``take_batch``
    instead, so the result always follows the rules of the lanes as they are.
    """

    __slots__ = ("_args", "_batch", "_lanes", "_moves", "_steps")

    def __init__(
        self,
        lanes: dict[str, deque[Operation]],
        flights: InFlight,
        attempted: Container[int],
        *,
        max_items: int,
        max_bytes: int,
        skip: Container[str] = (),
        bulk_types: Container[OperationType] | None = None,
    ) -> None:
        self._lanes = lanes
        self._args = (flights, attempted, max_items, max_bytes, skip, bulk_types)
        self._moves: list[_Move] = []
        self._steps = _take(list(lanes.items()), *self._args, self._moves)
        self._batch: Batch | None = None

    def steps(self) -> Iterator[None]:
        """Plan the batch, one step at a time."""
        self._batch = yield from self._steps

    def commit(self) -> Batch | None:
        """Take the planned batch from the lanes (call after the last step), or None."""
        lanes = self._lanes
        for lane_id, seen, taken, _ in self._moves:
            real = lanes.get(lane_id)
            if (
                real is not seen
                or len(real) < len(taken)
                or not all(map(is_, islice(real, len(taken)), taken))
            ):
                return at_once(_take(lanes.items(), *self._args, None))
        for _, real, taken, rest in self._moves:
            for _ in range(len(taken)):
                real.popleft()
            real.extendleft(reversed(rest))
        return self._batch


_Move = tuple[str, deque[Operation], list[Operation], list[Operation]]
"""A lane a plan takes from: its id, its deque, the operations taken from its head, and
what goes back (merged operations that did not fit)."""


def _take(
    lanes: Iterable[tuple[str, deque[Operation]]],
    flights: InFlight,
    attempted: Container[int],
    max_items: int,
    max_bytes: int,
    skip: Container[str],
    bulk_types: Container[OperationType] | None,
    moves: list[_Move] | None,
) -> Generator[None, None, Batch | None]:
    """The batching rules (``take_batch``), as a generator that yields every
    ``STEP_ITEMS`` rendered items and returns the batch.

    With ``moves`` None it pops from the lanes themselves; with a list it only reads
    them and records in ``moves`` what ``BatchPlan.commit`` applies.
    """
    ops: list[Operation] = []
    lane_ids: list[str] = []
    texts: list[bytes] = []
    used: set[str] = set()
    barriers: set[str] = set()
    creates: set[str] = set()
    merges = 0
    # The body's bytes: the envelope, each rendered item and a comma.
    budget = max_bytes - len(ENVELOPE)
    room = max_items
    for lane_id, real in lanes:
        if room <= 0 or budget <= 0:
            break
        if not real or lane_id in flights.barriers or lane_id in skip:
            continue
        flying = flights.lanes.get(lane_id, 0)
        flown = flights.creates
        # Take twice the room: a create and its finish usually merge into one item.
        limit = 2 * room
        taken: list[Operation] = []
        finishes = 0
        # The heads as they are now (a plan waits between its steps, and the lane may
        # grow meanwhile), looked at ``SCAN_STEP`` at a time.
        heads = islice(real, limit) if moves is None else list(islice(real, limit))
        for position, head in enumerate(heads):
            if position and not position % SCAN_STEP:
                yield
            kind = head.type
            if flying:
                # ``InFlight.independent``, without a call for a create's record.
                record = head.record if head.__class__ is Rendered else None
                if record is None:
                    if not flights.independent(head):
                        break
                elif record[PARENT] is not None and record[PARENT] in flown:
                    break
            if bulk_types is not None and kind not in bulk_types:
                break
            taken.append(head)
            if kind is _FINISH:
                finishes += 1
        if not finishes:
            # Nothing merges (the creates of the SDK's own queue come merged already,
            # ``outcomes.weight``): what is beyond the room would only go back.
            del taken[room:]
        if not taken:
            continue
        if moves is None:
            popleft = real.popleft
            for _ in range(len(taken)):
                popleft()
        merged_ops = (yield from _merge(taken, attempted)) if finishes else taken
        rest: list[Operation] = []
        before = len(ops)
        for index, op in enumerate(merged_ops):
            if index and not index % STEP_ITEMS:
                yield
            record = op.record if op.__class__ is Rendered else None
            text = b""
            if index < room:
                # ``render_bulk_item``, without a call for the creates rendered at take.
                kept = None if record is None else record[TEXT]
                text = render_bulk_item(op) if kept is None else kept
            if index >= room or (ops and len(text) + 1 > budget):
                rest = merged_ops[index:]
                if moves is None:
                    real.extendleft(reversed(rest))
                if index < room:
                    budget = 0
                break
            ops.append(op)
            lane_ids.append(lane_id)
            texts.append(text)
            budget -= len(text) + 1
            kind = op.type
            if record is not None:  # a create, read from its record
                creates.add(record[SPAN])
                if record[MERGED]:
                    merges += 1  # it carries two queued operations (``weight``)
            elif kind is _CREATE:
                creates.add(op.payload[SPAN_ID])
                if MERGED_FINISH in op.metadata:
                    merges += 1
            elif kind in BARRIER_TYPES:
                barriers.add(lane_id)
        if len(ops) > before:
            used.add(lane_id)
        if moves is not None:
            moves.append((lane_id, real, taken, rest))
        room = max_items - len(ops)
    if not ops:
        return None
    return Batch(ops, lane_ids, texts, used, barriers, creates, len(ops) + merges)
