"""The PostgreSQL backend: for a team, several server processes on one database.

Needs the ``postgres`` extra (``pip install 'prefactor-server[postgres]'``: psycopg 3 and
psycopg_pool).
"""

from prefactor_server.storage.postgres.storage import PostgresStorage, StorageOpenError

__all__ = ["PostgresStorage", "StorageOpenError"]
