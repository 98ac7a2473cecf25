"""Storage: the domain-operation protocols and their backends (SQLite, PostgreSQL)."""

from prefactor_server.storage.base import (
    LISTS,
    Account,
    IdTaken,
    ListQuery,
    ListSpec,
    Page,
    ReadSession,
    Record,
    Storage,
    StorageClosedError,
    WriteSession,
)
from prefactor_server.storage.open import PostgresUnavailableError, open_storage
from prefactor_server.storage.sqlite import SqliteStorage

__all__ = [
    "LISTS",
    "Account",
    "IdTaken",
    "ListQuery",
    "ListSpec",
    "Page",
    "PostgresUnavailableError",
    "ReadSession",
    "Record",
    "SqliteStorage",
    "Storage",
    "StorageClosedError",
    "WriteSession",
    "open_storage",
]
