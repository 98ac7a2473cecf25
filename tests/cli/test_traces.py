"""``prefactor traces list|show`` against a real server holding a demo run."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from prefactor_server.cli import main

from .conftest import Served


def _invoke(cli: CliRunner, served: Served, *args: str) -> Result:
    return cli.invoke(main, [*args, "--api-url", served.api_url, "--token", served.token])


def _one_line_error(result: Result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert expected in result.stderr


def test_list_shows_the_run_with_counts(cli: CliRunner, served: Served) -> None:
    """traces list prints the run's id, agent name, status, duration and span counts."""
    result = _invoke(cli, served, "traces", "list")
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if served.run.instance_id in row)
    assert "Research assistant (demo)" in line
    assert "✓ complete" in line
    assert "16 (1 failed, 1 cancelled)" in line
    assert " ms" in line  # the duration column


def test_list_filters_by_agent_and_status(cli: CliRunner, served: Served) -> None:
    """--agent and --status narrow the list; no match says so."""
    mine = _invoke(cli, served, "traces", "list", "--agent", "demo-research-agent")
    assert served.run.instance_id in mine.stdout
    other = _invoke(cli, served, "traces", "list", "--agent", "someone-else")
    assert other.exit_code == 0
    assert served.run.instance_id not in other.stdout
    assert "No runs found." in other.stdout
    failed = _invoke(cli, served, "traces", "list", "--status", "failed")
    assert "No runs found." in failed.stdout
    complete = _invoke(cli, served, "traces", "list", "--status", "complete")
    assert served.run.instance_id in complete.stdout


def test_show_prints_the_span_tree(cli: CliRunner, served: Served) -> None:
    """traces show prints every span nested under its parent with status and summary."""
    result = _invoke(cli, served, "traces", "show", served.run.instance_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"run {served.run.instance_id}  ✓ complete")
    assert "16 spans" in lines[0]
    assert lines[1].startswith("└── Plan [agent:plan]  ✓ complete")
    tree = "\n".join(lines)
    assert tree.count("[agent:task]") == 3
    assert tree.count("[agent:tool]") == 3
    assert tree.count("[agent:llm]") == 5
    # The failed attempt sits two levels down, inside the "trains" sub-task, with its error.
    failed = next(i for i, line in enumerate(lines) if "✗ failed" in line)
    assert lines[failed].startswith("    │   ├── Tool call [agent:tool]  ✗ failed")
    assert "web_search(direct trains between spring city-break destinations) #1" in lines[failed]
    assert "error: SimulatedToolError: web_search timed out" in lines[failed + 1]
    assert "#2 → 12 results" in lines[failed + 2]
    assert any(
        "⊘ cancelled" in line and "cancelled before it started: web_search succeeded" in line
        for line in lines
    )
    assert "calculator(3 * (95 + 28) + 51) #1 → 420" in tree


