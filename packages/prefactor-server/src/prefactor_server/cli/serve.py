"""``prefactor serve``: run the API with uvicorn."""

from __future__ import annotations

import gc

import click
import uvicorn
from fastapi import FastAPI
from rich.console import Console

from prefactor_server.app import create_app
from prefactor_server.cli._options import _HELP, db_option, fail, load_settings, open_db
from prefactor_server.domain.accounts import Bootstrap, RevokedTokenError
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


# Young collections every this many new containers (Python's default: 700). An OTLP export
# of 512 spans holds ~8,000 at its peak, all freed by reference counting once answered: at
# 700, some 6 young and half an older collection ran per export (~1.5-4 µs per span of
# CPU) and pushed its objects into the oldest generation; at 10,000, usually none.
_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Tune the collector for a long-running server: see ``_YOUNG_THRESHOLD``; and
    everything built so far (modules, the app, its routes and models: ~100,000 objects)
    lives as long as the process, so it is frozen (``gc.freeze``): a full collection no
    longer walks it (~50 ms of CPU each, every few exports: ~8 µs per OTLP span)."""
    gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()


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
    _tune_gc()
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
