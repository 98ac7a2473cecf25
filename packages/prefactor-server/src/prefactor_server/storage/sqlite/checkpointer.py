"""Checkpoints off the writer: the WAL is copied back into the database on a thread and
connection of its own.

SQLite checkpoints in the COMMIT of the write that crosses ``wal_autocheckpoint`` pages,
so one write in many pays for copying megabytes (a stall of up to seconds on a busy
disk). Here, after commits, a separate connection runs a PASSIVE checkpoint (it never
blocks the writer or the readers) at most once per ``interval`` seconds; the WAL then
restarts from its beginning at the next write, and the writer's own autocheckpoint stays
only as a backstop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["Checkpointer"]

logger = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread that checkpoints after :meth:`wrote` calls.

    Args:
        connect: Opens the connection the thread uses (on the thread).
        interval: Least time between two checkpoints, in seconds.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval: float = 1.0) -> None:
        self._connect = connect
        self._interval = interval
        self._wrote = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="prefactor-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def wrote(self) -> None:
        """Note that a write committed (cheap: sets an event)."""
        self._wrote.set()

    def _loop(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wrote.wait()
                if self._stop.is_set():
                    return
                self._wrote.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    logger.exception("background checkpoint failed")
                if self._stop.wait(self._interval):
                    return
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread and close its connection (idempotent)."""
        self._stop.set()
        self._wrote.set()
        self._thread.join()
