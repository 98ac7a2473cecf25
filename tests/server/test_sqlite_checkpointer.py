"""SQLite's WAL is checkpointed on a thread of its own, woken by the writer after a commit
that leaves enough of the WAL uncopied, so no write's answer waits for a checkpoint; the
writer's own checkpoint stays as a backstop, so the WAL is bounded even when the thread's
checkpoints fail, and a reader's snapshot holds the WAL only while it is held. A failed
checkpoint is logged and counted and the writes go on; close runs a last checkpoint and
stops the thread, and what was written reads back after a reopen."""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from prefactor_server.storage.sqlite import checkpointer as checkpointer_module
from prefactor_server.storage.sqlite.checkpointer import Checkpointer, WalIndex
from prefactor_server.storage.sqlite.storage import SqliteStorage
from prefactor_server.storage.sqlite.writes import SqliteWriteSession

PAGES = 32
"""The WAL length that wakes the checkpointer in these tests (the backstop: 64)."""
COMMIT_FRAMES = 8
"""At most this many frames per commit of :func:`_write` (a 3-page blob and the tree)."""


def _write(storage: SqliteStorage, n: int = 1) -> None:
    """``n`` commits of a few pages each (a blob that overflows its page)."""

    def job(session: object) -> None:
        assert isinstance(session, SqliteWriteSession)
        session.conn.execute("CREATE TABLE IF NOT EXISTS scratch (b BLOB)")
        session.conn.execute("INSERT INTO scratch VALUES (randomblob(3 * 8192))")

    for _ in range(n):
        storage.write_sync(job)


def _checkpointer(storage: SqliteStorage) -> Checkpointer:
    assert storage.checkpointer is not None
    return storage.checkpointer


def _rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        count: int = db.execute("SELECT count(*) FROM scratch").fetchone()[0]
    return count


def test_the_thread_checkpoints_once_enough_is_uncopied_and_the_wal_starts_again(
    tmp_path: Path,
) -> None:
    storage = SqliteStorage(tmp_path / "c.db", checkpoint_pages=PAGES)
    try:
        checkpointer = _checkpointer(storage)
        index = checkpointer.index
        # Below the threshold the thread is not woken.
        while index.uncopied() + COMMIT_FRAMES < PAGES:
            _write(storage)
        assert not checkpointer.ran.is_set()
        while not checkpointer.ran.is_set() and index.uncopied() < PAGES:
            _write(storage)
        # The commit that crossed the threshold woke the thread (the writer's own
        # checkpoint comes only at twice as many frames).
        assert checkpointer.ran.wait(timeout=60)
        assert checkpointer.checkpoints >= 1
        assert checkpointer.errors == 0
        assert index.uncopied() == 0
        frames_before = index.frames()
        assert frames_before >= PAGES
        # Every frame copied: the next write starts the WAL from its beginning.
        _write(storage)
        assert index.frames() <= COMMIT_FRAMES
    finally:
        storage.close()


