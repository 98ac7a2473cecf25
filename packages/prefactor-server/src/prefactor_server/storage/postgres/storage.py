"""PostgreSQL storage: pooled connections, one transaction per read or write call.

Unlike SQLite there is no single writer: each :meth:`PostgresStorage.write` runs on a
worker thread with its own pooled connection, concurrently with other writes of this and
other server processes. The sessions (:mod:`.queries`, :mod:`.writes`) lock what a
read-check-write needs, so the result is the same as running the writes one after the
other. A write that PostgreSQL aborts for a deadlock or a serialisation failure runs again
(its function is pure apart from the session, and the request's context is rebuilt
inside it).

The storage protocol is synchronous (the domain code runs inside one transaction without
awaiting), so this backend uses psycopg 3's synchronous connections and
``psycopg_pool.ConnectionPool`` on a small thread pool, exactly as the SQLite backend
runs on threads; the event loop only awaits the result.

Example::

    storage = PostgresStorage("postgresql://prefactor@db.internal/prefactor")
    account = storage.read_sync(lambda s: s.first_account())
    storage.close()
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import errors
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from prefactor_server._time import now
from prefactor_server.settings import redact_url
from prefactor_server.storage.base import ReadSession, StorageClosedError, WriteSession
from prefactor_server.storage.postgres.migrations import apply_migrations, pending_migrations
from prefactor_server.storage.postgres.queries import PgReadSession
from prefactor_server.storage.postgres.writes import PgWriteSession, RetryWithoutBuffering

__all__ = ["PostgresStorage", "StorageOpenError", "connect"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

_ATTEMPTS = 8  # runs of one write before a deadlock or serialisation failure is final
_RETRY = (errors.DeadlockDetected, errors.SerializationFailure)


class StorageOpenError(RuntimeError):
    """The database cannot be used (unreachable, refused, or its schema is behind)."""


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(orjson.loads, conn)
    set_json_dumps(orjson.dumps, conn)


def connect(url: str, *, timeout: float = 10.0) -> psycopg.Connection[Any]:
    """Open one connection to ``url`` or raise :class:`StorageOpenError` saying why."""
    try:
        conn = psycopg.connect(url, connect_timeout=max(1, int(timeout)))
    except (psycopg.Error, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageOpenError(f"cannot connect to {redact_url(url)}: {reason}") from None
    _configure(conn)
    return conn


class PostgresStorage:
    """The PostgreSQL backend of :class:`~prefactor_server.storage.base.Storage`.

    Opening checks the connection and applies missing migrations (under an advisory lock,
    so several processes may start at once), then opens the pool.

    Args:
        url: A libpq URL, e.g. ``postgresql://user:password@host:5432/db``.
        pool_size: The most connections (and worker threads) this process uses.
        migrate: Apply missing migrations (else refuse to start when some are missing).

    Raises:
        StorageOpenError: The database is unreachable or its schema is behind.
    """

    def __init__(self, url: str, *, pool_size: int = 8, migrate: bool = True) -> None:
        self.url = url
        with connect(url) as conn:
            if migrate:
                applied = apply_migrations(conn, now())
                if applied:
                    logger.info("applied migrations %s", ", ".join(applied))
            else:
                missing = pending_migrations(conn)
                if missing:
                    raise StorageOpenError(
                        f"{redact_url(url)} lacks migrations {', '.join(missing)}: "
                        "run `prefactor db migrate`"
                    )
        self._closed = False
        self._lock = threading.Lock()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=_configure,
            check=ConnectionPool.check_connection,
            name="prefactor",
            open=False,
        )
        self._pool.open(wait=True, timeout=30.0)
        self._threads = ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="prefactor-postgres"
        )

    def __repr__(self) -> str:
        return f"PostgresStorage({redact_url(self.url)!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosedError("storage is closed")

    # -- the work, on a worker thread ----------------------------------------------------

    def _write(self, fn: Callable[[WriteSession], T]) -> T:
        buffer_spans = True
        for attempt in range(_ATTEMPTS):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    session = PgWriteSession(conn, buffer_spans=buffer_spans)
                    result = fn(session)
                    session.finish()
                return result
            except RetryWithoutBuffering:
                buffer_spans = False
            except _RETRY as exc:
                if attempt == _ATTEMPTS - 1:
                    raise
                logger.info("write retried after %s", type(exc).__name__)
                time.sleep(0.005 * 2**attempt)
        raise RuntimeError("write did not finish")  # pragma: no cover - the loop returns

    def _read(self, fn: Callable[[ReadSession], T]) -> T:
        with self._pool.connection() as conn:
            # One snapshot for the whole call, so counts and rows agree (BEGIN and its
            # mode in one round trip).
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                return fn(PgReadSession(conn))
            finally:
                conn.execute("ROLLBACK")  # read only: nothing to commit

    # -- the protocol --------------------------------------------------------------------

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        """Run ``fn`` in one write transaction on a pooled connection.

        Raises:
            StorageClosedError: The storage is closed.
            Exception: Whatever ``fn`` raised (the transaction is rolled back).
        """
        self._check_open()
        return await asyncio.wrap_future(self._threads.submit(self._write, fn))

    def write_sync(self, fn: Callable[[WriteSession], T]) -> T:
        """Run ``fn`` in one write transaction and wait for it."""
        self._check_open()
        return self._threads.submit(self._write, fn).result()

    async def read(self, fn: Callable[[ReadSession], T]) -> T:
        """Run ``fn`` on a read-only snapshot.

        Raises:
            StorageClosedError: The storage is closed.
        """
        self._check_open()
        return await asyncio.wrap_future(self._threads.submit(self._read, fn))

    def read_sync(self, fn: Callable[[ReadSession], T]) -> T:
        """Run ``fn`` on a read-only snapshot and wait for it."""
        self._check_open()
        return self._threads.submit(self._read, fn).result()

    def close(self) -> None:
        """Finish running calls and close the pool (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._threads.shutdown(wait=True)
        self._pool.close()
