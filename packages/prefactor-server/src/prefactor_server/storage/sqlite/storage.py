"""SQLite storage: one file, WAL, one writer thread, separate read connections.

Every write runs on a single dedicated thread that owns the only writing connection, one
``BEGIN IMMEDIATE`` transaction per :meth:`SqliteStorage.write` call (datasette's
``Database`` does the same). So writers never contend for the lock, and a bulk request
of a thousand spans commits once. Reads run on a small thread pool, each thread with its
own connection; WAL lets them read while the writer writes.

Example::

    storage = SqliteStorage("prefactor.db")
    account = storage.read_sync(lambda s: s.first_account())
    storage.close()
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from prefactor_server._time import now
from prefactor_server.storage.base import (
    ReadSession,
    RetryWithoutBuffering,
    StorageClosedError,
    WriteSession,
)
from prefactor_server.storage.sqlite.checkpointer import (
    CHECKPOINT_PAGES,
    Checkpointer,
    WalIndex,
)
from prefactor_server.storage.sqlite.migrations import apply_migrations
from prefactor_server.storage.sqlite.queries import SqliteReadSession
from prefactor_server.storage.sqlite.writer_connection import WriterConnection
from prefactor_server.storage.sqlite.writes import SqliteWriteSession

__all__ = ["PAGE_SIZE", "SqliteStorage"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

_STOP = object()
_READ_THREADS = 2
PAGE_SIZE = 8192
"""The page size of a database this storage creates."""


def _connect(
    path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection
) -> sqlite3.Connection:
    # check_same_thread=False only so close() may close a connection from another thread;
    # each connection is otherwise used by exactly one thread.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=factory
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def _create_private(path: Path) -> None:
    """Create a missing database file readable by its owner only (0600).

    It holds token hashes and every payload. SQLite gives its ``-wal`` and ``-shm`` files
    the main file's permissions, so they are private too. An existing file is left as it is.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class SqliteStorage:
    """The SQLite backend of :class:`~prefactor_server.storage.base.Storage`.

    Opening applies pending migrations and starts the writer thread, so the storage works
    without an ASGI lifespan (tests drive the app through ``httpx.ASGITransport``).

    Args:
        path: The database file (created with its directory when missing).
        checkpoint_pages: WAL frames not yet copied into the database that wake the
            checkpointer's thread (``checkpointer.py``); the writer's own checkpoint, a
            backstop, comes at twice as many.

    Attributes:
        checkpointer: The WAL checkpointer (its ``errors`` count failed checkpoints), or
            None when the WAL index cannot be read and SQLite checkpoints by itself.
    """

    keeps_otlp_journal = True
    """OTLP exports are answered once journaled (``storage/journal.py``): one server
    process owns the file, so its reads can wait for what it answered."""

    def __init__(self, path: str | Path, *, checkpoint_pages: int = CHECKPOINT_PAGES) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._closed = False
        self._lock = threading.Lock()
        self._writer_conn = _connect(self.path, WriterConnection)
        # A new database gets 8 KiB pages (SQLite's default is 4 KiB; an existing file keeps
        # its size): a span row is about 500 bytes, so a 4 KiB page holds a handful, and
        # inserts keyed by random ids (OTLP, other SDKs) split pages all the time. Measured
        # (30,000 spans, 1,000 per transaction, CPU per row): random ids 19-24 µs → 16,
        # time-ordered ids 6.3 → 5.8-6.3. Must come before the first table is created.
        self._writer_conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        self._writer_conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can
        # lose the last commits, which is the right trade for a local telemetry store.
        self._writer_conn.execute("PRAGMA synchronous = NORMAL")
        # Bulk span ingest (OTLP) dirties pages all over six B-trees keyed by random ids: a
        # 64 MiB page cache (instead of 2 MiB) keeps them in memory between transactions,
        # and checkpointing every 10,000 WAL pages (instead of 1,000) copies a page that
        # changed in many transactions back to the database once. The checkpoints run on
        # the checkpointer's thread, woken by the writer's commits once the WAL is that
        # long (not the timed one measured and dropped in BENCHMARKS.md); the writer's
        # own, at twice as many, is a backstop (checkpointer.py).
        self._writer_conn.execute("PRAGMA cache_size = -65536")
        self._writer_conn.execute(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")
        apply_migrations(self._writer_conn, now())
        self.checkpointer = self._start_checkpointer(checkpoint_pages)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, name="prefactor-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._read_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(
            max_workers=_READ_THREADS, thread_name_prefix="prefactor-sqlite-reader"
        )

    def _start_checkpointer(self, pages: int) -> Checkpointer | None:
        try:
            index = WalIndex(self.path)
        except (OSError, ValueError):
            # No wal-index to read (another SQLite build, a file system without it): the
            # writer keeps checkpointing by itself, as SQLite does.
            logger.warning("no WAL index to read; SQLite checkpoints in the writer's commits")
            return None
        self._writer_conn.execute("PRAGMA wal_autocheckpoint = 0")

        def connect() -> sqlite3.Connection:
            conn = _connect(self.path)
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn

        return Checkpointer(index, connect, pages)

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self.path)!r})"

    # -- writes -------------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = self._writer_conn
        session = SqliteWriteSession(conn)
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            fn, future = job
            job = None
            if not future.set_running_or_notify_cancel():
                continue
            # The job and its result are let go before the next wait: what a job holds
            # (a request's items, an export's rows) is freed by its caller, not kept
            # alive here until the next write comes.
            try:
                result = self._run(session, fn)
            except BaseException as exc:
                fn = None
                future.set_exception(exc)
            else:
                fn = None
                future.set_result(result)
                result = None
            future = None
        conn.close()

    def _run(self, session: SqliteWriteSession, fn: Callable[[WriteSession], T]) -> T:
        """One write transaction; run again without span buffering if a buffered insert
        collided (so the colliding item answers as it would have)."""
        conn = self._writer_conn
        session.buffer_spans = True
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                session.begin()
                result = fn(session)
                session.flush()
                conn.execute("COMMIT")
                if self.checkpointer is not None:
                    self.checkpointer.committed(conn)
                return result
            except RetryWithoutBuffering:
                session.discard()
                conn.execute("ROLLBACK")
                session.buffer_spans = False
            except BaseException:
                session.discard()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _submit_write(self, fn: Callable[[WriteSession], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise StorageClosedError("storage is closed")
            self._jobs.put((fn, future))
        return future

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        """Run ``fn`` in one write transaction on the writer thread.

        Raises:
            StorageClosedError: The storage is closed.
            Exception: Whatever ``fn`` raised (the transaction is rolled back).
        """
        return await asyncio.wrap_future(self._submit_write(fn))

    def write_sync(self, fn: Callable[[WriteSession], T]) -> T:
        """Run ``fn`` in one write transaction and wait for it (never call from the writer)."""
        return self._submit_write(fn).result()

    # -- reads --------------------------------------------------------------------------

    def _read(self, fn: Callable[[ReadSession], T]) -> T:
        session: SqliteReadSession | None = getattr(self._local, "session", None)
        if session is None:
            conn = _connect(self.path)
            with self._lock:
                self._read_conns.append(conn)
            session = SqliteReadSession(conn)
            self._local.session = session
        # Reads group into one implicit snapshot so counts and rows agree.
        session.conn.execute("BEGIN")
        try:
            return fn(session)
        finally:
            session.conn.execute("COMMIT")

    async def read(self, fn: Callable[[ReadSession], T]) -> T:
        """Run ``fn`` on a read connection of the pool.

        Raises:
            StorageClosedError: The storage is closed.
        """
        if self._closed:
            raise StorageClosedError("storage is closed")
        return await asyncio.wrap_future(self._readers.submit(self._read, fn))

    def read_sync(self, fn: Callable[[ReadSession], T]) -> T:
        """Run ``fn`` on a read connection and wait for it."""
        if self._closed:
            raise StorageClosedError("storage is closed")
        return self._readers.submit(self._read, fn).result()

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, stop the threads and close the connections (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(_STOP)
        self._writer.join()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self._readers.shutdown(wait=True)
        for conn in self._read_conns:
            conn.close()
        self._read_conns.clear()
