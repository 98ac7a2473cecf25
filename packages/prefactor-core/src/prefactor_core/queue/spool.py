"""The spool: a queue that keeps every operation on disk until it is delivered.

With ``PrefactorCoreConfig(spool_path=...)`` each operation is written to a SQLite file
as it is queued, and deleted once the server has acknowledged it. If the process dies
(a crash, SIGKILL, an OOM kill), the next client that opens the same spool sends what
was left first, with the same idempotency keys, so operations the server had already
stored (but not acknowledged) are not stored twice.

The write happens on the agent's path, which makes each enqueue cost a SQLite insert
(tens of microseconds) instead of a list append: durability is opt-in. The file uses
WAL with ``synchronous=OFF``: a committed insert survives the death of the process,
though not necessarily a crash of the whole machine.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from prefactor_core._engine.optable import MERGED_FINISH, RECOVERED
from prefactor_core.operations import Operation, OperationType
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["SpoolLockedError", "SpoolQueue"]

logger = logging.getLogger("prefactor_core.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    key  TEXT NOT NULL UNIQUE,
    data BLOB NOT NULL
)
"""


class SpoolLockedError(RuntimeError):
    """Another live process has the spool open."""


def _lock(path: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on ``<spool>.lock`` for as long as the spool is open.

    Two processes sharing one spool would each send the other's operations; the lock
    makes the second one fail at once instead. The OS drops the lock when the holder
    dies, however it dies.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process guard
        return None
    handle = open(f"{path}.lock", "wb")  # noqa: SIM115 - held open for the spool's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SpoolLockedError(f"the spool {path} is in use by another process") from None
    return handle


def _encode(op: Operation) -> bytes:
    created = op._created
    metadata = {k: v for k, v in op.metadata.items() if k != RECOVERED}
    return orjson.dumps(
        {
            "type": op.type.name,
            "payload": op.payload,
            "created": created if isinstance(created, float) else created.timestamp(),
            "metadata": metadata,
        }
    )


def _decode(key: str, data: bytes) -> Operation:
    fields: dict[str, Any] = orjson.loads(data)
    # An earlier process may have sent it already (the server stored it but the answer
    # was lost): it must go out again exactly as it was, never merged with a later
    # operation, so that the server recognises the replay.
    metadata = {**(fields.get("metadata") or {}), RECOVERED: True}
    return Operation(
        OperationType[fields["type"]],
        fields["payload"],
        float(fields["created"]),
        key,
        metadata,
    )


class SpoolQueue(InMemoryQueue[Operation]):
    """An ``InMemoryQueue`` of operations backed by a SQLite file.

    Operations left in the file by an earlier process are loaded first, in the order
    they were queued. ``ack()`` removes delivered operations from the file.

    Example::

        queue = SpoolQueue("/var/lib/my-agent/prefactor-spool.db", maxsize=100_000)
        client = PrefactorCoreClient(config, queue=queue)

    Args:
        path: The spool file (created when missing).
        maxsize: The most operations held (0: unbounded). Recovered operations count.
        put_timeout: How long ``put`` waits for room in a full queue.

    Raises:
        SpoolLockedError: If another live process has this spool open.
    """

    def __init__(
        self, path: str | os.PathLike[str], maxsize: int = 0, *, put_timeout: float = 0.0
    ) -> None:
        super().__init__(maxsize, put_timeout=put_timeout)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_handle = _lock(self.path)
        # Autocommit: every insert is its own transaction, durable once it returns.
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_SCHEMA)
        rows = self._db.execute("SELECT key, data FROM operations ORDER BY seq").fetchall()
        for key, data in rows:
            self._items.append(_decode(key, data))
        self.recovered = len(rows)
        """How many operations an earlier process had left in the spool."""
        if rows:
            logger.info("recovered %d undelivered operation(s) from %s", len(rows), self.path)

    def _admit(self, item: Operation) -> None:
        if item.idempotency_key is None:
            raise ValueError("only operations with an idempotency key can be spooled")
        db = self._require_db()
        db.execute(
            "INSERT OR IGNORE INTO operations (key, data) VALUES (?, ?)",
            (item.idempotency_key, _encode(item)),
        )

    def ack(self, ops: Iterable[Operation]) -> None:
        """Forget delivered operations (a merged span create also clears its finish)."""
        keys: list[str] = []
        for op in ops:
            if op.idempotency_key is not None:
                keys.append(op.idempotency_key)
            merged = op.metadata.get(MERGED_FINISH)
            if isinstance(merged, str):
                keys.append(merged)
        if keys and self._db is not None:
            self._db.executemany("DELETE FROM operations WHERE key = ?", [(k,) for k in keys])

    def pending(self) -> int:
        """How many operations the file holds (queued or in flight, not yet delivered)."""
        return int(self._require_db().execute("SELECT count(*) FROM operations").fetchone()[0])

    def dispose(self) -> None:
        """Close the file and release the lock; undelivered operations stay for next time."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def _require_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"the spool {self.path} is closed")
        return self._db
