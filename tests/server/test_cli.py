"""The prefactor CLI: help texts and token management on a database file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from prefactor_server.cli import main
from prefactor_server.storage import SqliteStorage


@pytest.mark.parametrize(
    "args", [[], ["serve"], ["token"], ["token", "create"], ["token", "list"], ["token", "revoke"]]
)
def test_every_command_has_help(args: list[str]) -> None:
    """Every command answers --help with its help text."""
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


def test_token_create_list_revoke(tmp_path: Path) -> None:
    """A created token is listed by its prefix and can be revoked once."""
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "--name", "ci", "--db", db])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert token.startswith("pf_")
    listed = runner.invoke(main, ["token", "list", "--db", db])
    assert "ci" in listed.output
    storage = SqliteStorage(db)
    try:
        token_id = storage.read_sync(lambda s: s.list_tokens())[0]["id"]
    finally:
        storage.close()
    revoked = runner.invoke(main, ["token", "revoke", token_id, "--db", db])
    assert revoked.exit_code == 0
    again = runner.invoke(main, ["token", "revoke", token_id, "--db", db])
    assert again.exit_code != 0
    assert "no active token" in again.output


def test_list_without_database_is_one_line_error(tmp_path: Path) -> None:
    """token list on a missing file fails with one clear line."""
    result = CliRunner().invoke(main, ["token", "list", "--db", str(tmp_path / "missing.db")])
    assert result.exit_code != 0
    assert "no database" in result.output


def test_bad_setting_in_environment_fails_fast(tmp_path: Path) -> None:
    """A non-integer PREFACTOR_PORT is a one-line error, not a traceback."""
    result = CliRunner(env={"PREFACTOR_PORT": "eighty"}).invoke(
        main, ["serve", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code != 0
    assert "PREFACTOR_PORT must be an integer" in result.output
