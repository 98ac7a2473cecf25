"""Fixtures for the CLI tests: a real uvicorn server on 127.0.0.1 holding one demo run."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from prefactor_server.demo import DemoRun, run_demo
from prefactor_server.testing import LocalServer

TOKEN = "cli-test-token-123"


@dataclass(frozen=True)
class Served:
    """A running server and the demo run recorded in it."""

    api_url: str
    token: str
    db_path: Path
    run: DemoRun


@pytest.fixture(name="served", scope="module")
def fixture_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Serve a fresh database with uvicorn and record one demo run (seed 3) in it.

    A sync fixture with its own event loop: the CLI commands call ``asyncio.run`` and
    must not be invoked from inside a running loop; uvicorn runs in its own thread.
    """
    db_path = tmp_path_factory.mktemp("cli") / "traces.db"
    runner = asyncio.Runner()
    context = LocalServer.run(db_path, token=TOKEN)
    server = runner.run(context.__aenter__())
    try:
        run = runner.run(run_demo(server.api_url, TOKEN, seed=3, latency_scale=0))
        yield Served(server.api_url, TOKEN, db_path, run)
    finally:
        runner.run(context.__aexit__(None, None, None))
        runner.close()


@pytest.fixture(name="cli")
def fixture_cli() -> CliRunner:
    """A CliRunner with a wide terminal and no token in the environment."""
    return CliRunner(env={"COLUMNS": "200", "PREFACTOR_API_TOKEN": None})


@pytest.fixture(name="closed_url")
def fixture_closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
