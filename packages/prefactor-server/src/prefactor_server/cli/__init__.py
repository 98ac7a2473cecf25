"""The ``prefactor`` command: a thin click layer over the library.

Commands live one per module and register on :data:`main`; add a new one (``demo``,
``traces``) by writing a module with a click command and adding it in ``_register``.
"""

from __future__ import annotations

import click

from prefactor_server._version import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prefactor")
def main() -> None:
    """Prefactor: a local, Prefactor-compatible API server for tracing AI agents."""


def _register() -> None:
    from prefactor_server.cli.db import db
    from prefactor_server.cli.demo import demo
    from prefactor_server.cli.serve import serve
    from prefactor_server.cli.token import token
    from prefactor_server.cli.traces import traces

    main.add_command(db)
    main.add_command(demo)
    main.add_command(serve)
    main.add_command(token)
    main.add_command(traces)


_register()
