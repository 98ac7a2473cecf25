"""Options shared by commands, taken from the settings table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from prefactor_server.settings import SETTINGS, Settings, SettingsError
from prefactor_server.storage.base import Storage
from prefactor_server.storage.open import open_storage

__all__ = ["db_option", "fail", "load_settings", "open_db"]

F = TypeVar("F", bound=Callable[..., Any])

_HELP = {
    setting.name: f"{setting.help} [env: {setting.env}; default: {setting.default}]"
    for setting in SETTINGS
}


def db_option(function: F) -> F:
    """Add ``--db``."""
    # A plain string: a click.Path would fold "postgresql://" into "postgresql:/"; the
    # settings tell a file from a URL and refuse an unknown scheme.
    option = click.option("--db", "db_path", type=str, metavar="PATH|URL", help=_HELP["db_path"])
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


def open_db(settings: Settings, *, must_exist: bool = False, migrate: bool = True) -> Storage:
    """Open the settings' database; any failure is a one-line error naming it.

    Args:
        settings: Where the database is.
        must_exist: Refuse a SQLite file that does not exist yet (instead of creating it).
        migrate: Apply missing migrations (PostgreSQL refuses to open without them otherwise).
    """
    if must_exist and settings.database_url is None and not settings.db_path.exists():
        fail(f"no database at {settings.db_path}")
    try:
        return open_storage(settings, migrate=migrate)
    except Exception as exc:  # unreachable, refused, corrupt: one line, not a traceback
        message = str(exc)
        if settings.database_label not in message:
            message = f"cannot open {settings.database_label}: {message}"
        raise click.ClickException(message) from None
