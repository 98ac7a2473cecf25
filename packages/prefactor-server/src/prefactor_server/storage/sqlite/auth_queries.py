"""SQLite queries of tokens and of the failed-authentication counter (a mixin of the sessions).

Kept apart from ``queries.py``: they guard authentication, not the API's resources.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import TokenRow

__all__ = ["AuthReads", "AuthWrites"]


class AuthReads:
    """Token and failure look-ups (mixed into the read session)."""

    conn: sqlite3.Connection

    def find_token(self, token_hash: str) -> TokenRow | None:
        row = self.conn.execute(q.FIND_TOKEN, (token_hash,)).fetchone()
        return None if row is None else cast(TokenRow, dict(row))

    def list_tokens(self) -> list[TokenRow]:
        return [cast(TokenRow, dict(row)) for row in self.conn.execute(q.LIST_TOKENS)]

    def auth_failures(self, client: str) -> tuple[int, float] | None:
        row: Any = self.conn.execute(q.AUTH_FAILURES, (client,)).fetchone()
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
