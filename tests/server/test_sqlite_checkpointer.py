"""The SQLite checkpointer copies committed WAL pages into the database file on its own
thread, so the writer's commits do not pay for it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from prefactor_server.storage.sqlite.checkpointer import Checkpointer

pytestmark = pytest.mark.timeout(60)


class _Recording(sqlite3.Connection):
    """A connection that reports each checkpoint it ran."""

    done: threading.Event

    def execute(self, sql: str, parameters: object = (), /) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)  # type: ignore[arg-type]
        if "wal_checkpoint" in sql:
            self.done.set()
        return cursor


def test_committed_pages_reach_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # only the checkpointer copies pages
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(2000)])
    writer.execute("COMMIT")
    before = path.stat().st_size
    done = threading.Event()

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, factory=_Recording)
        assert isinstance(conn, _Recording)
        conn.done = done
        return conn

    checkpointer = Checkpointer(connect, interval=0.0)
    try:
        assert not done.is_set()  # nothing runs before a write is reported
        checkpointer.wrote()
        assert done.wait(30)
        assert path.stat().st_size > before + 500 * 1000
        assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
    finally:
        checkpointer.close()
        writer.close()
    checkpointer.close()  # idempotent
