"""The engine's side of the open-span records: turning a record the queue held into the
one operation it stands for (``_open_spans`` explains records, folding and the order
lock; the caller's side of them lives there).

A record is taken once: its ``_queued`` state goes to ``TAKEN`` under the order lock
(read from ``_open_spans`` at each use, as a fork replaces it), so a finish arriving
at the same moment is either folded into the create taken here or queued after it.
"""

from __future__ import annotations

from prefactor_core import _open_spans as _spans
from prefactor_core._engine.rendered import render_create, rendered_create
from prefactor_core._open_spans import FOLDED, TAKEN, FoldCount, OpenSpan
from prefactor_core.operations import Operation
from prefactor_http.models.types import STATUS_ACTIVE

__all__ = ["take", "take_many"]


def take(span: OpenSpan, queue: FoldCount) -> Operation:
    """The operation a record ``queue`` held stands for, now that the engine takes it:
    its create, or, when its finish was folded in, one create that already carries the
    finish (``MERGED_FINISH``: status, result and end time; it weighs two operations).
    Its bulk item is rendered now, once (``_engine.rendered``). See the module docstring."""
    with _spans._ORDER_LOCK:
        folded = span._queued == FOLDED
        span._queued = TAKEN
        if folded:
            queue.folded -= 1
    return _taken(span, folded)


def take_many(items: list[Operation | OpenSpan], queue: FoldCount) -> list[Operation]:
    """``take`` for each record of ``items`` (operations stay as they are), in order,
    deciding under ``_ORDER_LOCK`` once for them all."""
    folds: list[bool | None] = []
    fold = folds.append
    with _spans._ORDER_LOCK:
        for item in items:
            if item.__class__ is Operation or not isinstance(item, OpenSpan):
                fold(None)
                continue
            folded = item._queued == FOLDED
            item._queued = TAKEN
            fold(folded)
        queue.folded -= folds.count(True)
    # ``folded`` is None exactly for the items that are operations already.
    return [
        item if folded is None else _taken(item, folded)  # type: ignore[misc, arg-type]
        for item, folded in zip(items, folds, strict=True)
    ]


def _taken(span: OpenSpan, folded: bool) -> Operation:
    """The operation of a record the engine took (``take``; ``folded``: with its finish):
    a ``Rendered`` create holding the record's fields and its bulk item."""
    span_id = span._id
    instance_id = span._instance_id
    schema_name = span._schema_name
    payload_json = span._payload_json
    started_at = span._started_at
    parent_id = span._parent_id
    status: str
    if folded:
        status = span._status
        result_json = span._result_json
        finished_at = span._finished_at
    else:
        status, result_json, finished_at = STATUS_ACTIVE, None, None
    text = render_create(
        span_id,
        instance_id,
        schema_name,
        status,
        payload_json,
        parent_id,
        started_at,
        result_json,
        finished_at,
    )
    # In ``rendered.Record``'s order.
    return rendered_create(
        (
            instance_id,
            span_id,
            parent_id,
            folded,
            text,
            schema_name,
            status,
            payload_json,
            started_at,
            result_json,
            finished_at,
        )
    )
