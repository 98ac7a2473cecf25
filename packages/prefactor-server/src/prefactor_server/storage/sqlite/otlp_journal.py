"""SQLite's OTLP journal (a mixin of the write session): the ``otlp_journal`` table.

See ``storage/journal.py`` for what it is for. A body is stored as the decompressed
bytes the exporter sent; its row is deleted in the transaction that stores its spans.
"""

from __future__ import annotations

import sqlite3

from prefactor_server.storage.journal import Journaled

__all__ = ["JournalRows"]


class JournalRows:
    """The journal's statements on the writer's connection."""

    conn: sqlite3.Connection

    def journal_export(self, account_id: str, media: str, body: bytes, received_at: str) -> int:
        cursor = self.conn.execute(
            "INSERT INTO otlp_journal (account_id, media, body, received_at) VALUES (?, ?, ?, ?)",
            (account_id, media, body, received_at),
        )
        journal_id = cursor.lastrowid
        assert journal_id is not None  # an INSERT into a rowid table always has one
        return journal_id

    def drop_journaled(self, journal_id: int) -> None:
        self.conn.execute("DELETE FROM otlp_journal WHERE id = ?", (journal_id,))

    def journaled(self, after: int, limit: int) -> list[Journaled]:
        rows = self.conn.execute(
            "SELECT id, account_id, media, body FROM otlp_journal WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Journaled(int(i), str(a), str(m), bytes(b)) for i, a, m, b in rows]
