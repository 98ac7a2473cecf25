"""``prefactor demo``: trace a simulated agent into a local server and print the run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prefactor_server.cli._api import API_URL_ENV, TOKEN_ENV
from prefactor_server.demo import STEPS, DemoError, DemoRun, embedded_server, run_demo
from prefactor_server.settings import Settings, SettingsError
from prefactor_server.traces.render import run_tree

__all__ = ["demo"]


@click.command()
@click.option(
    "--db",
    "db_path",
    type=str,
    metavar="PATH|URL",
    default="prefactor-demo.db",
    show_default=True,
    help="SQLite file (or postgresql:// URL) of the embedded server (ignored with --api-url).",
)
@click.option(
    "--api-url",
    default=None,
    help="Use this running server instead of an embedded one (needs --token).",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"API token for --api-url. [env: {TOKEN_ENV}; unused without --api-url]",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulation.")
@click.option(
    "--latency-scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Multiply the simulated latencies (0 runs instantly).",
)
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def demo(
    db_path: str,
    api_url: str | None,
    token: str | None,
    seed: int,
    latency_scale: float,
    no_progress: bool,
) -> None:
    """Run a simulated research agent traced with prefactor-core and print its run.

    Starts an embedded server on 127.0.0.1 with a SQLite file (or uses --api-url), runs
    the agent (concurrent sub-tasks, a failing tool call that is retried, a step
    cancelled before it starts), then reads the run back through the API and prints it
    as a tree. No network beyond 127.0.0.1, no API key, no model.
    """
    if api_url is not None and not token:
        raise click.ClickException(f"--api-url needs --token (or {TOKEN_ENV})")
    if api_url is None:
        try:
            Settings(db_path=db_path)  # type: ignore[arg-type]  # a str: maybe a URL
        except SettingsError as exc:  # an unknown scheme: refused before anything is made
            raise click.ClickException(str(exc)) from None
    console = Console()
    errors = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
        disable=no_progress,
    )

    async def main() -> tuple[DemoRun, str, str]:
        async with _server(db_path, api_url, token) as (url, used_token):
            with progress:
                bar = progress.add_task("tracing the research agent", total=STEPS)

                def step(what: str) -> None:
                    progress.update(bar, advance=1, description=what[:40])

                run = await run_demo(
                    url, used_token, seed=seed, latency_scale=latency_scale, on_step=step
                )
                progress.update(bar, description="done")
            return run, url, used_token

    try:
        run, url, used_token = asyncio.run(main())
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot run the embedded server: {exc}") from None

    console.print()
    console.print(run_tree(run.instance, run.spans))
    console.print()
    console.print(f"[bold]Answer:[/bold] {run.answer}")
    console.print()
    _next_steps(console, run.instance_id, db_path if api_url is None else None, url, used_token)


@contextlib.asynccontextmanager
async def _server(
    db_path: str, api_url: str | None, token: str | None
) -> AsyncIterator[tuple[str, str]]:
    if api_url is not None and token is not None:
        yield api_url.rstrip("/"), token
        return
    async with embedded_server(db_path) as (url, made):
        yield url, made


def _next_steps(
    console: Console, instance_id: str, db_path: str | None, api_url: str, token: str
) -> None:
    console.print("[bold]Where to look next[/bold]")
    if db_path is not None:
        # The embedded server is gone; the token stays registered in the file.
        console.print("  Serve the demo database (its token is registered in the file):")
        console.print(f"    export {TOKEN_ENV}={token}", soft_wrap=True)
        console.print(f"    prefactor serve --db {db_path}", soft_wrap=True)
        api_url = "http://127.0.0.1:8000"
        console.print("  Then, in another terminal (with the same export):")
    else:
        console.print(f"  With {API_URL_ENV}={api_url} and {TOKEN_ENV} set:", soft_wrap=True)
    console.print(f"    prefactor traces show {instance_id}", soft_wrap=True)
    console.print("    prefactor traces list", soft_wrap=True)
    console.print(f"  Web viewer: {api_url}/runs/{instance_id}", soft_wrap=True)