def test_once_the_wal_is_long_every_commit_wakes_the_thread_until_it_is_all_copied(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    pages = 96
    storage = SqliteStorage(path, checkpoint_pages=pages)
    try:
        checkpointer = _checkpointer(storage)
        index = checkpointer.index
        _write(storage)
        while index.frames() + 2 * COMMIT_FRAMES < pages:
            _write(storage)
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM scratch").fetchall()
            held = index.frames()
            while index.frames() < pages:
                _write(storage)
            # The checkpoint copies up to the reader's snapshot only.
            assert checkpointer.ran.wait(timeout=60)
            assert index.copied() <= held < index.frames()
            reader.execute("COMMIT")
        # Fewer than ``pages`` frames are uncopied now, yet the next commit wakes the
        # thread (the WAL is that long), and a checkpoint copies the rest (below the
        # writer's own checkpoint at twice ``pages``).
        for _ in range(4):
            checkpointer.ran.clear()
            _write(storage)
            assert index.frames() < 2 * pages
            assert checkpointer.ran.wait(timeout=60)
            if index.uncopied() == 0:
                break
        assert index.uncopied() == 0
        _write(storage)
        assert index.frames() <= COMMIT_FRAMES  # so the WAL started again
    finally:
        storage.close()


def test_failing_checkpoints_are_logged_and_counted_and_the_writer_bounds_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(conn: sqlite3.Connection) -> tuple[int, int, int]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(checkpointer_module, "run_checkpoint", fail)
    storage = SqliteStorage(tmp_path / "c.db", checkpoint_pages=PAGES)
    checkpointer = _checkpointer(storage)
    try:
        largest = 0
        for _ in range(60):  # ~6 times the backstop's frames in all
            _write(storage)
            largest = max(largest, checkpointer.index.frames())
        assert largest <= 2 * PAGES + COMMIT_FRAMES
    finally:
        with caplog.at_level(logging.ERROR, logger=checkpointer_module.__name__):
            storage.close()
    # The last checkpoint at close ran on the thread, failed and was counted.
    assert checkpointer.errors >= 1
    assert checkpointer.checkpoints == 0
    assert "WAL checkpoint failed" in caplog.text
    assert _rows(tmp_path / "c.db") == 60


def test_the_writers_own_checkpoint_waits_for_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At twice the length the writer copies what is left itself, after the thread's
    checkpoint (a passive checkpoint while another runs would copy nothing)."""
    storage = SqliteStorage(tmp_path / "c.db", checkpoint_pages=PAGES)
    checkpointer = _checkpointer(storage)
    in_pass, go, writer_waits = threading.Event(), threading.Event(), threading.Event()
    run_checkpoint = checkpointer_module.run_checkpoint

    def slow_first_pass(conn: sqlite3.Connection) -> tuple[int, int, int]:
        if not in_pass.is_set():
            in_pass.set()
            assert go.wait(timeout=60)
        return run_checkpoint(conn)

    class Watched:
        """The checkpointer's lock, telling when the writer thread waits for it."""

        def __init__(self) -> None:
            self._lock = threading.Lock()

        def __enter__(self) -> None:
            if threading.current_thread().name == "prefactor-sqlite-writer":
                writer_waits.set()
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    monkeypatch.setattr(checkpointer_module, "run_checkpoint", slow_first_pass)
    monkeypatch.setattr(checkpointer, "_copying", Watched())
    index = checkpointer.index
    writer = threading.Thread(target=lambda: _write(storage, 60))
    try:
        _write(storage)
        while not in_pass.is_set():
            _write(storage)
        writer.start()  # on to twice the length while the thread's pass is held
        assert writer_waits.wait(timeout=60)
        assert checkpointer.backstops == 0
        go.set()
        writer.join()
        assert checkpointer.backstops >= 1
        assert index.frames() <= 2 * PAGES + COMMIT_FRAMES
    finally:
        go.set()
        if writer.is_alive():
            writer.join()
        storage.close()


def test_a_readers_snapshot_holds_the_wal_only_while_held(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    storage = SqliteStorage(path, checkpoint_pages=PAGES)
    try:
        _write(storage)
        index = _checkpointer(storage).index
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM scratch").fetchone()[0] == 1
            _write(storage, 40)
            # No checkpoint can copy past the reader's snapshot: the WAL grew.
            assert index.frames() > 2 * PAGES + COMMIT_FRAMES
            assert reader.execute("SELECT count(*) FROM scratch").fetchone()[0] == 1
            reader.execute("COMMIT")
        for _ in range(200):
            _write(storage)
            if index.frames() <= COMMIT_FRAMES:
                break
        # Once it let go, a checkpoint copied everything and the WAL started again.
        assert index.frames() <= COMMIT_FRAMES
    finally:
        storage.close()


def test_close_checkpoints_stops_the_thread_and_the_data_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    storage = SqliteStorage(path, checkpoint_pages=1000)
    checkpointer = _checkpointer(storage)
    _write(storage, 3)  # far below the threshold: nothing checkpointed yet
    assert checkpointer.index.uncopied() > 0
    # Another process's connection stays open: SQLite's own checkpoint when the last
    # connection closes does not happen, the checkpointer's last one does.
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("SELECT count(*) FROM scratch").fetchall() == [(3,)]
        storage.close()
        storage.close()  # idempotent
        assert checkpointer.checkpoints == 1
        index = WalIndex(path)
        try:
            assert index.frames() > 0
            assert index.uncopied() == 0
        finally:
            index.close()
    assert not [t for t in threading.enumerate() if t.name == "prefactor-sqlite-checkpointer"]
    # Every connection closed: the WAL was removed, the rows are in the database.
    assert not Path(f"{path}-wal").exists()
    assert _rows(path) == 3
    reopened = SqliteStorage(path, checkpoint_pages=PAGES)
    try:
        _write(reopened)
    finally:
        reopened.close()
    assert _rows(path) == 4


def test_without_a_wal_index_the_writer_checkpoints_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(db_path: Path) -> WalIndex:
        raise OSError("no -shm")

    monkeypatch.setattr("prefactor_server.storage.sqlite.storage.WalIndex", unreadable)
    path = tmp_path / "c.db"
    storage = SqliteStorage(path, checkpoint_pages=PAGES)
    try:
        assert storage.checkpointer is None
        index = WalIndex(path)
        try:
            largest = 0
            for _ in range(40):
                _write(storage)
                largest = max(largest, index.frames())
        finally:
            index.close()
        # SQLite's own checkpoint at the threshold itself, not at the backstop's twice.
        assert largest <= PAGES + COMMIT_FRAMES
    finally:
        storage.close()
    assert _rows(path) == 40
