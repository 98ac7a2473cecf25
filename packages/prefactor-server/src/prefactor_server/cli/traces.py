"""``prefactor traces list|show``: look at runs through the server's read API."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from prefactor_server.cli._api import api_options, run_reader
from prefactor_server.traces.reader import TraceReader
from prefactor_server.traces.render import instances_table, run_tree

__all__ = ["traces"]

_STATUSES = ("pending", "active", "complete", "failed", "cancelled", "terminated")


@click.group()
def traces() -> None:
    """List runs (agent instances) and show one as a span tree."""


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
    help="Most runs to list (newest first).",
)
@api_options
def list_traces(
    agent_id: str | None, status: str | None, limit: int, api_url: str, token: str | None
) -> None:
    """List recent runs: agent, status, start, duration and span counts."""

    async def load(reader: TraceReader) -> tuple[list[dict[str, Any]], dict[str, str]]:
        instances = await reader.list_instances(agent_id=agent_id, status=status, limit=limit)
        agents = await reader.list_agents() if instances else []
        names = {str(agent["id"]): str(agent.get("name") or agent["id"]) for agent in agents}
        return instances, names

    instances, names = run_reader(api_url, token, load)
    Console(soft_wrap=False).print(instances_table(instances, names))


@traces.command("show")
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its spans as raw JSON.")
@api_options
def show(instance_id: str, as_json: bool, api_url: str, token: str | None) -> None:
    """Show run INSTANCE_ID as a tree of spans with statuses, durations and summaries."""

    async def load(reader: TraceReader) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        instance = await reader.get_instance(instance_id)
        return instance, await reader.list_spans(instance_id)

    instance, spans = run_reader(api_url, token, load)
    if as_json:
        click.echo(json.dumps({"instance": instance, "spans": spans}, indent=2, ensure_ascii=False))
        return
    Console().print(run_tree(instance, spans))
