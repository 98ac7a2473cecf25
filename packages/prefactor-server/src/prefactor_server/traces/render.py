"""Rich renderables for the terminal: a run's span tree and a table of runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from prefactor_server.traces.tree import (
    SpanNode,
    build_tree,
    duration_seconds,
    format_duration,
    parse_time,
)

__all__ = ["STATUS_STYLES", "instances_table", "run_tree", "status_text"]

STATUS_STYLES = {
    "complete": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "terminated": "magenta",
    "active": "cyan",
    "pending": "dim",
}
_MARKS = {
    "complete": "✓",
    "failed": "✗",
    "cancelled": "⊘",
    "terminated": "■",
    "active": "…",
    "pending": "·",
}


_SUMMARY_WIDTH = 90  # the full summary is in --json and the viewer


def status_text(status: str) -> Text:
    """A status word with its mark and colour, e.g. ``✓ complete`` in green."""
    return Text(f"{_MARKS.get(status, '?')} {status}", style=STATUS_STYLES.get(status, ""))


def _span_label(node: SpanNode) -> Text:
    label = Text()
    label.append(node.title, style="bold")
    label.append(f" [{node.schema_name}]", style="dim")
    label.append("  ")
    label.append_text(status_text(node.status))
    label.append(f"  {format_duration(node.duration)}", style="blue")
    summary = node.display_summary
    if summary:
        if len(summary) > _SUMMARY_WIDTH:
            summary = summary[: _SUMMARY_WIDTH - 1] + "…"
        label.append(f"  {summary}", style="italic" if node.never_started else "")
    if node.error:
        label.append(f"\nerror: {node.error}", style="red")
    return label


def run_tree(instance: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> Tree:
    """The run as a tree: the instance at the top, then its spans, nested.

    Every span line carries its title, type, status, duration and rendered summary; a
    failed span gets a second line with its error.
    """
    counts = instance.get("span_counts") or {}
    head = Text()
    head.append(f"run {instance['id']}", style="bold")
    head.append("  ")
    head.append_text(status_text(str(instance.get("status"))))
    duration = duration_seconds(instance.get("started_at"), instance.get("finished_at"))
    head.append(f"  {format_duration(duration)}", style="blue")
    head.append(f"  {counts.get('total', len(spans))} spans", style="dim")
    tree = Tree(head, guide_style="dim")

    def add(parent: Tree, node: SpanNode) -> None:
        branch = parent.add(_span_label(node))
        for child in node.children:
            add(branch, child)

    for root in build_tree(spans):
        add(tree, root)
    return tree


def _when(value: object) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "–"


def instances_table(
    instances: Sequence[Mapping[str, Any]], agent_names: Mapping[str, str]
) -> RenderableType:
    """A table of runs: id, agent, status, start, duration and span counts."""
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=32)  # ids are copied whole
    table.add_column("agent")
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    table.add_column("spans")
    for instance in instances:
        counts = instance.get("span_counts") or {}
        spans = f"{counts.get('total', 0)}"
        extra = [f"{counts[s]} {s}" for s in ("failed", "cancelled", "active") if counts.get(s)]
        if extra:
            spans += f" ({', '.join(extra)})"
        agent_id = str(instance.get("agent_id") or "")
        table.add_row(
            str(instance["id"]),
            agent_names.get(agent_id, agent_id),
            status_text(str(instance.get("status"))),
            _when(instance.get("started_at") or instance.get("inserted_at")),
            format_duration(
                duration_seconds(instance.get("started_at"), instance.get("finished_at"))
            ),
            spans,
        )
    if not instances:
        return Group(Text("No runs found.", style="dim"))
    return table
