"""The SQLite backend: one file, WAL, one writer thread (the embedded default)."""

from prefactor_server.storage.sqlite.storage import SqliteStorage

__all__ = ["SqliteStorage"]
