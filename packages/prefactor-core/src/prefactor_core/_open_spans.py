"""The table of open spans: the one owner of span state, and the span operation builders.

Every span's state (its id, instance, type, parent, lifecycle, and the operations it
holds back while its parent's create is not queued yet) lives in an ``OpenSpan`` record,
and only ``SpanTable`` (one per client) changes it, but for the engine marking a queued
record taken (``_span_taking``). ``SpanContext`` (the span users hold)
is such a record plus the user's payloads, and ``SpanManager`` (the id-based API) looks
spans up here; both are faces over this table.

The rules decided here, once:

* **Ids and parents.** A span gets its final id when it is opened; its parent is the
  one given, else a bridged tracer's current span (``_engine.parents``), else the
  innermost open span of this task's ``SpanContextStack`` when it is of the same
  instance. Only this module pushes spans on that stack and removes them.
* **Order.** A span's operations are held while its parent's create has not been
  queued (a child may start before its parent does), and released right after it, so
  the server always sees a parent before its children.
* **Idempotency keys.** A made id never repeats, so its operations' keys derive from it
  (``c-``/``f-`` and the id, built only when read); an id chosen by the caller may
  repeat across runs, so its keys are random; a key given for a finish is used as is.
* **One queue entry per span.** Where the client's queue takes spans as themselves
  (``queue._spans.SpanQueue``), a started span with a made id is queued as its own
  record instead of a create operation, and its finish, if it comes before the engine
  takes the record, is written into it (*folded*); ``take`` turns the record into the
  one operation the engine gets (``_span_taking``): its create, or, folded, a create that
  already carries its finish (``MERGED_FINISH``, as the engine merges the two itself; it
  weighs two operations in every count). The record's ``_queued``
  says where it is (``QUEUED``, ``FOLDED``, ``TAKEN``); folding and taking are decided
  under ``_ORDER_LOCK``, so the finish is either in the create or queued after it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from prefactor_core._engine.ids import IdFactory
from prefactor_core._engine.optable import (
    CREATE_KEY_PREFIX,
    FINISH_KEY_PREFIX,
    INSTANCE_ID,
    NO_MERGE,
    PARENT_SPAN_ID,
    PAYLOAD_JSON,
    RESULT_JSON,
    SCHEMA_NAME,
    SPAN_ID,
    STARTED_AT,
    STATUS,
    TIMESTAMP,
)
from prefactor_core._engine.parents import _RESOLVERS, resolve
from prefactor_core._payload import PayloadEncoder
from prefactor_core.context_stack import _STACK, SpanContextStack
from prefactor_core.operations import Operation, OperationType, derived_operation
from prefactor_core.utils import generate_idempotency_key
from prefactor_http.models.types import (
    STATUS_ACTIVE,
    STATUS_CANCELLED,
    STATUS_COMPLETE,
    STATUS_PENDING,
    FinishStatus,
)

__all__ = [
    "FINISHED",
    "FOLDED",
    "PREPARED",
    "QUEUED",
    "STARTED",
    "TAKEN",
    "FoldCount",
    "OpenSpan",
    "SpanTable",
]

# Lifecycle states.
PREPARED: Final = 0
"""Opened (entered or prepared), not started: no operation queued yet."""
STARTED: Final = 1
"""Its create is queued."""
FINISHED: Final = 2
"""Its finish is queued (before start: a pending create and its finish)."""

# Where a span queued as its own record is (``OpenSpan._queued``; 0: not queued so).
QUEUED: Final = 1
"""The record waits in the queue for its create."""
FOLDED: Final = 2
"""The record waits in the queue, its finish written into it."""
TAKEN: Final = 3
"""The engine took the record (as its create, with the finish if folded)."""

_CREATE = OperationType.CREATE_SPAN
_FINISH = OperationType.FINISH_SPAN
# A pending create (cancel before start) must reach the API as such, then its finish.
_NO_MERGE: Final = {NO_MERGE: True}

# Spans of one tree may start and finish on different threads (``@trace`` on functions
# run by ``asyncio.to_thread`` or a thread pool, the sync client). Holding a child on its
# unreleased parent and releasing the parent's waiting children must not interleave, or
# a child's operations could be lost or overtake its parent's create. Reentrant: the
# garbage collector may finish an abandoned traced generator's span at any allocation,
# also inside this lock on the same thread.
_ORDER_LOCK = threading.RLock()


def _new_order_lock() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global _ORDER_LOCK
    _ORDER_LOCK = threading.RLock()


os.register_at_fork(after_in_child=_new_order_lock)


class OpenSpan:
    """One span's state, written only by ``SpanTable`` (``SpanContext`` extends it).

    Attributes (read-only outside this module):
        _id: The span id ("" until opened).
        _instance_id, _schema_name: Its instance and type.
        _parent_id: Its parent's id, if any; ``_parent`` the parent's record while open.
        _state: ``PREPARED``, ``STARTED`` or ``FINISHED``.
        _status: Its finish status (meaningful once finished).
        _prepared_at: When it was opened (Unix time).
        _params_bytes: The size of its encoded params (they share its budget).
        _released: Its operations go straight to the queue (its parent's create is out).
        _held: Its operations waiting for its parent's create, or None.
        _waiting: Its children waiting for its own create, or None.
        _queued: 0, or where its record is (``QUEUED``, ``FOLDED``, ``TAKEN``).
        _payload_json, _started_at: Its create's params and start (set when queued
            as a record).
        _result_json, _finished_at: Its finish's result and time (set when folded).
    """

    __slots__ = (
        "_finished_at",
        "_held",
        "_id",
        "_instance_id",
        "_params_bytes",
        "_parent",
        "_parent_id",
        "_payload_json",
        "_prepared_at",
        "_queued",
        "_released",
        "_result_json",
        "_schema_name",
        "_started_at",
        "_state",
        "_status",
        "_waiting",
    )

    def __init__(self, instance_id: str, schema_name: str, parent_id: str | None) -> None:
        self._id = ""
        self._instance_id = instance_id
        self._schema_name = schema_name
        self._parent_id = parent_id
        self._parent: OpenSpan | None = None
        self._state = PREPARED
        self._status: FinishStatus = STATUS_COMPLETE
        self._prepared_at = 0.0
        self._params_bytes = 0
        self._released = False
        self._held: list[Operation] | None = None
        self._waiting: list[OpenSpan] | None = None
        self._queued = 0
        # Read only once _queued says they were written.
        self._payload_json: str
        self._started_at: float
        self._result_json: str | None
        self._finished_at: float

    @property
    def id(self) -> str:
        """The span's id: final from the moment it is opened."""
        return self._id

    @property
    def instance_id(self) -> str:
        """The agent instance the span belongs to."""
        return self._instance_id

    @property
    def schema_name(self) -> str:
        """The span's type."""
        return self._schema_name

    @property
    def parent_span_id(self) -> str | None:
        """The enclosing span's id, if any."""
        return self._parent_id


