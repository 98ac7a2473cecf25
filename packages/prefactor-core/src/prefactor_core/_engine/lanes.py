"""The operations waiting for delivery: one FIFO lane per agent instance.

Every operation of an instance goes through that instance's lane, so the server sees an
instance's operations in the order the caller made them; an operation that must be sent
again goes back to the head of its lane, before anything queued after it. Lanes also
remember what can no longer be delivered: instances whose register was refused (their
later operations are dropped) and spans whose create was refused for good (their
finish is dropped), and, after a fatal answer, everything (``latched``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from prefactor_core._engine.batching import InFlight
from prefactor_core._engine.ledger import Ledger
from prefactor_core._engine.optable import INSTANCE_ID, MERGED_FINISH, SPAN_ID
from prefactor_core._engine.outcomes import weight
from prefactor_core._engine.rendered import LANE, MERGED, Rendered
from prefactor_core.operations import Operation, OperationType

__all__ = ["Lanes"]

_FINISH = OperationType.FINISH_SPAN


class Lanes:
    """The lanes, their in-flight marks and what is known to be undeliverable.

    Attributes:
        lanes: lane id (the instance id) -> waiting operations, oldest first.
        pending: How many queued operations wait in lanes (a merged create, which
            carries its finish, counts for two: ``outcomes.weight``).
        busy: Lanes with a single request in flight (at most one each).
        flights: What the bulk requests in flight carry (``batching.InFlight``).
        attempted: ``id()`` of the operations that went back to a lane after they were
            sent (``requeue``): only operations in lanes are planned, so these are the
            ones a batch could meet again; the rest leave the engine after one attempt,
            and nothing is paid for them.
        latched: Set after a fatal answer: every operation is dropped from then on.
    """

    __slots__ = (
        "_dead",
        "_ledger",
        "_lost",
        "attempted",
        "busy",
        "flights",
        "lanes",
        "latched",
        "pending",
    )

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.lanes: dict[str, deque[Operation]] = {}
        self.pending = 0
        self.busy: set[str] = set()
        self.flights = InFlight()
        self.attempted: set[int] = set()
        self.latched = False
        # Instances whose register was refused: they do not exist on the server.
        self._dead: set[str] = set()
        # Spans whose create was refused for good: their finish is dropped, not sent.
        self._lost: set[str] = set()

    def accept(self, op: Operation) -> None:
        """Append a newly queued operation to its lane (or drop it, see the module)."""
        record = op.record if op.__class__ is Rendered else None
        lane_id: str = op.payload[INSTANCE_ID] if record is None else record[LANE]
        if self.latched:
            self._ledger.dropped += weight(op)
            return
        if lane_id in self._dead:
            self._ledger.give_up([op])
            return
        if self._lost and op.type is _FINISH and op.payload[SPAN_ID] in self._lost:
            self._lost.discard(op.payload[SPAN_ID])
            self._ledger.give_up([op])
            return
        lane = self.lanes.get(lane_id)
        if lane is None:
            lane = self.lanes[lane_id] = deque()
        lane.append(op)
        self.pending += weight(op)

    def accept_many(self, ops: list[Operation]) -> None:
        """``accept`` each of ``ops``, in order."""
        if self.latched or self._dead or self._lost:
            for op in ops:
                self.accept(op)
            return
        lanes = self.lanes
        added = 0
        for op in ops:
            # ``outcomes.weight`` inline; the creates taken from the client's own queue
            # are read from their record (``rendered.Rendered``).
            record = op.record if op.__class__ is Rendered else None
            if record is None:
                lane_id: str = op.payload[INSTANCE_ID]
                added += 2 if MERGED_FINISH in op.metadata else 1
            else:
                lane_id = record[LANE]
                added += 2 if record[MERGED] else 1
            lane = lanes.get(lane_id)
            if lane is None:
                lane = lanes[lane_id] = deque()
            lane.append(op)
        self.pending += added

    def requeue(self, ops: Iterable[tuple[str, Operation]]) -> None:
        """Put operations that were sent back at the head of their lanes, in their
        original order, marked ``attempted``."""
        attempted = self.attempted
        by_lane: dict[str, list[Operation]] = {}
        for lane_id, op in ops:
            by_lane.setdefault(lane_id, []).append(op)
        for lane_id, lane_ops in by_lane.items():
            if self.latched:
                self._ledger.dropped += sum(weight(op) for op in lane_ops)
                continue
            if lane_id in self._dead:
                self._ledger.give_up(lane_ops)
                continue
            lane = self.lanes.get(lane_id)
            if lane is None:
                lane = self.lanes[lane_id] = deque()
            lane.extendleft(reversed(lane_ops))
            attempted.update(id(op) for op in lane_ops)
            self.pending += sum(weight(op) for op in lane_ops)

    def forget(self, ops: Iterable[Operation]) -> None:
        """Forget operations that left the engine, and the lanes left empty."""
        attempted = self.attempted
        if attempted:
            for op in ops:
                attempted.discard(id(op))
        # Drop empty lanes so memory does not grow with the number of instances.
        busy, flying = self.busy, self.flights.lanes
        for lane_id in [
            k for k, lane in self.lanes.items() if not lane and k not in busy and k not in flying
        ]:
            del self.lanes[lane_id]

    def kill(self, lane_id: str) -> None:
        """Drop what waits for an instance the server will never know, now and later."""
        self._dead.add(lane_id)
        lane = self.lanes.pop(lane_id, None)
        if lane:
            self.pending -= sum(weight(op) for op in lane)
            self.forget(lane)
            self._ledger.give_up(list(lane))

    def lose_span(self, span_id: str, lane_id: str, after: list[tuple[str, Operation]]) -> None:
        """Drop the finish of a span the server will never have: from ``after`` (the
        operations that were behind its create), from its lane, or when it comes."""
        for index, (_, later) in enumerate(after):
            if later.type is _FINISH and later.payload[SPAN_ID] == span_id:
                del after[index]
                self._ledger.give_up([later])
                return
        lane = self.lanes.get(lane_id)
        for later in lane or ():
            if later.type is _FINISH and later.payload[SPAN_ID] == span_id:
                assert lane is not None
                lane.remove(later)
                self.pending -= 1
                self._ledger.give_up([later])
                return
        self._lost.add(span_id)

    def waiting(self) -> int:
        """How many queued operations wait in lanes (a merged create counts for two)."""
        return sum(weight(op) for lane in self.lanes.values() for op in lane)

    def clear(self) -> int:
        """Empty every lane; return how many queued operations they held."""
        held = self.waiting()
        self.lanes.clear()
        self.pending = 0
        return held
