"""SQLite queries of tokens and of the failed-authentication counter (a mixin of the sessions).

Kept apart from ``queries.py``: they guard authentication, not the API's resources.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from prefactor_server.storage.base import Record

__all__ = ["AuthReads", "AuthWrites"]


class AuthReads:
    """Token and failure look-ups (mixed into the read session)."""

    conn: sqlite3.Connection

    def find_token(self, token_hash: str) -> Record | None:
        row = self.conn.execute(
            "SELECT id, account_id, name, inserted_at, revoked_at FROM tokens WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        return None if row is None else dict(row)

    def list_tokens(self) -> list[Record]:
        rows = self.conn.execute(
            "SELECT id, account_id, name, inserted_at, revoked_at FROM tokens "
            "ORDER BY inserted_at, id"
        )
        return [dict(row) for row in rows]

    def auth_failures(self, client: str) -> tuple[int, float] | None:
        row: Any = self.conn.execute(
            "SELECT failures, window_start FROM auth_failures WHERE client = ?", (client,)
        ).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))


class AuthWrites:
    """Recording failed authentications (mixed into the write session)."""

    conn: sqlite3.Connection

    def record_auth_failure(self, client: str, now: float, window: float) -> tuple[int, float]:
        # Rows of windows long gone are dropped on the way: the table holds one row per
        # client that failed recently, however many clients there have been.
        self.conn.execute("DELETE FROM auth_failures WHERE window_start < ?", (now - window,))
        row: Any = self.conn.execute(
            "INSERT INTO auth_failures (client, failures, window_start) VALUES (?, 1, ?) "
            "ON CONFLICT (client) DO UPDATE SET failures = failures + 1 "
            "RETURNING failures, window_start",
            (client, now),
        ).fetchone()
        return int(row[0]), float(row[1])
