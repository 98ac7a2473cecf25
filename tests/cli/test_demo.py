"""``prefactor demo``: embedded server or a given one, the printed tree, determinism."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from click.testing import CliRunner

from prefactor_server.cli import main
from prefactor_server.testing import LocalServer
from prefactor_server.traces import TraceReader

from .conftest import Served


def _run_id(output: str) -> str:
    match = re.search(r"prefactor traces show (\S+)", output)
    assert match, output
    return match.group(1)


def test_embedded_demo_prints_the_tree_and_next_steps(cli: CliRunner, tmp_path: Path) -> None:
    """The demo serves its own database, prints the run's tree and where to look next."""
    db = tmp_path / "demo.db"
    result = cli.invoke(
        main, ["demo", "--db", str(db), "--seed", "7", "--latency-scale", "0", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    run_id = _run_id(out)
    assert f"run {run_id}  ✓ complete" in out
    assert "16 spans" in out
    assert "└── Plan [agent:plan]  ✓ complete" in out
    assert "✗ failed" in out
    assert "error: SimulatedToolError: web_search timed out after 0.3 s (simulated)" in out
    assert "⊘ cancelled" in out
    assert "Answer: Go to " in out
    assert f"prefactor serve --db {db}" in out
    assert f"http://127.0.0.1:8000/runs/{run_id}" in out
    token = re.search(r"export PREFACTOR_API_TOKEN=(\S+)", out)
    assert token, out

    async def read_back() -> int:
        # The printed token is registered in the file: a later server accepts it.
        server = LocalServer(db, token="another-token-123")
        reader = TraceReader(server.api_url, token.group(1), transport=server.transport)
        async with server, reader:
            return len(await reader.list_spans(run_id))

    assert asyncio.run(read_back()) == 16


def test_demo_against_a_running_server_is_deterministic(cli: CliRunner, served: Served) -> None:
    """Two runs with the same seed record the same spans, statuses and summaries."""
    args = ["demo", "--api-url", served.api_url, "--token", served.token]
    first = cli.invoke(main, [*args, "--seed", "11", "--latency-scale", "0", "--no-progress"])
    second = cli.invoke(main, [*args, "--seed", "11", "--latency-scale", "0", "--no-progress"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert f"PREFACTOR_API_URL={served.api_url}" in first.stdout

    def shape(run_id: str) -> list[tuple[str, str, str]]:
        shown = cli.invoke(
            main,
            [
                "traces",
                "show",
                run_id,
                "--json",
                "--api-url",
                served.api_url,
                "--token",
                served.token,
            ],
        )
        assert shown.exit_code == 0, shown.output
        spans = json.loads(shown.stdout)["spans"]
        return sorted((s["schema_name"], s["status"], s["summary"] or "") for s in spans)

    one, two = _run_id(first.stdout), _run_id(second.stdout)
    assert one != two
    assert shape(one) == shape(two)
    assert len(shape(one)) == 16


def test_demo_shows_a_progress_bar(cli: CliRunner, served: Served) -> None:
    """Without --no-progress the demo reports its steps on stderr."""
    result = cli.invoke(
        main,
        ["demo", "--api-url", served.api_url, "--token", served.token, "--latency-scale", "0"],
    )
    assert result.exit_code == 0, result.output
    assert "16/16" in result.stderr


def test_demo_with_a_bad_token_is_one_line(cli: CliRunner, served: Served) -> None:
    """A rejected token stops the demo before it traces anything, in one line."""
    result = cli.invoke(
        main, ["demo", "--api-url", served.api_url, "--token", "wrong-token-1", "--no-progress"]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0
    assert "rejected the API token" in result.stderr


def test_demo_api_url_needs_a_token(cli: CliRunner, closed_url: str) -> None:
    """--api-url without a token is refused with one line."""
    result = cli.invoke(main, ["demo", "--api-url", closed_url])
    assert result.exit_code == 1
    assert "--api-url needs --token" in result.stderr


def test_demo_server_not_running_is_one_line(cli: CliRunner, closed_url: str) -> None:
    """An --api-url where nothing listens is one clear line."""
    result = cli.invoke(
        main, ["demo", "--api-url", closed_url, "--token", "whatever1", "--no-progress"]
    )
    assert result.exit_code == 1
    assert f"cannot reach the Prefactor server at {closed_url}" in result.stderr
