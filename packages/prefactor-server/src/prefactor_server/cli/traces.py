"""``prefactor traces list|show``: look at runs through the server's read API."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.text import Text

from prefactor_http.models.types import INSTANCE_STATUSES
from prefactor_server.cli._api import api_options, run_reader
from prefactor_server.traces.reader import TraceReader
from prefactor_server.traces.render import instances_table, run_tree

__all__ = ["traces"]

_STATUSES = INSTANCE_STATUSES


@click.group()
def traces() -> None:
    """List runs (agent instances) and show one as a span tree."""


def _print(renderable: RenderableType, pager: bool) -> None:
    """Print to stdout, through a pager when stdout is a terminal and it is longer."""
    console = Console(soft_wrap=False)
    if pager and console.is_terminal:
        with console.pager(styles=True):
            console.print(renderable)
        return
    console.print(renderable)


@traces.command("list")
@click.option("--agent", "agent_id", default=None, help="Only runs of this agent id.")
@click.option(
    "--status", type=click.Choice(_STATUSES), default=None, help="Only runs with this status."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Runs per page (newest first).",
)
@click.option(
    "--page", type=click.IntRange(1), default=1, show_default=True, help="Which page to list."
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (one array).")
@api_options
def list_traces(
    agent_id: str | None,
    status: str | None,
    limit: int,
    page: int,
    as_json: bool,
    api_url: str,
    token: str | None,
) -> None:
    """List runs, newest first: agent, status, start, duration and span counts.

    The table fits an 80-column terminal (wider ones show more); ``--page 2`` goes on.
    """

    async def load(reader: TraceReader) -> tuple[list[dict[str, Any]], int, dict[str, str]]:
        instances, total = await reader.instances_page(
            offset=(page - 1) * limit, limit=limit, agent_id=agent_id, status=status
        )
        agents = await reader.list_agents() if instances and not as_json else []
        names = {str(agent["id"]): str(agent.get("name") or agent["id"]) for agent in agents}
        return instances, total, names

    instances, total, names = run_reader(api_url, token, load)
    if as_json:
        click.echo(json.dumps(instances, indent=2, ensure_ascii=False))
        return
    console = Console(soft_wrap=False)
    console.print(instances_table(instances, names, width=console.width))
    if instances:
        first = (page - 1) * limit + 1
        more = f"; next: --page {page + 1}" if first + len(instances) - 1 < total else ""
        console.print(
            Text(f"runs {first}-{first + len(instances) - 1} of {total}{more}", style="dim")
        )


@traces.command("show")
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its spans as raw JSON.")
@click.option(
    "--failed", "failed_only", is_flag=True, help="Only failed spans (and their parents)."
)
@click.option(
    "--depth",
    type=click.IntRange(1),
    default=None,
    help="Only spans this many levels deep or less (1: the top spans).",
)
@click.option(
    "--max-spans", type=click.IntRange(1), default=None, help="Print at most this many spans."
)
@click.option(
    "--pager/--no-pager",
    default=True,
    show_default=True,
    help="Page the tree through $PAGER when printing to a terminal.",
)
@api_options
def show(
    instance_id: str,
    as_json: bool,
    failed_only: bool,
    depth: int | None,
    max_spans: int | None,
    pager: bool,
    api_url: str,
    token: str | None,
) -> None:
    """Show run INSTANCE_ID as a tree of spans with statuses, durations and summaries."""

    async def load(reader: TraceReader) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        instance = await reader.get_instance(instance_id)
        return instance, await reader.list_spans(instance_id)

    instance, spans = run_reader(api_url, token, load)
    if as_json:
        click.echo(json.dumps({"instance": instance, "spans": spans}, indent=2, ensure_ascii=False))
        return
    tree = run_tree(instance, spans, failed_only=failed_only, max_depth=depth, max_spans=max_spans)
    _print(tree, pager)
