"""Observers of the operations the engine takes in (the reader's taps).

A tap sees every operation once, in queue order, as the reader moves it from the queue
into the lanes: before it is sent, whatever the API answers later. It runs on the
engine's event loop thread (the agent's loop for the async client), so it must be cheap:
keep a reference and do the work elsewhere (the OpenTelemetry mirror appends to a deque
its worker thread reads). An exception from a tap is logged once per tap and counted; it
never reaches the agent or stops delivery.

Operations are never changed once queued (the engine copies a payload to merge or
repair it), so a tap may read them later on another thread.

Without taps the reader calls ``Lanes.accept`` directly: nothing is paid per operation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prefactor_core.operations import Operation

__all__ = ["Tap", "Taps"]

logger = logging.getLogger("prefactor_core.delivery")

Tap = Callable[[Operation], None]
"""Called with each operation the engine takes in (see the module)."""


class Taps:
    """The taps of one client (shared by its engine's reader; safe to change while it
    runs: the reader picks the change up at its next chunk).

    Attributes:
        failures: Calls of a tap that raised.
    """

    __slots__ = ("_taps", "_warned", "failures")

    def __init__(self) -> None:
        self._taps: tuple[Tap, ...] = ()
        self._warned: set[int] = set()
        self.failures = 0

    def __bool__(self) -> bool:
        return bool(self._taps)

    def add(self, tap: Tap) -> None:
        """Add ``tap`` (after the ones already there)."""
        if not callable(tap):
            raise TypeError(f"a tap must be callable, got {type(tap).__name__}")
        self._taps = (*self._taps, tap)

    def remove(self, tap: Tap) -> None:
        """Remove ``tap`` (nothing happens if it is not there)."""
        self._taps = tuple(t for t in self._taps if t != tap)  # bound methods: ==, not is

    def wrap(self, accept: Callable[[Operation], None]) -> Callable[[Operation], None]:
        """``accept`` itself without taps, else ``accept`` that first shows each operation
        to the taps present now."""
        taps = self._taps
        if not taps:
            return accept

        def tapped(op: Operation) -> None:
            for tap in taps:
                try:
                    tap(op)
                except Exception:
                    self._failed(tap)
            accept(op)

        return tapped

    def show(self, ops: list[Operation]) -> None:
        """Show ``ops`` to the taps present now, in order (the reader's many-at-a-time
        path, before it accepts them)."""
        for op in ops:
            for tap in self._taps:
                try:
                    tap(op)
                except Exception:
                    self._failed(tap)

    def _failed(self, tap: Tap) -> None:
        self.failures += 1
        if id(tap) not in self._warned:
            self._warned.add(id(tap))
            logger.exception("an operation tap failed (logged once per tap; delivery goes on)")
