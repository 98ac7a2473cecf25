"""TerminationMonitor: learns that the platform terminated the current agent instance.

Two paths tell it: the delivery engine reports a ``control`` field with
``terminate: true`` in a span response (the fast path), and a poll of the instance's
status every ``poll_interval`` seconds (the fallback for runs that send no spans).
Adapters wait on ``get_termination_event()`` and raise ``PrefactorTerminatedError``
with ``termination_reason`` to stop the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["TerminationMonitor"]

logger = logging.getLogger("prefactor_core.monitoring")


class TerminationMonitor:
    """Tracks one agent instance at a time and fires once when it is terminated.

    ``is_set()`` on the event and ``detect_termination`` only touch plain attributes,
    so an adapter's worker thread may check the event while the loop runs.

    Args:
        fetch_instance: An async callable that reads an instance by id and returns an
            object with ``status`` and ``termination_reason`` (used by the poll).
        poll_interval: Seconds between two polls of the tracked instance.
    """

    def __init__(
        self,
        fetch_instance: Callable[[str], Awaitable[Any]],
        poll_interval: float = 30.0,
    ) -> None:
        self._fetch_instance = fetch_instance
        self._poll_interval = poll_interval
        self._event = asyncio.Event()
        self._reason: str | None = None
        self._subscribers: list[Callable[[], None]] = []
        self._instance_id: str | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._destroyed = False
        # A new run starts "closed" until its instance id is tracked, so a late
        # response from the previous run cannot fire for the next one.
        self._closed_to_signals = False
        self._run = 0

    @property
    def termination_reason(self) -> str | None:
        """The reason the platform gave, once terminated (None before, or if none given)."""
        return self._reason

    @property
    def instance_id(self) -> str | None:
        """The instance being tracked, if any."""
        return self._instance_id

    def get_termination_event(self) -> asyncio.Event:
        """The event set when the tracked instance is terminated (replaced by ``reset``)."""
        return self._event

    def detect_termination(self, reason: str | None) -> None:
        """Record the termination: set the event, keep the reason, stop polling, notify.

        Does nothing once fired, after ``destroy``, or between ``reset`` and the next
        ``sync`` with an instance id.
        """
        if self._destroyed or self._closed_to_signals or self._event.is_set():
            return
        self._reason = reason
        self._event.set()
        self._cancel_poll()
        for subscriber in list(self._subscribers):
            try:
                subscriber()
            except Exception:
                logger.exception("a termination subscriber raised")

    def sync(self, instance_id: str | None) -> None:
        """Track ``instance_id`` (None: track nothing) and poll it in the background.

        Syncing the id already tracked keeps the running poll as it is.
        """
        if instance_id is not None:
            self._closed_to_signals = False
        if instance_id == self._instance_id:
            return
        self._instance_id = instance_id
        self._cancel_poll()
        if instance_id is None or self._destroyed or self._event.is_set():
            return
        with contextlib.suppress(RuntimeError):  # no running loop: no poll
            self._poll_task = asyncio.get_running_loop().create_task(
                self._poll(instance_id, self._run), name="prefactor-termination-poll"
            )

    def reset(self) -> None:
        """Get ready for the next run: a fresh event, no reason, no tracked instance."""
        self._cancel_poll()
        self._event = asyncio.Event()
        self._reason = None
        self._instance_id = None
        self._run += 1
        self._closed_to_signals = True

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on termination; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def destroy(self) -> None:
        """Stop for good: no more polls, no more events, no subscribers."""
        self._destroyed = True
        self._cancel_poll()
        self._subscribers.clear()

    def _cancel_poll(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()

    async def _poll(self, instance_id: str, run: int) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            if run != self._run:
                return
            try:
                instance = await self._fetch_instance(instance_id)
            except Exception as error:
                logger.debug("termination poll of %s failed: %s", instance_id, error)
                continue
            if run != self._run or instance_id != self._instance_id:
                return
            if getattr(instance, "status", None) == "terminated":
                self.detect_termination(getattr(instance, "termination_reason", None))
                return


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
