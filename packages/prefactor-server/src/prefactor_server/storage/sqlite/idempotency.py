"""SQLite's idempotency rows (a mixin of the write session), and the spans that stand in
for them.

A stored answer is a row of ``idempotency`` keyed by (account, action, key). One kind is
kept without a row: our SDK keys a span's create ``c-`` + the span id, and most of its
creates are terminal at once, so their answer is a reference to the span
(``domain/replays.py``). Such a span is written with ``keyed_create = 1`` instead of a
row, in the same transaction as its answer: by the bulk fast path, which knows the key
when it inserts the span (``add_span(row, keyed=True)``), and for the general path's
creates when the answer is stored while the span's insert is still buffered. The span
itself then records that key ``c-<id>`` of ``agent_spans/create`` was used, and a look-up
of that key finds the span by its primary key. That saves a row (and its B-tree insert)
per span on the bulk hot path. Any other answer, or a general-path span written before
its answer is stored, keeps a row as before; a key has at most one of the two (a second
use of a key finds the first and replays it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import itemgetter

from prefactor_http.models.types import ACTION_CREATE_SPAN
from prefactor_server._time import now

__all__ = ["KEY_PREFIX", "IdempotencyRows"]

KEY_PREFIX = "c-"
"""Our SDK's idempotency key of a span's create is this prefix and the span id."""

_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_IN_CHUNK = 500  # keys per "IN (...)" query, well below SQLite's bound-parameter limit
_ROWS = (
    "SELECT key, status, body FROM idempotency WHERE account_id = ? AND action = ? AND key IN ({})"
)
_SPANS = (
    " UNION ALL SELECT ? || id, 201, NULL FROM agent_spans "
    "WHERE account_id = ? AND id IN ({}) AND keyed_create = 1"
)
_REFERENCE = b"@"
# A request's keys are looked up by their range first when there are at least _RANGE_MIN
# of them: our SDK's keys are "c-" + time-ordered span ids, so a request's keys span a
# range that holds few stored rows and spans (usually none: new spans sort after the
# stored ones), and reading that range is one B-tree descent instead of one per key and
# table (measured: ~0.15 against ~0.6 ms per 1,000 new keys). Keys that are not ordered
# so (random ids) make a wide range: more than _RANGE_SLACK rows beyond the keys' count
# in it and the look-up probes every key as before, so the range costs a bounded scan.
_RANGE_MIN = 16
_RANGE_SLACK = 256
_ROW_KEYS = (
    "SELECT key FROM idempotency WHERE account_id = ? AND action = ? AND key >= ? AND key <= ? "
    "LIMIT ?"
)
_SPAN_IDS = (
    "SELECT id, keyed_create FROM agent_spans WHERE account_id = ? AND id >= ? AND id <= ? LIMIT ?"
)


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[start : start + _IN_CHUNK] for start in range(0, len(values), _IN_CHUNK)]


class IdempotencyRows:
    """``get_idempotent*`` and ``put_idempotent*`` of the write session.

    The session provides ``conn``, its buffered span inserts ``_spans`` ((account, id) →
    the row's values, ``span_buffer.py``) and ``_keyed``: the buffered spans marked here as
    standing for their create's stored answer (written with ``keyed_create = 1`` by its
    flush).
    """

    conn: sqlite3.Connection
    _spans: dict[tuple[str, str], tuple[object, ...]]
    _keyed: set[tuple[str, str]]

    def get_idempotent(self, account_id: str, action: str, key: str) -> tuple[int, bytes] | None:
        return self._look_up(account_id, action, [key]).get(key)

    def get_idempotent_many(
        self, account_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        actions = set(map(_FIRST, keys))
        by_action: dict[str, list[str]]
        if len(actions) == 1:  # the common request: one action (span creates)
            by_action = {actions.pop(): list(map(_SECOND, keys))}
        else:
            by_action = {}
            for action, key in keys:
                by_action.setdefault(action, []).append(key)
        found: dict[tuple[str, str], tuple[int, bytes]] = {}
        for action, names in by_action.items():
            for key, answer in self._look_up(account_id, action, names).items():
                found[(action, key)] = answer
        return found

    def _look_up(
        self, account_id: str, action: str, keys: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        """The stored answers of ``keys`` of ``action`` (key → (status, body)): their rows,
        and for span creates the spans that stand for theirs (201 and the reference), in
        through the keys' range when it is narrow (:meth:`_look_up_range`), else by
        :meth:`_probe`."""
        spans = action == ACTION_CREATE_SPAN
        if len(keys) >= _RANGE_MIN:
            ranged = self._look_up_range(account_id, action, keys, spans)
            if ranged is not None:
                return ranged
        return self._probe(account_id, action, keys, spans)

    def _look_up_range(
        self, account_id: str, action: str, keys: list[str], spans: bool
    ) -> dict[str, tuple[int, bytes]] | None:
        """:meth:`_look_up` through the keys' range (see ``_RANGE_MIN``), or None when the
        range holds too many rows or spans to read."""
        cap = len(keys) + _RANGE_SLACK
        execute = self.conn.execute
        low, high = min(keys), max(keys)
        stored = execute(_ROW_KEYS, (account_id, action, low, high, cap + 1)).fetchall()
        if len(stored) > cap:
            return None
        found: dict[str, tuple[int, bytes]] = {}
        # The keys are only gathered in a set when the ranges hold something (new keys
        # usually find both empty). Measured, 1,000 new keys: 0.18 → 0.05 ms per look-up.
        wanted: set[str] | None = None
        if spans:
            if low.startswith(KEY_PREFIX) and high.startswith(KEY_PREFIX):
                # Every key between two "c-" keys starts with "c-" too: the ids' range is
                # the keys' range without the prefix (no pass over the keys).
                ids = [low[2:], high[2:]]
            else:
                ids = [key[2:] for key in keys if key.startswith(KEY_PREFIX)]
            if ids:
                taken = execute(_SPAN_IDS, (account_id, min(ids), max(ids), cap + 1)).fetchall()
                if len(taken) > cap:
                    return None
                if taken:
                    wanted = set(keys)
                    for span_id, keyed in taken:
                        key = KEY_PREFIX + span_id
                        if keyed and key in wanted:
                            found[key] = (201, _REFERENCE + span_id.encode())
        if stored:  # a row wins over a span (they never coexist)
            if wanted is None:
                wanted = set(keys)
            rows = [key for (key,) in stored if key in wanted]
            if rows:
                found.update(self._probe(account_id, action, rows, False))
        return found

    def _probe(
        self, account_id: str, action: str, keys: list[str], spans: bool
    ) -> dict[str, tuple[int, bytes]]:
        """:meth:`_look_up` in one statement per chunk of keys: (account_id, action, key
        IN ...) is a prefix of the rows' primary key and (account_id, id IN ...) the
        spans': one probe per key, never a scan."""
        found: dict[str, tuple[int, bytes]] = {}
        for chunk in _chunks(keys):
            sql = _ROWS.format(",".join("?" * len(chunk)))
            params = [account_id, action, *chunk]
            ids = [key[2:] for key in chunk if key.startswith(KEY_PREFIX)] if spans else None
            if ids:
                sql += _SPANS.format(",".join("?" * len(ids)))
                params += [KEY_PREFIX, account_id, *ids]
            for key, status, body in self.conn.execute(sql, params):
                if body is not None:
                    found[key] = (status, bytes(body))
                else:  # a key has a row or a span, never both: the row would win
                    found.setdefault(key, (status, _REFERENCE + key[2:].encode()))
        return found

    def put_idempotent_many(
        self, account_id: str, rows: Sequence[tuple[str, str, int, bytes]]
    ) -> None:
        spans, keyed = self._spans, self._keyed
        kept = []
        stamp = now()  # one time for the rows of a request, bound: no SQL call per row
        mark = keyed.add
        for action, key, status, body in rows:
            span = (account_id, key[2:])  # the span a key "c-<id>" names (cheapest test first)
            if (
                span in spans
                and body == _REFERENCE + span[1].encode()
                and key[:2] == KEY_PREFIX
                and status == 201
                and action == ACTION_CREATE_SPAN
            ):
                mark(span)  # written by the flush, with the span
            else:
                kept.append((account_id, action, key, status, body, stamp))
        if kept:
            self.conn.executemany(
                "INSERT INTO idempotency (account_id, action, key, status, body, inserted_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                kept,
            )

    def put_idempotent(
        self, account_id: str, action: str, key: str, status: int, body: bytes
    ) -> None:
        self.conn.execute(
            "INSERT INTO idempotency (account_id, action, key, status, body, inserted_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (account_id, action, key, status, body, now()),
        )
