"""The client's side of termination: which instances the platform terminated, and the
``TerminationMonitor`` the published adapters watch (``client._termination_monitor``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prefactor_core.exceptions import PrefactorTerminatedError
from prefactor_core.monitoring.termination_monitor import TerminationMonitor

__all__ = ["TerminationTracker"]

logger = logging.getLogger("prefactor_core")


class TerminationTracker:
    """Remembers terminated instances and keeps the monitor on the newest open run.

    The monitor follows the most recently created instance of the client (as the
    published SDK's does) and is reset when that instance finishes, so a response from
    a finished run never fires the next run's event. Terminations are remembered per
    instance id, so any run, current or not, refuses new spans once terminated.
    """

    def __init__(self) -> None:
        self.monitor: TerminationMonitor | None = None
        # False while a framework adapter drives the client: the published adapters
        # check the monitor at each of their hooks and stop the agent there, and they
        # still record (after the fact) the spans of work that ran before the stop.
        self.refuse_new_spans = True
        self._terminated: dict[str, str | None] = {}

    def open(self, fetch_instance: Callable[[str], Awaitable[Any]], poll_interval: float) -> None:
        """Make the monitor (when the client is initialised)."""
        self.monitor = TerminationMonitor(fetch_instance, poll_interval=poll_interval)

    def close(self) -> None:
        """Stop the monitor for good (when the client closes)."""
        if self.monitor is not None:
            self.monitor.destroy()
            self.monitor = None

    def watch(self, instance_id: str) -> None:
        """A new run was created: the monitor follows it from now on."""
        if self.monitor is not None:
            self.monitor.sync(instance_id)

    def finished(self, instance_id: str) -> None:
        """A run finished: if the monitor followed it, get it ready for the next run."""
        if self.monitor is not None and self.monitor.instance_id == instance_id:
            self.monitor.reset()

    def terminated(self, instance_id: str, reason: str | None) -> None:
        """The platform said (in a ``control`` field) that ``instance_id`` was terminated."""
        if instance_id in self._terminated:
            return
        self._terminated[instance_id] = reason
        logger.warning("agent instance %s was terminated by the platform: %s", instance_id, reason)
        if self.monitor is not None and self.monitor.instance_id == instance_id:
            self.monitor.detect_termination(reason)

    def reason(self, instance_id: str) -> str | None:
        """Why ``instance_id`` was terminated (None if it was not, or no reason was given)."""
        if instance_id in self._terminated:
            return self._terminated[instance_id]
        monitor = self.monitor
        if monitor is not None and monitor.instance_id == instance_id:
            return monitor.termination_reason
        return None

    def check(self, instance_id: str) -> None:
        """Raise ``PrefactorTerminatedError`` if ``instance_id`` was terminated.

        Raises:
            PrefactorTerminatedError: With the platform's reason (unless an adapter
                stops the agent itself: see ``refuse_new_spans``).
        """
        if not self.refuse_new_spans:
            return
        if instance_id in self._terminated:
            raise PrefactorTerminatedError(self._terminated[instance_id])
        monitor = self.monitor
        if (
            monitor is not None
            and monitor.instance_id == instance_id
            and monitor.get_termination_event().is_set()
        ):
            # The poll found it (no span response has said so yet).
            self._terminated[instance_id] = monitor.termination_reason
            raise PrefactorTerminatedError(monitor.termination_reason)
