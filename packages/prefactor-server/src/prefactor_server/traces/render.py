"""Rich renderables for the terminal: a run's span tree and a table of runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from prefactor_server.traces.llm import LlmFacts, llm_facts
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


def _shown(
    roots: Sequence[SpanNode], failed_only: bool, max_depth: int | None
) -> tuple[set[int], int]:
    """Which nodes to print (by ``id()``) and how many nodes there are in all."""
    keep: set[int] = set()
    total = 0
    for root in roots:
        stack: list[tuple[SpanNode, list[SpanNode]]] = [(root, [])]
        while stack:
            node, ancestors = stack.pop()
            total += 1
            path = [*ancestors, node]
            if (max_depth is None or node.depth < max_depth) and (
                not failed_only or node.status == "failed"
            ):
                keep.update(id(n) for n in path)  # a kept span keeps its ancestors
            stack.extend((child, path) for child in node.children)
    return keep, total


def run_tree(
    instance: Mapping[str, Any],
    spans: Sequence[Mapping[str, Any]],
    *,
    failed_only: bool = False,
    max_depth: int | None = None,
    max_spans: int | None = None,
) -> Tree:
    """The run as a tree: the instance at the top, then its spans, nested.

    Every span line carries its title, type, status, duration and rendered summary; a
    failed span gets a second line with its error. ``failed_only`` keeps failed spans
    (with their ancestors), ``max_depth`` the spans above that depth (0: roots only),
    ``max_spans`` the first spans in tree order; a last line says how many were left out.
    """
    counts = instance.get("span_counts") or {}
    totals = LlmFacts()
    for span in spans:
        totals.add(llm_facts(span.get("payload"), span.get("result_payload")))
    head = Text()
    head.append(f"run {instance['id']}", style="bold")
    head.append("  ")
    head.append_text(status_text(str(instance.get("status"))))
    duration = duration_seconds(instance.get("started_at"), instance.get("finished_at"))
    head.append(f"  {format_duration(duration)}", style="blue")
    head.append(f"  {counts.get('total', len(spans))} spans", style="dim")
    if totals.total_tokens:
        head.append(f"  {totals.total_tokens:,} tokens", style="dim")
    if totals.cost:
        head.append(f"  ${totals.cost:.4f}", style="dim")
    tree = Tree(head, guide_style="dim")
    roots = build_tree(spans)
    keep, total = _shown(roots, failed_only, max_depth)
    budget = len(keep) if max_spans is None else max_spans
    printed = 0
    # Iterative, parents before children: a deep chain must not hit the recursion limit.
    stack: list[tuple[Tree, SpanNode]] = [(tree, root) for root in reversed(roots)]
    while stack and printed < budget:
        parent, node = stack.pop()
        if id(node) not in keep:
            continue
        printed += 1
        branch = parent.add(_span_label(node))
        stack.extend((branch, child) for child in reversed(node.children))
    if printed < total:
        tree.add(
            Text(
                f"… {total - printed} more spans not shown (--failed, --depth, --max-spans)",
                style="dim italic",
            )
        )
    return tree


def _when(value: object) -> str:
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "–"


def _short_when(value: object) -> str:
    moment = parse_time(value)
    return moment.strftime("%m-%d %H:%M") if moment is not None else "–"


def instances_table(
    instances: Sequence[Mapping[str, Any]], agent_names: Mapping[str, str], *, width: int = 200
) -> RenderableType:
    """A table of runs: id, agent, status, start, duration and span counts, in ``width``.

    Below 120 columns the start is short and counts compact (``16 ✗1 ⊘1``); below 100 the
    agent column goes (``--agent`` filters by it), so the table fits 80 columns. The id
    always stays whole (it is what gets copied).
    """
    if not instances:
        return Group(Text("No runs found.", style="dim"))
    wide, with_agent = width >= 120, width >= 100
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=32)
    if with_agent:
        table.add_column("agent", no_wrap=True, overflow="ellipsis", max_width=None if wide else 16)
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("started (UTC)" if wide else "started", no_wrap=True, min_width=11)
    table.add_column("duration" if wide else "time", no_wrap=True, justify="right", min_width=6)
    table.add_column("spans", no_wrap=not wide)
    marks = {"failed": "✗", "cancelled": "⊘", "active": "●"}
    for instance in instances:
        counts = instance.get("span_counts") or {}
        spans = f"{counts.get('total', 0)}"
        if wide:
            extra = [f"{counts[s]} {s}" for s in ("failed", "cancelled", "active") if counts.get(s)]
            if extra:
                spans += f" ({', '.join(extra)})"
        else:
            spans += "".join(f" {marks[s]}{counts[s]}" for s in marks if counts.get(s))
        agent_id = str(instance.get("agent_id") or "")
        started = instance.get("started_at") or instance.get("inserted_at")
        row = [str(instance["id"])]
        if with_agent:
            row.append(agent_names.get(agent_id, agent_id))
        table.add_row(
            *row,
            status_text(str(instance.get("status"))),
            _when(started) if wide else _short_when(started),
            format_duration(
                duration_seconds(instance.get("started_at"), instance.get("finished_at"))
            ),
            spans,
        )
    return table
