"""Storage: the domain-operation protocols and their SQLite implementation."""

from prefactor_server.storage.base import (
    Account,
    IdTaken,
    ListQuery,
    Page,
    ReadSession,
    Record,
    Storage,
    WriteSession,
)
from prefactor_server.storage.sqlite import SqliteStorage, StorageClosedError

__all__ = [
    "Account",
    "IdTaken",
    "ListQuery",
    "Page",
    "ReadSession",
    "Record",
    "SqliteStorage",
    "Storage",
    "StorageClosedError",
    "WriteSession",
]
