"""Open the storage the settings name: the SQLite file, or the PostgreSQL URL."""

from __future__ import annotations

from prefactor_server.settings import Settings, redact_url
from prefactor_server.storage.base import Storage
from prefactor_server.storage.sqlite import SqliteStorage

__all__ = ["PostgresUnavailableError", "open_storage"]


class PostgresUnavailableError(RuntimeError):
    """A PostgreSQL URL was given but the driver (the ``postgres`` extra) is not installed."""


def open_storage(settings: Settings, *, migrate: bool = True) -> Storage:
    """Open the backend ``settings`` select (applying missing migrations unless told not to).

    Raises:
        PostgresUnavailableError: PostgreSQL is selected and psycopg is not installed.
        prefactor_server.storage.postgres.StorageOpenError: The database cannot be used.
    """
    if settings.database_url is None:
        return SqliteStorage(settings.db_path)
    try:
        from prefactor_server.storage.postgres import PostgresStorage
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise PostgresUnavailableError(
            f"{redact_url(settings.database_url)} needs the PostgreSQL driver: "
            "pip install 'prefactor-server[postgres]'"
        ) from exc
    return PostgresStorage(settings.database_url, migrate=migrate)
