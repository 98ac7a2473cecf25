"""Options and plumbing for commands that read through the server's API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from prefactor_server.traces.reader import TraceReader, TraceReaderError

__all__ = ["API_URL_ENV", "DEFAULT_API_URL", "TOKEN_ENV", "api_options", "run_reader"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_URL_ENV = "PREFACTOR_API_URL"
TOKEN_ENV = "PREFACTOR_API_TOKEN"


def api_options(function: F) -> F:
    """Add ``--api-url`` and ``--token`` (each also read from the environment)."""
    function = click.option(
        "--token",
        envvar=TOKEN_ENV,
        default=None,
        help=f"API token of the server's account. [env: {TOKEN_ENV}]",
    )(function)
    function = click.option(
        "--api-url",
        envvar=API_URL_ENV,
        default=DEFAULT_API_URL,
        show_default=True,
        help=f"Base URL of a running Prefactor server. [env: {API_URL_ENV}]",
    )(function)
    return function


def run_reader(
    api_url: str,
    token: str | None,
    work: Callable[[TraceReader], Coroutine[Any, Any, T]],
) -> T:
    """Run ``work`` with a reader; any reading error becomes one line and exit code 1."""
    if not token:
        raise click.ClickException(
            f"no API token: pass --token or set {TOKEN_ENV} "
            "(see 'prefactor token create', or the token 'prefactor serve' printed)"
        )

    async def main() -> T:
        async with TraceReader(api_url, token) as reader:
            return await work(reader)

    try:
        return asyncio.run(main())
    except TraceReaderError as exc:
        raise click.ClickException(str(exc)) from None
