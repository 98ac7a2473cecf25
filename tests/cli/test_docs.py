"""The server README documents every CLI command (docs checked by tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_help import COMMANDS

README = Path(__file__).parents[2] / "packages" / "prefactor-server" / "README.md"


def _reference() -> str:
    text = README.read_text(encoding="utf-8")
    assert "## CLI reference" in text
    return text.split("## CLI reference", 1)[1]


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=" ".join)
def test_command_is_documented(path: tuple[str, ...]) -> None:
    """Each command has its own heading in the README's CLI reference."""
    assert f"### `prefactor {' '.join(path)}`" in _reference()


@pytest.mark.parametrize(
    ("path", "option"),
    [
        (path, option)
        for path, command in COMMANDS
        for param in command.params
        for option in getattr(param, "opts", [])
        if option.startswith("--")
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_option_is_documented(path: tuple[str, ...], option: str) -> None:
    """Each option appears in its command's section of the reference."""
    heading = f"### `prefactor {' '.join(path)}`"
    section = _reference().split(heading, 1)[1].split("\n### ", 1)[0]
    assert f"`{option}" in section, f"{option} of prefactor {' '.join(path)} is not documented"
