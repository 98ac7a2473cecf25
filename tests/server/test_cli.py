"""The prefactor CLI: help texts and token management on a database file."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner

from prefactor_server.cli import main
from prefactor_server.settings import Settings
from prefactor_server.storage import SqliteStorage, open_storage


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
    """A created token is listed (without any part of it) and can be revoked once."""
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


@pytest.mark.parametrize("columns", ["60", "200"])
def test_token_list_shows_whole_ids_that_revoke_takes(tmp_path: Path, columns: str) -> None:
    """The ids were cut ("01kbx…") on an ordinary terminal, and revoke needs them whole."""
    db = str(tmp_path / "cli.db")
    runner = CliRunner(env={"COLUMNS": columns})
    token = runner.invoke(main, ["token", "create", "--name", "a-long-token-name", "--db", db])
    storage = SqliteStorage(db)
    try:
        token_id = storage.read_sync(lambda s: s.list_tokens())[-1]["id"]
    finally:
        storage.close()
    listed = runner.invoke(main, ["token", "list", "--db", db])
    assert listed.exit_code == 0
    assert token_id in listed.output, listed.output
    assert token.output.strip()[:6] not in listed.output
    assert runner.invoke(main, ["token", "revoke", token_id, "--db", db]).exit_code == 0


def test_serve_with_a_revoked_api_token_says_what_to_do(database: str | Path) -> None:
    """Restarting with a revoked PREFACTOR_API_TOKEN failed with "UNIQUE constraint failed"
    (each backend)."""
    db = str(database)
    token = "revoked-token-0123456789"
    storage = open_storage(Settings.from_env({}, db_path=database))
    from prefactor_server.domain.accounts import bootstrap_local_account

    try:
        storage.write_sync(lambda session: bootstrap_local_account(session, token))
        token_id = storage.read_sync(lambda s: s.list_tokens())[-1]["id"]
        storage.write_sync(lambda session: session.revoke_token(token_id, "2026-01-01T00:00:00Z"))
    finally:
        storage.close()
    result = CliRunner(env={"PREFACTOR_API_TOKEN": token}).invoke(main, ["serve", "--db", db])
    assert result.exit_code == 1
    assert "revoked" in result.output
    assert token_id in result.output
    assert "UNIQUE" not in result.output


def test_serve_moves_its_startup_objects_out_of_the_collectors_sight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prefactor serve` freezes what it built before serving (gc.freeze): full
    collections, which ingest triggered every few requests, then skip the ~100,000
    long-lived objects of the modules and the app; and it collects the young generation
    less often."""
    frozen: list[int] = []
    thresholds: list[tuple[int, int, int]] = []

    def run(app: object, **options: object) -> None:
        frozen.append(gc.get_freeze_count())
        thresholds.append(gc.get_threshold())

    monkeypatch.setattr(uvicorn, "run", run)
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.db")])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert result.exit_code == 0, result.output
    assert len(frozen) == 1
    assert frozen[0] > 10_000
    # Young collections are rarer: an OTLP export's objects are freed before one runs.
    assert thresholds[0][0] >= 10_000
