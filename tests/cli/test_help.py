"""Every ``prefactor`` command answers --help with real help text."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from prefactor_server.cli import main


def all_commands(
    group: click.Group = main, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command and group under ``group``, with its path of names."""
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, path))
    return found


COMMANDS = all_commands()


def test_the_expected_commands_exist() -> None:
    """serve, demo, token create|list|revoke and traces list|show are all there."""
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "demo",
        "serve",
        "token",
        "token create",
        "token list",
        "token revoke",
        "traces",
        "traces list",
        "traces show",
    } <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    """--help prints a usage line and a description for every command."""
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    command = dict(COMMANDS)[path]
    assert command.help, f"{' '.join(path)} has no help text"
    first_line = " ".join(command.help.splitlines()[0].split())
    assert first_line in " ".join(result.output.split())  # help text is re-wrapped
