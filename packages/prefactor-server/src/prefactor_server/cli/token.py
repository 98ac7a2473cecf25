"""``prefactor token create|list|revoke``: manage API tokens in the database file."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from prefactor_server.cli._options import db_option, fail, load_settings, open_db
from prefactor_server.domain.accounts import bootstrap_local_account, create_token
from prefactor_server.storage.base import TokenRow, WriteSession

__all__ = ["token"]


@click.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--name", default="cli", show_default=True, help="A label shown by 'token list'.")
@db_option
def create(name: str, db_path: str | None) -> None:
    """Create a token for the local account and print it (shown only once)."""
    settings = load_settings(db_path=db_path)
    storage = open_db(settings)
    try:

        def make(session: WriteSession) -> str:
            account = bootstrap_local_account(session, None).account
            return create_token(session, account, name)[1]

        plain = storage.write_sync(make)
    finally:
        storage.close()
    click.echo(plain)


@token.command("list")
@db_option
def list_tokens(db_path: str | None) -> None:
    """List tokens: ids (for 'token revoke'), names, dates (tokens are stored hashed)."""
    settings = load_settings(db_path=db_path)
    storage = open_db(settings, must_exist=True)
    try:
        rows: list[TokenRow] = storage.read_sync(lambda session: session.list_tokens())
    finally:
        storage.close()
    table = Table("name", "created", "revoked")
    # The id is what 'token revoke' takes: never cut, whatever the terminal's width.
    table.add_column("id", no_wrap=True, min_width=max((len(row["id"]) for row in rows), default=2))
    for row in rows:
        table.add_row(row["name"], row["inserted_at"], row["revoked_at"] or "", row["id"])
    Console().print(table)


@token.command("revoke")
@click.argument("token_id")
@db_option
def revoke(token_id: str, db_path: str | None) -> None:
    """Revoke the token with id TOKEN_ID (see 'token list')."""
    settings = load_settings(db_path=db_path)
    storage = open_db(settings, must_exist=True)
    try:
        revoked = storage.write_sync(lambda session: session.revoke_token(token_id, _now()))
    finally:
        storage.close()
    if not revoked:
        fail(f"no active token with id {token_id}")
    click.echo(f"revoked {token_id}")


def _now() -> str:
    from prefactor_server._time import now

    return now()
