"""Choosing the database: a file, sqlite:///, a PostgreSQL URL; anything else refused at start.

Also ``prefactor db migrate|check`` and ``prefactor token`` on each backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from prefactor_server.cli import main
from prefactor_server.settings import Settings, SettingsError
from prefactor_server.storage import open_storage


@pytest.mark.parametrize(
    "value",
    [
        "mysql://root@db/prefactor",
        "http://example.invalid/x",
        "sqlite://relative.db",
        "postgresql:relative",
        Path("postgresql://user@host/db"),  # a Path folds "//": refused, not made a folder
    ],
)
def test_unknown_database_is_refused(value: Any) -> None:
    """An unusable --db value raises SettingsError naming the supported forms."""
    with pytest.raises(SettingsError, match="sqlite:///path or postgresql://user@host/db"):
        Settings(db_path=value)


def test_database_url_forms() -> None:
    """Files, sqlite:/// URLs and PostgreSQL URLs (flag or environment) are told apart."""
    assert Settings(db_path="data/x.db").db_path == Path("data/x.db")
    assert Settings(db_path="sqlite:///tmp/x.db").db_path == Path("tmp/x.db")
    assert Settings(db_path="sqlite:////tmp/x.db").db_path == Path("/tmp/x.db")
    url = "postgresql://user:secret@db.internal:5432/prefactor"
    chosen = Settings(db_path=url)
    assert chosen.database_url == url
    assert chosen.database_label == "postgresql://user:***@db.internal:5432/prefactor"
    from_env = Settings.from_env({"PREFACTOR_DATABASE_URL": "postgres://u@h/d"})
    assert from_env.database_url == "postgres://u@h/d"
    from_db_env = Settings.from_env({"PREFACTOR_DB": "postgresql://u@h/d"})
    assert from_db_env.database_url == "postgresql://u@h/d"
    with pytest.raises(SettingsError, match="expected postgresql://"):
        Settings.from_env({"PREFACTOR_DATABASE_URL": "mysql://u:pw@h/d"})
    with pytest.raises(SettingsError, match="two PostgreSQL URLs"):
        Settings(db_path="postgresql://a@h/d", database_url="postgresql://b@h/d")


def test_serve_refuses_unknown_scheme_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --db mysql://...`` fails with one line and leaves no file or folder behind."""
    monkeypatch.chdir(tmp_path)
    for value in ("mysql://root@db/prefactor", "postgresql:/user@host/db"):
        result = CliRunner().invoke(main, ["serve", "--port", "0", "--db", value])
        assert result.exit_code != 0
        assert "unsupported database" in result.output
    assert os.listdir(tmp_path) == []


def test_serve_reports_unreachable_postgres_without_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL that refuses connections is a clear error; the password is not shown."""
    monkeypatch.chdir(tmp_path)
    url = "postgresql://me:hunter2@127.0.0.1:1/prefactor"
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--db", url])
    assert result.exit_code != 0
    assert "cannot connect to postgresql://me:***@127.0.0.1:1/prefactor" in result.output
    assert "hunter2" not in result.output
    assert os.listdir(tmp_path) == []


def test_db_migrate_and_check(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """check fails on a database that lacks migrations; migrate applies them once."""
    if backend == "postgresql":
        target = _fresh_postgres_database(request)
    else:
        target = str(tmp_path / "ops.db")
    runner = CliRunner()
    before = runner.invoke(main, ["db", "check", "--db", target])
    assert before.exit_code != 0
    assert "lacks migrations: 0001_initial" in before.output
    first = runner.invoke(main, ["db", "migrate", "--db", target])
    assert first.exit_code == 0, first.output
    assert "applied 0001_initial" in first.output
    again = runner.invoke(main, ["db", "migrate", "--db", target])
    assert "up to date" in again.output
    after = runner.invoke(main, ["db", "check", "--db", target])
    assert after.exit_code == 0, after.output


def test_token_commands_on_each_backend(database: str | Path) -> None:
    """token create/list/revoke work on the database --db names."""
    target = str(database)
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "--name", "alice", "--db", target])
    assert created.exit_code == 0, created.output
    plain = created.output.strip()
    storage = open_storage(Settings.from_env({}, db_path=database))
    try:
        rows = storage.read_sync(lambda s: s.list_tokens())
        (row,) = [row for row in rows if row["name"] == "alice"]
    finally:
        storage.close()
    listed = runner.invoke(main, ["token", "list", "--db", target])
    assert "alice" in listed.output
    assert row["id"] in listed.output
    assert plain[:8] not in listed.output  # nothing of the token itself is kept
    revoked = runner.invoke(main, ["token", "revoke", row["id"], "--db", target])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(main, ["token", "revoke", row["id"], "--db", target])
    assert again.exit_code != 0


def _fresh_postgres_database(request: pytest.FixtureRequest) -> str:
    """A new, empty PostgreSQL database for this test (dropped after it)."""
    import secrets
    from urllib.parse import urlsplit

    import psycopg

    server: str = request.getfixturevalue("postgres_url")
    name = f"prefactor_ops_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())

    request.addfinalizer(drop)
    return urlsplit(server)._replace(path=f"/{name}").geturl()
