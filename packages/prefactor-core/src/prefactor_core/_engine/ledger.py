"""The delivery engine's ledger: how many operations left it and how.

Every operation that enters the dispatcher leaves it once: delivered (``sent``), given up
(``dropped``), or still waiting when the engine stops. The ledger keeps those counters
(and the request counters beside them) and tells a spool about every operation that
left for good, delivered or given up, so the spool forgets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prefactor_core._engine.outcomes import DeliveryStatistics, weight
from prefactor_core.operations import Operation

__all__ = ["Ledger", "OnDelivered"]

OnDelivered = Callable[[list[Operation]], Awaitable[None]]
"""A spool's acknowledgement: these operations left the engine for good."""


class Ledger:
    """The engine's counters and its acknowledgements to a spool.

    Attributes:
        sent: Operations the API acknowledged (a merged create counts for two).
        retried: Operation attempts that failed and were queued again.
        dropped: Operations given up on.
        requests: Requests made.
        failed_requests: Requests that failed (transiently or not).
        in_flight: Operations in requests not answered yet (a merged create counts for two).
    """

    __slots__ = (
        "_acks",
        "dropped",
        "failed_requests",
        "in_flight",
        "on_delivered",
        "requests",
        "retried",
        "sent",
    )

    def __init__(self, on_delivered: OnDelivered | None) -> None:
        self.on_delivered = on_delivered
        self.sent = 0
        self.retried = 0
        self.dropped = 0
        self.requests = 0
        self.failed_requests = 0
        self.in_flight = 0
        self._acks: set[asyncio.Future[None]] = set()

    async def delivered(self, ops: list[Operation], weight_of_all: int | None = None) -> None:
        """Count ``ops`` as delivered and acknowledge them (awaited: a spool deletes them).
        ``weight_of_all``: what they weigh together (``outcomes.weight``), when known."""
        self.sent += sum(weight(op) for op in ops) if weight_of_all is None else weight_of_all
        if self.on_delivered is not None:
            await self.on_delivered(ops)

    def give_up(self, ops: list[Operation]) -> None:
        """Count refused operations as dropped; a spool forgets them (they would only be
        refused again by the next process)."""
        self.dropped += sum(weight(op) for op in ops)
        if self.on_delivered is not None and ops:
            ack = asyncio.ensure_future(self.on_delivered(ops))
            self._acks.add(ack)
            ack.add_done_callback(self._acks.discard)

    def pending_acks(self) -> list[asyncio.Future[None]]:
        """The acknowledgements still being written (``stop`` waits for them)."""
        return list(self._acks)

    def statistics(self, *, queued: int, rejected: int) -> DeliveryStatistics:
        """The counters as the public statistics."""
        return DeliveryStatistics(
            queued=queued,
            in_flight=self.in_flight,
            sent=self.sent,
            retried=self.retried,
            dropped=self.dropped,
            requests=self.requests,
            failed_requests=self.failed_requests,
            rejected=rejected,
        )
