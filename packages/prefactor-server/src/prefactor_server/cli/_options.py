"""Options shared by commands, taken from the settings table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from prefactor_server.settings import SETTINGS, Settings, SettingsError

__all__ = ["db_option", "fail", "load_settings"]

F = TypeVar("F", bound=Callable[..., Any])

_HELP = {
    setting.name: f"{setting.help} [env: {setting.env}; default: {setting.default}]"
    for setting in SETTINGS
}


def db_option(function: F) -> F:
    """Add ``--db``."""
    option = click.option(
        "--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), help=_HELP["db_path"]
    )
    return option(function)


def fail(message: str) -> None:
    """Print one clear error line and exit non-zero."""
    raise click.ClickException(message)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from flags and the environment; a bad value is a one-line error."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
