"""The span tree of one run, built from span resources (``GET /api/v1/agent_spans``).

Example::

    roots = build_tree(spans)
    for node in walk(roots):
        print("  " * node.depth, node.title, node.status, format_duration(node.duration))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SpanNode",
    "build_tree",
    "duration_seconds",
    "format_duration",
    "parse_time",
    "span_error",
    "walk",
]


def parse_time(value: object) -> datetime | None:
    """Parse an API timestamp (``2026-08-10T09:00:01.000000Z``); None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def duration_seconds(started_at: object, finished_at: object) -> float | None:
    """Seconds between two API timestamps, or None when either is missing."""
    start, end = parse_time(started_at), parse_time(finished_at)
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def format_duration(seconds: float | None) -> str:
    """Format a duration for people: ``340 ms``, ``2.41 s``, ``3m 05s``; ``–`` when unknown."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def span_error(span: Mapping[str, Any]) -> str | None:
    """The error of a failed span as one line (``type: message``), from its result."""
    result = span.get("result_payload")
    error = result.get("error") if isinstance(result, dict) else None
    if error is None:
        return "failed" if span.get("status") == "failed" else None
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        if kind and message:
            return f"{kind}: {message}"
        return str(message or kind or error)
    return str(error)


@dataclass
class SpanNode:
    """One span in the tree, with its children in start order.

    Attributes:
        span: The span resource as the API returns it.
        depth: 0 for a root span.
        children: The spans whose parent is this span.
    """

    span: dict[str, Any]
    depth: int = 0
    children: list[SpanNode] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The span id."""
        return str(self.span["id"])

    @property
    def status(self) -> str:
        """``pending``, ``active``, ``complete``, ``failed`` or ``cancelled``."""
        return str(self.span.get("status") or "unknown")

    @property
    def schema_name(self) -> str:
        """The span type, e.g. ``agent:llm``."""
        return str(self.span.get("schema_name") or "")

    @property
    def title(self) -> str:
        """The span type's title, or its name when it has none."""
        return str(self.span.get("schema_title") or self.schema_name or "span")

    @property
    def summary(self) -> str:
        """The summary the server rendered from the span type's template ('' if none)."""
        return str(self.span.get("summary") or "")

    @property
    def never_started(self) -> bool:
        """True for a span cancelled before it started (recorded pending → cancelled)."""
        return self.status == "cancelled" and not self.span.get("started_at")

    @property
    def display_summary(self) -> str:
        """The summary to show: a cancelled-before-start span says so (and why)."""
        if self.never_started:
            result = self.span.get("result_payload")
            reason = result.get("reason") if isinstance(result, dict) else None
            return "cancelled before it started" + (f": {reason}" if reason else "")
        return self.summary

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None while running or when never started)."""
        return duration_seconds(self.span.get("started_at"), self.span.get("finished_at"))

    @property
    def error(self) -> str | None:
        """The error line of a failed span, else None."""
        return span_error(self.span) if self.status == "failed" else None


def _order(span: Mapping[str, Any]) -> tuple[str, str]:
    return (str(span.get("started_at") or span.get("inserted_at") or ""), str(span.get("id")))


def build_tree(spans: Iterable[Mapping[str, Any]]) -> list[SpanNode]:
    """Arrange spans by ``parent_span_id``; a span whose parent is absent becomes a root.

    Siblings are ordered by start time (then id, so equal times stay stable).
    """
    ordered = sorted((dict(span) for span in spans), key=_order)
    nodes = {str(span["id"]): SpanNode(span) for span in ordered}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent_id = node.span.get("parent_span_id")
        parent = nodes.get(str(parent_id)) if parent_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for root in roots:
        _set_depth(root, 0)
    return roots


def _set_depth(node: SpanNode, depth: int) -> None:
    # Iterative: a long chain of nested spans must not hit the recursion limit.
    stack = [(node, depth)]
    while stack:
        current, level = stack.pop()
        current.depth = level
        stack.extend((child, level + 1) for child in current.children)


def walk(roots: Iterable[SpanNode]) -> Iterator[SpanNode]:
    """Yield the nodes depth-first, parents before their children, in tree order."""
    stack = list(reversed(list(roots)))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))
