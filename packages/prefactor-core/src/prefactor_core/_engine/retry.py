"""The waits between retries of the background loops, and how ``flush()``/``close()``
cut them short.

Both background loops that retry without end (the start-up probe of the API and the
dispatcher's delivery) wait through a ``Backoff``: it counts the failures in a row and
takes each delay from ``prefactor_http``'s ``RetryPolicy``, the one backoff rule of the
SDK (exponential with jitter, capped, honouring ``Retry-After``). An outage can end at
any moment of such a wait; if the agent then flushes or closes, waiting out a backoff of
many seconds would let ``close()`` reach its deadline without trying, and drop
everything queued (issue 10). So a caller that needs delivery *now* calls ``hurry()``:
the current wait ends at once, and while any such caller is waiting (``urgent``) every
wait is at most ``URGENT_DELAY`` seconds, so the loops retry at short intervals until the
caller's deadline.

The clock (``sleep=``) and the randomness (``jitter=``) are injectable, so tests control
time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from prefactor_http.retry import RetryPolicy

__all__ = ["URGENT_DELAY", "Backoff", "Sleep"]

Sleep = Callable[[float], Awaitable[object]]
"""``asyncio.sleep`` or a test's stand-in for it."""

URGENT_DELAY = 0.2
"""The longest wait between two attempts while a flush or close is waiting, in seconds."""


class Backoff:
    """The failures in a row of an endless retry loop, and waits ``hurry()`` cuts short.

    Example::

        backoff = Backoff(base=1.0, cap=30.0)
        while not await try_once():
            await backoff.wait(backoff.next_delay())
        backoff.reset()

    Args:
        base: The first delay in seconds; it doubles per failure in a row.
        cap: The longest delay.
        sleep: The sleep to wait with (``asyncio.sleep`` by default).
        jitter: Returns a float in ``[0, 1)`` (``random.random`` by default).
    """

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        sleep: Sleep | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.policy = RetryPolicy(None, base, cap, jitter=jitter or random.random, sleep=sleep)
        self.failures = 0
        self.urgent = 0
        self._waits: set[asyncio.Future[None]] = set()

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure in a row and return how long to wait before the next try.

        A positive ``Retry-After`` from the server replaces the computed delay (still
        capped); a zero one is ignored, so a loop that never gives up cannot spin.
        """
        self.failures += 1
        hint = retry_after if retry_after is not None and retry_after > 0 else None
        delay = self.policy.delay(self.failures - 1, hint)
        if self.urgent:
            delay = min(delay, URGENT_DELAY)
        return delay

    def delay_after(self, error: BaseException) -> float:
        """``next_delay`` for a failure, honouring the error's ``retry_after`` if it has one."""
        retry_after = getattr(error, "retry_after", None)
        return self.next_delay(float(retry_after) if isinstance(retry_after, int | float) else None)

    def reset(self) -> None:
        """A try succeeded: the next failure starts from ``base`` again."""
        self.failures = 0

    async def wait(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if ``hurry()`` is called meanwhile."""
        if self.urgent:
            delay = min(delay, URGENT_DELAY)
        cut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waits.add(cut)
        sleeper = asyncio.ensure_future((self.policy.sleep or asyncio.sleep)(delay))
        try:
            await asyncio.wait((sleeper, cut), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waits.discard(cut)
            if not sleeper.done():
                sleeper.cancel()

    def hurry(self) -> None:
        """End the waits in progress now (the next attempt happens at once)."""
        for cut in self._waits:
            if not cut.done():
                cut.set_result(None)

    def begin_urgent(self) -> None:
        """A flush or close is waiting: cut the current wait and keep the next ones short."""
        self.urgent += 1
        self.hurry()

    def end_urgent(self) -> None:
        """A flush finished waiting (close never ends its urgency)."""
        self.urgent = max(0, self.urgent - 1)
