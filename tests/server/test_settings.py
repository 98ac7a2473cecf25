"""Settings: the table, environment precedence, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefactor_server.settings import SETTINGS, Settings, SettingsError


def test_table_matches_fields() -> None:
    """Every settings-table row is a Settings field with the same default."""
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default
        assert setting.help
        assert setting.env.startswith("PREFACTOR_")


def test_precedence() -> None:
    """An explicit value beats the environment, which beats the default."""
    env = {
        "PREFACTOR_PORT": "9000",
        "PREFACTOR_DB": "env.db",
        "PREFACTOR_API_TOKEN": "env-token-0123456789",
    }
    settings = Settings.from_env(env, port=9100)
    assert settings.port == 9100
    assert settings.db_path == Path("env.db")
    assert settings.api_token == "env-token-0123456789"
    assert Settings.from_env({}).host == "127.0.0.1"


@pytest.mark.parametrize(
    "env",
    [{"PREFACTOR_PORT": "x"}, {"PREFACTOR_PORT": "70000"}, {"PREFACTOR_API_TOKEN": "short"},
     {"PREFACTOR_BULK_MAX_ITEMS": "0"}],
)  # fmt: skip
def test_bad_values_fail_fast(env: dict[str, str]) -> None:
    """A bad value raises SettingsError."""
    with pytest.raises(SettingsError):
        Settings.from_env(env)
