"""PostgreSQL queries of tokens and of the failed-authentication counter (session mixins).

The counter is a table, not process memory: every server process on the database sees
and bumps the same row per client. ``INSERT … ON CONFLICT DO UPDATE`` makes two processes
counting one client's failures at the same moment add up (the second waits for the
first's row lock, then increments what it committed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString, cast

from prefactor_server.storage import statements as q
from prefactor_server.storage.base import Record, TokenRow

__all__ = ["PgAuthReads", "PgAuthWrites"]

_FIND_TOKEN = q.pg(q.FIND_TOKEN)
_LIST_TOKENS = q.pg(q.LIST_TOKENS)
_AUTH_FAILURES = q.pg(q.AUTH_FAILURES)


class PgAuthReads:
    """Token and failure look-ups (mixed into the read session, which runs the SQL)."""

    def _one(self, query: LiteralString, params: Sequence[Any]) -> dict[str, Any] | None:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def _all(self, query: LiteralString, params: Sequence[Any]) -> list[Record]:
        raise NotImplementedError  # pragma: no cover - the session provides it

    def find_token(self, token_hash: str) -> TokenRow | None:
        return cast(TokenRow | None, self._one(_FIND_TOKEN, (token_hash,)))

    def list_tokens(self) -> list[TokenRow]:
        return cast(list[TokenRow], self._all(_LIST_TOKENS, ()))

    def auth_failures(self, client: str) -> tuple[int, float] | None:
        row = self._one(_AUTH_FAILURES, (client,))
        return None if row is None else (int(row["failures"]), float(row["window_start"]))


class PgAuthWrites(PgAuthReads):
    """Recording failed authentications (mixed into the write session)."""

    def record_auth_failure(self, client: str, now: float, window: float) -> tuple[int, float]:
        # Rows of ended windows go on the way (by the window_start index): the table holds
        # one row per client that failed recently, however many clients there have been.
        self._one(
            "WITH gone AS (DELETE FROM auth_failures WHERE window_start < %s RETURNING 1) "
            "SELECT count(*) AS n FROM gone",
            (now - window,),
        )
        row = self._one(
            "INSERT INTO auth_failures (client, failures, window_start) VALUES (%s, 1, %s) "
            "ON CONFLICT (client) DO UPDATE SET failures = auth_failures.failures + 1 "
            "RETURNING failures, window_start",
            (client, now),
        )
        assert row is not None  # an upsert with RETURNING always answers one row
        return int(row["failures"]), float(row["window_start"])
