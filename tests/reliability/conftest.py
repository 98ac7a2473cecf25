"""Fixtures of the reliability suite and the table printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import ServerProcess, Tally

_ROWS = pytest.StashKey[list[Tally]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_ROWS] = []


Record = Callable[[Tally], None]


@pytest.fixture(name="record")
def fixture_record(request: pytest.FixtureRequest) -> Record:
    """Add a row to the reliability table (printed at the end, whatever the outcome)."""
    return request.config.stash[_ROWS].append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: spans sent by the agent vs. stored by the server")
    header = (
        f"{'scenario':<34} {'sent':>7} {'stored':>7} {'duplicates':>10} {'agent errors':>12}"
        f" {'unfinished':>10} {'dropped':>7}  {'ok':<4} notes"
    )
    write(header)
    write("-" * len(header))
    for row in rows:
        write(
            f"{row.scenario:<34} {row.sent:>7} {row.stored:>7} {row.duplicates:>10}"
            f" {row.agent_errors:>12} {row.unfinished:>10} {row.dropped:>7}"
            f"  {'yes' if row.ok else 'NO':<4} {row.notes}"
        )


@pytest.fixture(name="server_process")
def fixture_server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``prefactor serve`` on 127.0.0.1 (not yet started); stopped at the end."""
    server = ServerProcess(tmp_path / "server.db", tmp_path / "server.log")
    yield server
    server.stop()
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    if "Traceback" in log:
        # Shown with the test's report when it fails: the server's own errors.
        print(f"--- server log ({server.log_path}) ---\n{log[-6000:]}")
