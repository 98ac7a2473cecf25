"""WAL checkpoints off the writer's critical path: a thread and connection of their own.

SQLite checkpoints by itself in the ``COMMIT`` that takes the WAL past
``wal_autocheckpoint`` pages, so one write in many (an OTLP export every ~33 of them) is
answered only after the WAL's pages were copied into the database and both files synced
(~50 ms). Here the writer, after each commit, reads the WAL's length and how much of it
is copied (two counters of the WAL index, the ``-shm`` file: ``mxFrame`` and
``nBackfill`` of SQLite's documented wal-index format) and, past ``pages`` frames with
some uncopied, wakes :class:`Checkpointer`'s thread, which runs
``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection: a passive checkpoint never
blocks the writer or the readers, so the copying and the syncs overlap the next writes,
and once every frame is copied the writer's next transaction starts the WAL again from
its beginning.

The WAL stays bounded without it: at ``2 × pages`` frames the writer checkpoints itself
(after the thread's checkpoint, if one runs), as SQLite would have at ``pages`` (the
thread starved of CPU or behind writes that never pause, its checkpoints failing). A
reader that holds one snapshot for long stops any checkpoint from finishing, as before.
Durability is unchanged: commits are not synced in either case (``synchronous =
NORMAL``), checkpoints sync the WAL first and the database after, on either connection.
A failed checkpoint is logged and counted (:attr:`Checkpointer.errors`); the writes go
on.
"""

from __future__ import annotations

import logging
import mmap
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["CHECKPOINT_PAGES", "Checkpointer", "WalIndex", "run_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT_PAGES = 10_000
"""The WAL's length in frames that wakes the checkpointer (the writer's own: twice)."""

_WAL_INDEX_VERSION = 3007000  # iVersion of the wal-index header since SQLite 3.7.0
_U32 = struct.Struct("=I")  # the wal-index is in the machine's byte order
_VERSION_AT = 0  # WalIndexHdr.iVersion
_MX_FRAME_AT = 16  # WalIndexHdr.mxFrame: frames in the WAL (its first copy of the header)
_BACKFILL_AT = 96  # WalCkptInfo.nBackfill: frames already copied into the database
_HEADER_BYTES = 136  # two 48-byte headers and the checkpoint info


class WalIndex:
    """Reads the WAL's frame counters from the database's ``-shm`` file (read-only map).

    The counters are read without SQLite's locks: a value may be a moment old, which is
    all a decision about when to checkpoint needs.

    Raises:
        OSError: The ``-shm`` file is missing or unreadable.
        ValueError: It is not a wal-index this class knows.
    """

    def __init__(self, db_path: Path) -> None:
        with open(f"{db_path}-shm", "rb") as file:
            self._map = mmap.mmap(file.fileno(), _HEADER_BYTES, access=mmap.ACCESS_READ)
        if _U32.unpack_from(self._map, _VERSION_AT)[0] != _WAL_INDEX_VERSION:
            self._map.close()
            raise ValueError("unknown wal-index version")

    def frames(self) -> int:
        """Frames in the WAL (its length since it last started again)."""
        frames: int = _U32.unpack_from(self._map, _MX_FRAME_AT)[0]
        return frames

    def copied(self) -> int:
        """Frames of the WAL already copied into the database."""
        copied: int = _U32.unpack_from(self._map, _BACKFILL_AT)[0]
        return copied

    def uncopied(self) -> int:
        """Frames of the WAL not yet copied into the database."""
        return self.frames() - self.copied()

    def close(self) -> None:
        self._map.close()


def run_checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """One passive checkpoint: (busy, frames in the WAL, frames copied)."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


class Checkpointer:
    """A thread that checkpoints the WAL when the writer says enough of it is uncopied.

    Args:
        index: The WAL's counters (the checkpointer closes it).
        connect: Opens the thread's connection (called on the thread).
        pages: The WAL's length in frames from which commits wake the thread.
    """

    def __init__(
        self, index: WalIndex, connect: Callable[[], sqlite3.Connection], pages: int
    ) -> None:
        self.index = index
        self._connect = connect
        self._pages = pages
        self._wanted = threading.Event()
        self._copying = threading.Lock()  # held during a checkpoint, the thread's or not
        self._stopping = False
        self.checkpoints = 0
        """Checkpoints the thread ran."""
        self.errors = 0
        """Checkpoints that failed (logged)."""
        self.backstops = 0
        """Checkpoints the writer ran itself, the thread behind."""
        self.ran = threading.Event()
        """Set after each checkpoint the thread ran (tests wait on it)."""
        self._thread = threading.Thread(
            target=self._loop, name="prefactor-sqlite-checkpointer", daemon=True
        )
        self._thread.start()

    def committed(self, conn: sqlite3.Connection) -> None:
        """Called by the writer after each commit, on its connection ``conn``.

        Wakes the thread while the WAL holds ``pages`` frames or more (SQLite's own
        checkpoint goes by the WAL's length too) and a sixteenth of that is uncopied:
        after a checkpoint, the frames committed during it wait for a few more commits,
        not for another ``pages``, and once all are copied the writer's next transaction
        starts the WAL again. At twice ``pages`` the thread has not kept up (writes
        without a pause, failing checkpoints): the writer then waits for the thread's
        checkpoint to end and copies what is left itself, so the WAL starts again.
        """
        index = self.index
        frames = index.frames()
        if frames < self._pages:
            return
        uncopied = frames - index.copied()
        if frames >= 2 * self._pages and uncopied > 0:
            with self._copying:
                self.backstops += 1
                try:
                    sqlite3.Connection.execute(conn, "PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    self.errors += 1
                    logger.exception("the writer's WAL checkpoint failed (the writes go on)")
        elif uncopied >= self._pages // 16 and not self._wanted.is_set():
            self._wanted.set()

    def _loop(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            self.errors += 1
            logger.exception("the WAL checkpointer could not open its connection")
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    # The writer has stopped: one last checkpoint copies what it left.
                    self._checkpoint(conn)
                    return
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # A pass copies the frames the WAL held when it started; the commits made
        # meanwhile wake the thread again (see committed) for another, shorter pass.
        try:
            with self._copying:
                run_checkpoint(conn)
        except sqlite3.Error:
            self.errors += 1
            logger.exception("WAL checkpoint failed (the writes go on)")
        else:
            self.checkpoints += 1
        self.ran.set()

    def close(self) -> None:
        """Run a last checkpoint, stop the thread and close its connection (call after
        the writer has stopped; idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        self._wanted.set()
        self._thread.join()
        self.index.close()
