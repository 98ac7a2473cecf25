"""``prefactor serve``: run the API with uvicorn."""

from __future__ import annotations

import click
import uvicorn
from fastapi import FastAPI
from rich.console import Console

from prefactor_server.app import create_app
from prefactor_server.cli._options import _HELP, db_option, fail, load_settings, open_db
from prefactor_server.domain.accounts import Bootstrap, RevokedTokenError
from prefactor_server.gc_tuning import tune_gc_for_serving
from prefactor_server.settings import Settings

__all__ = ["serve"]


@click.command()
@click.option("--host", default=None, help=_HELP["host"])
@click.option("--port", type=int, default=None, help=_HELP["port"])
@db_option
def serve(host: str | None, port: int | None, db_path: str | None) -> None:
    """Serve the Prefactor API on HOST:PORT (127.0.0.1:8000 unless told otherwise)."""
    settings = load_settings(host=host, port=port, db_path=db_path)
    console = Console(stderr=True)
    storage = open_db(settings)
    try:
        try:
            app = create_app(settings, storage=storage)
        except RevokedTokenError as exc:
            fail(str(exc))
            return
        _run(settings, app, console)
    finally:
        storage.close()


def _run(settings: Settings, app: FastAPI, console: Console) -> None:
    bootstrap: Bootstrap = app.state.bootstrap
    url = f"http://{settings.host}:{settings.port}"
    console.print(
        f"Prefactor API listening on [bold]{url}/api/v1[/bold] (database {settings.database_label})"
    )
    if bootstrap.new_token is not None:
        console.print("Created the local account. Its API token (shown only this once):")
        click.echo(bootstrap.new_token)
    elif settings.api_token is not None:
        console.print("Accepting PREFACTOR_API_TOKEN as the local account's token.")
    tune_gc_for_serving()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            # httptools and uvloop when installed (they are dependencies), else h11/asyncio.
            http="auto",
            loop="auto",
        )
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
