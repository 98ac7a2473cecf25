"""Fixtures shared by every test area: the PostgreSQL database of the storage backends.

PostgreSQL comes from ``PREFACTOR_TEST_POSTGRES_URL`` (``.ci/run`` starts a throwaway
cluster with ``scripts/postgres-test-cluster`` and exports it). Without a reachable
server the PostgreSQL tests skip, saying why, except under CI, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES_ENV = "PREFACTOR_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))


def _server_url() -> str:
    """Return the test server's URL, or skip (fail under CI) saying why there is none."""
    url = os.environ.get(POSTGRES_ENV, "")
    reason = ""
    if not url:
        reason = (
            f"{POSTGRES_ENV} is not set; start a throwaway PostgreSQL with "
            '`eval "$(scripts/postgres-test-cluster start)"`'
        )
    else:
        import psycopg

        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.Error as exc:
            reason = f"PostgreSQL at {url} is unreachable: {exc}"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(name="postgres_database", scope="session")
def fixture_postgres_database() -> Iterator[str]:
    """A database made for this test session, migrated once, dropped at the end."""
    import psycopg

    from prefactor_server.storage.postgres import PostgresStorage

    server = _server_url()
    name = f"prefactor_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    url = urlsplit(server)._replace(path=f"/{name}").geturl()
    PostgresStorage(url).close()
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def empty_tables(url: str) -> None:
    """Delete every row except the record of applied migrations."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migrations'"
            )
        ]
        conn.execute(("TRUNCATE " + ", ".join(tables)).encode())


@pytest.fixture(name="postgres_url")
def fixture_postgres_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, with empty tables."""
    empty_tables(postgres_database)
    return postgres_database


@pytest.fixture(name="backend", params=BACKENDS)
def fixture_backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn: ``sqlite`` or ``postgresql``."""
    backend: str = request.param
    return backend


@pytest.fixture(name="database")
def fixture_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    """A fresh database of ``backend``: a SQLite file, or the PostgreSQL URL (emptied).

    Pass it where ``--db`` or ``LocalServer(db_path)`` takes a file or a URL.
    """
    if backend == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return tmp_path / "prefactor.db"


@pytest.fixture(name="module_database", scope="module", params=BACKENDS)
def fixture_module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str | Path:
    """A fresh database of each backend for a module's shared server (module-scoped
    fixtures, e.g. one served process for many tests): a SQLite file, or the session's
    PostgreSQL URL emptied when the module starts. Tests of such a module must not also
    use ``database`` on PostgreSQL (it empties the same tables)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        empty_tables(url)
        return url
    path: Path = tmp_path_factory.mktemp("db") / "prefactor.db"
    return path
