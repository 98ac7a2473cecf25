"""The write session's span inserts (a mixin of ``SqliteWriteSession``).

Span inserts outside a savepoint are buffered, (account, id) → the row's values, and
written by :meth:`SpanBuffer.flush` with a few multi-row inserts before any other statement
runs on the writer connection (its hook, ``writer_connection.py``) or at the end of the
transaction. A buffered row ends in its ``keyed_create`` flag: whether the span stands for
its create's stored answer (``idempotency.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from functools import cache
from itertools import chain
from operator import itemgetter

import orjson

from prefactor_server.storage.base import IdTaken, NewSpan, RetryWithoutBuffering, SpanRow, new_span
from prefactor_server.storage.sqlite.decode import dumps
from prefactor_server.storage.sqlite.writer_connection import WriterConnection

__all__ = ["SpanBuffer"]

# Span inserts are the hot path of bulk ingestion: positional values (a NewSpan and its
# keyed_create flag).
_INSERT = (
    "INSERT INTO agent_spans (account_id, id, agent_instance_id, agent_id, parent_span_id, "
    "orphaned, schema_name, schema_title, status, payload, result_payload, summary, "
    "started_at, finished_at, inserted_at, updated_at, keyed_create) VALUES "
)
_WIDTH = 16  # the NewSpan's values
_ROW = "(" + ", ".join("?" * (_WIDTH + 1)) + ")"
_KEYED = (1,)
_PLAIN = (0,)
# The buffer is written with multi-row inserts of these sizes (largest first, so 1,000
# rows take 6 statements): one statement runs the VDBE program once for many rows
# (measured: ~1 µs less CPU per row than executemany's one row per step), and few sizes
# keep the statements in the connection's cache (compiling one costs ~3 µs per row).
# 512 rows bind 8,704 values, far below SQLite's limit of 32,766.
_SIZES = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)


@cache
def _insert_rows(count: int) -> str:
    """The INSERT statement of ``count`` rows."""
    return _INSERT + ", ".join([_ROW] * count)


_ID = itemgetter(1)
_ACCOUNT = itemgetter(0)


class SpanBuffer:
    """``flush``, ``add_span`` and ``insert_span`` of the SQLite write session.

    The session provides ``conn``, ``buffer_spans``, ``_depth`` (open savepoints),
    ``_spans``, ``_keyed`` (buffered spans marked by ``put_idempotent_many`` as standing
    for their create's answer), ``_buffered_orphans`` and the orphan bookkeeping
    ``_orphans``, ``_may_have_orphans``, ``_named_by_orphans`` and ``_adopt``.
    """

    conn: sqlite3.Connection
    buffer_spans: bool
    _depth: int
    _spans: dict[tuple[str, str], tuple[object, ...]]
    _keyed: set[tuple[str, str]]
    _buffered_orphans: bool
    _orphans: dict[str, bool]

    def _may_have_orphans(self, account_id: str) -> bool:
        raise NotImplementedError

    def _named_by_orphans(self, account_id: str, ids: Collection[str]) -> list[str]:
        raise NotImplementedError

    def _adopt(self, account_id: str, new_ids: list[str]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Write the buffered span inserts (in key order) and adopt their orphans.

        Raises:
            RetryWithoutBuffering: A buffered id is already stored; the storage runs the
                write again without buffering, so that item answers 409 as it would have.
        """
        if not self._spans:
            return
        spans, self._spans = self._spans, {}
        keyed, self._keyed = self._keyed, set()
        orphans, self._buffered_orphans = self._buffered_orphans, False
        for key in keyed:  # marked after they were buffered (the general path's creates)
            spans[key] = spans[key][:_WIDTH] + _KEYED
        rows = list(spans.values())
        rows.sort(key=_ID)  # key order: each B-tree page visited once
        conn = self.conn
        assert isinstance(conn, WriterConnection)
        # An orphan in the buffer may have its parent in it too.
        adopting = [
            account_id
            for account_id in set(map(_ACCOUNT, rows))
            if self._may_have_orphans(account_id) or orphans
        ]
        try:
            start, total = 0, len(rows)
            for size in _SIZES:
                while total - start >= size:
                    values = list(chain.from_iterable(rows[start : start + size]))
                    conn.raw_execute(_insert_rows(size), values)
                    start += size
        except sqlite3.IntegrityError:
            raise RetryWithoutBuffering() from None
        if orphans:
            for row in rows:
                if row[5]:
                    self._orphans[str(row[0])] = True
        for account_id in adopting:
            ids = {span_id for acc, span_id in spans if acc == account_id}
            self._adopt(account_id, self._named_by_orphans(account_id, ids))

    def add_span(self, row: NewSpan, keyed: bool = False) -> bool:
        account_id, span_id = row[0], row[1]
        if self.buffer_spans and self._depth == 0:
            key = (account_id, span_id)
            if key in self._spans:
                raise IdTaken(span_id)
            self._spans[key] = row + (_KEYED if keyed else _PLAIN)
            if row[5]:
                self._buffered_orphans = True
            return keyed
        try:
            self.conn.execute(_insert_rows(1), row + (_KEYED if keyed else _PLAIN))
        except sqlite3.IntegrityError as exc:
            raise IdTaken(span_id) from exc
        orphans = self._may_have_orphans(account_id)
        if row[5]:
            # Set after the lookup above, which has seen this span already.
            self._orphans[account_id] = True
        if orphans:
            # A child that arrived before this span pointed at an unknown id; it is no
            # longer an orphan.
            self.conn.execute(
                # INDEXED BY: without statistics the planner would pick the primary key and
                # scan every span of the account on every insert.
                "UPDATE agent_spans INDEXED BY agent_spans_orphans SET orphaned = 0 "
                "WHERE account_id = ? AND parent_span_id = ? "
                "AND orphaned = 1 AND agent_instance_id = ?",
                (account_id, span_id, row[2]),
            )
        return keyed

    def insert_span(self, record: SpanRow, encoded: tuple[str, str | None] | None = None) -> None:
        payload, result = encoded or (
            orjson.dumps(record["payload"]).decode(),
            dumps(record["result_payload"]),
        )
        self.add_span(new_span(record, payload, result))
