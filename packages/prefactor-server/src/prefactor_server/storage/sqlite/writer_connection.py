"""The writer thread's connection: runs a hook before every statement.

The write session buffers span inserts of a bulk request and writes them with a few
multi-row inserts; every other statement must see them, so the session installs its flush
as the hook and any ``execute``/``executemany`` on this connection writes the buffer
first. :meth:`WriterConnection.raw_execute` bypasses the hook (the flush itself).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["WriterConnection"]

_execute = sqlite3.Connection.execute
_executemany = sqlite3.Connection.executemany


class WriterConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=WriterConnection)``; ``before_statement`` is the hook."""

    before_statement: Callable[[], None] | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self.before_statement is not None:
            self.before_statement()
        return _execute(self, sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        if self.before_statement is not None:
            self.before_statement()
        return _executemany(self, sql, parameters)

    def raw_execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        """``execute`` without the hook."""
        return _execute(self, sql, parameters)