class SpanTable:
    """The open spans of one client, and the span operations they queue.

    Args:
        enqueue: Queues one operation, awaiting room (a full or custom queue).
        offer: Queues one operation without awaiting when it can (True); False means
            "use ``enqueue``". It keeps the agent's path free of coroutine layers.
        new_id: Makes span ids.
        encoder: Encodes params and results (masking, budgets).
        on_failure_seen: Called when a telemetry failure is raised into the agent.
    """

    def __init__(
        self,
        enqueue: Callable[[Operation], Awaitable[None]],
        offer: Callable[[Operation], bool] | None = None,
        new_id: Callable[[], str] | None = None,
        encoder: PayloadEncoder | None = None,
        on_failure_seen: Callable[[], None] | None = None,
    ) -> None:
        self.enqueue = enqueue
        self.offer: Callable[[Operation], bool] = offer or (lambda _op: False)
        self.new_id = new_id or IdFactory().new_id
        self.on_failure_seen = on_failure_seen
        # A span's params may take 7/8 of its budget, so that its result always has room.
        self.encoder = encoder or PayloadEncoder()
        self.span_budget = self.encoder.max_span_bytes
        self.params_budget = self.span_budget - self.span_budget // 8
        # The agent's path takes a plain dict's JSON as it is when no mask is set and it
        # is no longer than this (then no string in it can be over budget either).
        self.fast_limit = (
            min(self.encoder.max_field_bytes, self.params_budget)
            if self.encoder.mask is None
            else -1
        )
        self.spans: dict[str, OpenSpan] = {}
        # Ids chosen by the caller (see the module docstring: their keys are random).
        self.chosen: set[str] = set()
        # Set by a client whose queue takes spans as themselves (the module docstring):
        # queues a span's record without awaiting (False: queue its operations instead),
        # and returns the queue a finish may be folded into, or None (raising as
        # ``offer`` would for a client that failed or was forked).
        self.offer_span: Callable[[OpenSpan], bool] | None = None
        self.fold_target: Callable[[], FoldCount | None] = _nowhere

    # -- opening and closing ---------------------------------------------------------------

    def open(self, span: OpenSpan, *, push: bool, span_id: str | None = None) -> None:
        """Give ``span`` its id and parent and record it as open; ``push`` makes it the
        innermost span of this task. A ``span_id`` given is the caller's own (chosen)."""
        if span_id is not None:
            self.chosen.add(span_id)
        else:
            span_id = self.new_id()
        span._id = span_id
        span._prepared_at = time.time()
        parent_id = span._parent_id
        stack = _STACK.get()
        if parent_id is None and _RESOLVERS:
            # Inside another tracer's span (an OTel span bridged by prefactor_core.otel).
            parent_id = span._parent_id = resolve(span._instance_id, len(stack))
        if parent_id is None:
            if stack:
                top = stack[-1]
                candidate = self.spans.get(top)
                # A span of another instance is never a parent: the API would refuse it.
                if candidate is None or candidate._instance_id == span._instance_id:
                    span._parent_id = top
                    span._parent = candidate
        else:
            span._parent = self.spans.get(parent_id)
        if push:
            _STACK.set((*stack, span_id))
        self.spans[span_id] = span

    def close(self, span: OpenSpan) -> None:
        """Forget ``span`` as open (it finished, or could not start)."""
        self.spans.pop(span._id, None)
        if self.chosen:
            self.chosen.discard(span._id)

    leave = staticmethod(SpanContextStack.remove)
    """Take a span id off this task's context stack, wherever it is."""

    # -- queueing ----------------------------------------------------------------------------

    def offer_all(self, ops: list[Operation]) -> list[Operation] | None:
        """Queue ``ops`` in order without awaiting; return those that must be awaited."""
        for index, op in enumerate(ops):
            if not self.offer(op):
                return ops[index:]
        return None

    async def enqueue_all(self, ops: list[Operation]) -> None:
        """Queue ``ops`` in order, awaiting room."""
        for op in ops:
            await self.enqueue(op)

    def failure_seen(self) -> None:
        """A telemetry failure was raised into the agent."""
        if self.on_failure_seen is not None:
            self.on_failure_seen()

    def _op(
        self,
        kind: OperationType,
        payload: dict[str, Any],
        at: float,
        prefix: str,
        span_id: str,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Operation:
        """A span operation with its key (the module docstring's rule)."""
        if key is None and (not self.chosen or span_id not in self.chosen):
            return derived_operation(kind, payload, at, prefix, span_id, metadata)
        return Operation(kind, payload, at, key or generate_idempotency_key(), metadata)

    # -- the span operations -----------------------------------------------------------------

    def create(
        self, span: OpenSpan, status: str, payload_json: str, started_at: float | None
    ) -> list[Operation] | None:
        """Queue the create of ``span`` (synchronously when the queue has room).

        Returns the operations that still have to be queued the slow way (a full queue,
        a custom queue), in order, or None.
        """
        span_id = span._id
        span._params_bytes = len(payload_json)
        offer_span = self.offer_span
        if (
            offer_span is not None
            and status == STATUS_ACTIVE
            and started_at is not None
            and (not self.chosen or span_id not in self.chosen)
        ):
            span._payload_json = payload_json
            span._started_at = started_at
            span._state = STARTED
            parent = span._parent
            with _ORDER_LOCK:
                if (parent is None or parent._released) and not span._waiting:
                    span._queued = QUEUED
                    if offer_span(span):
                        span._released = True
                        span._parent = None  # a queued record holds no other span
                        return None
                    span._queued = 0
        fields = _create_fields(span, status, payload_json, started_at)
        metadata = _NO_MERGE if status == STATUS_PENDING else None
        at = started_at or time.time()
        if self.chosen:
            op = self._op(_CREATE, fields, at, CREATE_KEY_PREFIX, span_id, metadata)
        else:
            op = derived_operation(_CREATE, fields, at, CREATE_KEY_PREFIX, span_id, metadata)
        span._state = STARTED
        parent = span._parent
        with _ORDER_LOCK:
            if parent is not None and not parent._released:
                # The parent's create is not queued yet: wait for it, so the server
                # always sees a parent before its children.
                span._held = [op]
                if parent._waiting is None:
                    parent._waiting = []
                parent._waiting.append(span)
                return None
            if not span._waiting:
                offered = self.offer(op)
                span._released = True
                return None if offered else [op]
            ops = [op]
            _release_children(span, ops)
            span._released = True
            return self.offer_all(ops)

    def finish(
        self,
        span: OpenSpan,
        status: FinishStatus,
        result_json: str | None,
        at: float,
        key: str | None,
        default_json: str | None,
    ) -> list[Operation] | None:
        """Queue the finish of ``span`` (and, if it never started, its create first:
        ``pending`` for a cancel, else ``active`` from when it was opened, with
        ``default_json`` as its params). Returns what must be queued the slow way."""
        leftover: list[Operation] | None = None
        if span._state == PREPARED:
            if status == STATUS_CANCELLED:
                leftover = self.create(span, STATUS_PENDING, default_json or "{}", None)
            else:
                leftover = self.create(span, STATUS_ACTIVE, default_json or "{}", span._prepared_at)
        span._state = FINISHED
        span._status = status
        if span._queued == QUEUED and key is None:
            self.close(span)
            queue = self.fold_target()
            if queue is not None:
                with _ORDER_LOCK:
                    folded = span._queued == QUEUED
                    if folded:
                        span._result_json = result_json
                        span._finished_at = at
                        span._queued = FOLDED
                        queue.folded += 1
                if folded:
                    return leftover
        span_id = span._id
        fields = _finish_fields(span, status, result_json, at)
        if key is None and not self.chosen:
            op = derived_operation(_FINISH, fields, at, FINISH_KEY_PREFIX, span_id)
        else:
            op = self._op(_FINISH, fields, at, FINISH_KEY_PREFIX, span_id, key=key)
        self.close(span)
        if span._held is not None and _hold(span, op):
            pass
        elif leftover:
            leftover.append(op)
        elif not self.offer(op):
            leftover = [op]
        return leftover


class FoldCount(Protocol):
    """A queue that holds records: how many finishes are folded into those it holds."""

    folded: int


def _create_fields(
    span: OpenSpan, status: str, payload_json: str, started_at: float | None
) -> dict[str, Any]:
    fields = {
        INSTANCE_ID: span._instance_id,
        SPAN_ID: span._id,
        SCHEMA_NAME: span._schema_name,
        STATUS: status,
        PAYLOAD_JSON: payload_json,
        STARTED_AT: started_at,
    }
    if span._parent_id is not None:
        fields[PARENT_SPAN_ID] = span._parent_id
    return fields


def _finish_fields(
    span: OpenSpan, status: str, result_json: str | None, at: float
) -> dict[str, Any]:
    return {
        INSTANCE_ID: span._instance_id,
        SPAN_ID: span._id,
        STATUS: status,
        RESULT_JSON: result_json,
        TIMESTAMP: at,
    }


def _nowhere() -> FoldCount | None:
    return None


def _hold(span: OpenSpan, op: Operation) -> bool:
    """Add ``op`` to the span's held operations unless they were released."""
    with _ORDER_LOCK:
        if span._held is None:
            return False
        span._held.append(op)
        return True


def _release_children(span: OpenSpan, out: list[Operation]) -> None:
    """Collect, in order, the held operations of the spans waiting for ``span``."""
    waiting, span._waiting = span._waiting, None
    for child in waiting or ():
        held, child._held = child._held, None
        child._released = True
        out.extend(held or ())
        if child._waiting:
            _release_children(child, out)