def test_show_json_is_the_raw_data(cli: CliRunner, served: Served) -> None:
    """--json prints the instance and its spans as the read API returns them."""
    result = _invoke(cli, served, "traces", "show", served.run.instance_id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["instance"]["id"] == served.run.instance_id
    spans = data["spans"]
    assert len(spans) == 16
    by_id = {span["id"]: span for span in spans}
    statuses = sorted(span["status"] for span in spans)
    assert statuses.count("failed") == 1
    assert statuses.count("cancelled") == 1
    failed = next(span for span in spans if span["status"] == "failed")
    assert failed["result_payload"]["error"]["type"] == "SimulatedToolError"
    parent = by_id[failed["parent_span_id"]]
    assert parent["payload"]["name"] == "trains"
    assert by_id[parent["parent_span_id"]]["schema_name"] == "agent:plan"


def test_bad_token_is_one_line(cli: CliRunner, served: Served) -> None:
    """A rejected token is one clear line on stderr and exit code 1."""
    result = cli.invoke(
        main, ["traces", "list", "--api-url", served.api_url, "--token", "not-a-real-token"]
    )
    _one_line_error(result, "rejected the API token")


def test_unknown_id_is_one_line(cli: CliRunner, served: Served) -> None:
    """An unknown run id is one clear line and exit code 1."""
    result = _invoke(cli, served, "traces", "show", "no-such-run")
    _one_line_error(result, "no agent instance with id 'no-such-run'")


def test_server_not_running_is_one_line(cli: CliRunner, closed_url: str) -> None:
    """Nothing listening at --api-url is one clear line and exit code 1."""
    result = cli.invoke(main, ["traces", "list", "--api-url", closed_url, "--token", "whatever1"])
    _one_line_error(result, f"cannot reach the Prefactor server at {closed_url}")
    assert "prefactor serve" in result.stderr


def test_missing_token_is_one_line(cli: CliRunner, served: Served) -> None:
    """No --token and no PREFACTOR_API_TOKEN is one clear line and exit code 1."""
    result = cli.invoke(main, ["traces", "show", "x", "--api-url", served.api_url])
    _one_line_error(result, "no API token: pass --token or set PREFACTOR_API_TOKEN")


def test_token_from_environment(served: Served) -> None:
    """PREFACTOR_API_TOKEN and PREFACTOR_API_URL stand in for the flags."""
    runner = CliRunner(
        env={
            "COLUMNS": "200",
            "PREFACTOR_API_TOKEN": served.token,
            "PREFACTOR_API_URL": served.api_url,
        }
    )
    result = runner.invoke(main, ["traces", "list"])
    assert result.exit_code == 0, result.output
    assert served.run.instance_id in result.stdout


def test_show_failed_depth_and_max_spans(cli: CliRunner, served: Served) -> None:
    """--failed keeps the failure and its parents; --depth and --max-spans cut the tree."""
    failed = _invoke(cli, served, "traces", "show", served.run.instance_id, "--failed")
    assert failed.exit_code == 0, failed.output
    lines = failed.stdout.splitlines()
    assert [line.split("[")[0].strip(" │├└─") for line in lines[1:4]] == [
        "Plan",
        "Sub-task",
        "Tool call",
    ]
    assert "✗ failed" in lines[3]
    assert "error: SimulatedToolError" in lines[4]
    assert lines[-1].strip(" └─") == "… 13 more spans not shown (--failed, --depth, --max-spans)"

    top = _invoke(cli, served, "traces", "show", served.run.instance_id, "--depth", "2")
    assert "[agent:plan]" in top.stdout
    assert top.stdout.count("[agent:task]") == 3
    assert "[agent:tool]" not in top.stdout  # tools sit three levels down
    assert "more spans not shown" in top.stdout

    few = _invoke(cli, served, "traces", "show", served.run.instance_id, "--max-spans", "4")
    assert few.stdout.count("\n") == 1 + 4 + 1  # run line, four spans, the "more" line
    assert "… 12 more spans not shown" in few.stdout
    bad = _invoke(cli, served, "traces", "show", served.run.instance_id, "--depth", "0")
    assert bad.exit_code == 2
    assert "--depth" in bad.output


def test_list_json_and_pages(cli: CliRunner, served: Served) -> None:
    """--json prints the runs as an array; --page walks on; the footer counts them."""
    result = _invoke(cli, served, "traces", "list", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [run["id"] for run in runs] == [served.run.instance_id]
    assert runs[0]["span_counts"]["total"] == 16
    listed = _invoke(cli, served, "traces", "list", "--limit", "1")
    assert "runs 1-1 of 1" in listed.stdout
    assert "--page 2" not in listed.stdout
    beyond = _invoke(cli, served, "traces", "list", "--page", "2")
    assert "No runs found." in beyond.stdout


def test_list_fits_80_columns(served: Served) -> None:
    """On an 80-column terminal every line fits and the id stays whole."""
    narrow = CliRunner(env={"COLUMNS": "80", "PREFACTOR_API_TOKEN": None})
    result = _invoke(narrow, served, "traces", "list")
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    row = next(line for line in result.stdout.splitlines() if served.run.instance_id in line)
    assert "✓ complete" in row
    assert "16 ✗1 ⊘1" in row
