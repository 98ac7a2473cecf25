"""``prefactor db migrate|check``: the database schema, for operators.

``prefactor serve`` applies missing migrations itself (under an advisory lock on
PostgreSQL, so several processes may start at once); these commands let an operator do it
as a separate deploy step and check a database before pointing servers at it.
"""

from __future__ import annotations

import click

from prefactor_server._time import now
from prefactor_server.cli._options import db_option, fail, load_settings
from prefactor_server.settings import Settings

__all__ = ["db"]


@click.group()
def db() -> None:
    """Apply or check the database schema migrations."""


def _pending(settings: Settings, *, apply: bool) -> tuple[list[str], list[str]]:
    """Return (applied now, still missing) for the settings' database."""
    if settings.database_url is None:
        import sqlite3

        from prefactor_server.storage.sqlite.migrations import MIGRATIONS, apply_migrations

        if not apply and not settings.db_path.exists():
            return [], [migration.name for migration in MIGRATIONS]
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        lite = sqlite3.connect(settings.db_path, isolation_level=None)
        try:
            if apply:
                return apply_migrations(lite, now()), []
            has_table = lite.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'"
            ).fetchone()
            done = (
                {row[0] for row in lite.execute("SELECT name FROM schema_migrations")}
                if has_table
                else set()
            )
            return [], [m.name for m in MIGRATIONS if m.name not in done]
        finally:
            lite.close()
    try:
        from prefactor_server.storage.postgres.migrations import (
            apply_migrations as apply_pg,
        )
        from prefactor_server.storage.postgres.migrations import pending_migrations
        from prefactor_server.storage.postgres.storage import connect
    except ImportError:  # pragma: no cover - the test environment has the extra
        fail("PostgreSQL needs the driver: pip install 'prefactor-server[postgres]'")
        raise
    try:
        with connect(settings.database_url) as conn:
            if apply:
                return apply_pg(conn, now()), []
            return [], pending_migrations(conn)
    except Exception as exc:  # unreachable, refused: one line, not a traceback
        fail(str(exc))
        raise


@db.command("migrate")
@db_option
def migrate(db_path: str | None) -> None:
    """Apply the migrations the database lacks (safe to run while servers start)."""
    settings = load_settings(db_path=db_path)
    applied, _ = _pending(settings, apply=True)
    if applied:
        click.echo(f"{settings.database_label}: applied {', '.join(applied)}")
    else:
        click.echo(f"{settings.database_label}: up to date")


@db.command("check")
@db_option
def check(db_path: str | None) -> None:
    """Exit non-zero when the database lacks migrations (or cannot be reached)."""
    settings = load_settings(db_path=db_path)
    _, missing = _pending(settings, apply=False)
    if missing:
        fail(f"{settings.database_label} lacks migrations: {', '.join(missing)}")
    click.echo(f"{settings.database_label}: up to date")
