"""The client's default queue, which holds a started span as itself.

On the agent's path a span's create and finish were two operations, each with its own
payload dict, queued one after the other. ``SpanQueue`` takes the span's record
(``_open_spans.OpenSpan``) instead of its create, and a finish that comes while the
record still waits is written into it (``SpanTable.finish``): one queue entry per span,
and nothing built on the agent's path but the span itself. The engine takes operations
as ever: ``get`` turns a record into its create then, and a finish folded into it
becomes the next item (the engine merges the two into one bulk item, as before). A
finish that comes after the engine took the record is queued as its own operation.

Only the client's own default queue holds records: a queue the user passes (any
``Queue``, also an ``InMemoryQueue`` or a subclass), and the spool, which writes every
operation to disk as it is queued, receive operations as published.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from prefactor_core._open_spans import OpenSpan
from prefactor_core._span_taking import take, take_many
from prefactor_core.operations import Operation
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["SpanQueue", "span_putter"]


class SpanQueue(InMemoryQueue[Operation]):
    """An ``InMemoryQueue`` of operations that also takes open spans (see the module).

    Its bound counts entries: a span whose finish was folded into it is one entry for
    two operations. ``size()`` counts operations (what the client reports as queued).

    Attributes:
        folded: How many of the records it holds carry their finish.
    """

    def __init__(self, maxsize: int = 0, *, put_timeout: float = 0.0) -> None:
        super().__init__(maxsize, put_timeout=put_timeout)
        self.folded = 0

    def size(self) -> int:
        """Return how many operations are waiting (a folded span counts for two)."""
        return len(self._items) + self.folded

    def _pop(self) -> Operation:
        item: Operation | OpenSpan = _pop(self)
        if not isinstance(item, OpenSpan):
            return item
        return take(item, self)

    def _pop_many(self, most: int) -> list[Operation]:
        items: list[Operation | OpenSpan] = _pop_many(self, most)  # type: ignore[arg-type]
        return take_many(items, self)


_pop = InMemoryQueue._pop
_pop_many = InMemoryQueue._pop_many


def span_putter(queue: object) -> Callable[[OpenSpan], None] | None:
    """``put_nowait`` for spans, if ``queue`` is a ``SpanQueue`` (exactly), else None."""
    if queue.__class__ is not SpanQueue or not isinstance(queue, SpanQueue):
        return None
    return cast(Callable[[OpenSpan], None], queue.put_nowait)
