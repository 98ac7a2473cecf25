"""Waterfall geometry: where each span's bar starts and how wide it is, in percent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prefactor_server.traces.tree import SpanNode, parse_time

__all__ = ["Bar", "Timeline", "layout"]

_MIN_WIDTH = 0.4  # percent: a 0 ms span still shows as a sliver


@dataclass(frozen=True)
class Bar:
    """One span's bar: ``offset``/``width`` in percent of the run; ``start_s`` from its start."""

    node: SpanNode
    offset: float
    width: float
    start_s: float | None
    running: bool


@dataclass(frozen=True)
class Timeline:
    """The bars in tree order and the run's total span of time in seconds."""

    bars: list[Bar]
    total_s: float


def layout(
    nodes: Sequence[SpanNode], run_started: str | None, now: datetime | None = None
) -> Timeline:
    """Place ``nodes`` (in tree order) on one time axis.

    The axis runs from the earliest start (the run's or a span's) to the latest finish;
    a span still running extends to ``now``. A span that never started is a sliver at
    the time it was recorded.
    """
    moment = now or datetime.now(UTC)
    starts = [parse_time(n.span.get("started_at") or n.span.get("inserted_at")) for n in nodes]
    ends = [
        parse_time(n.span.get("finished_at"))
        or (moment if n.status in ("active", "pending") else None)
        for n in nodes
    ]
    run_start = parse_time(run_started)
    known = [t for t in [run_start, *starts] if t is not None]
    if not known:
        return Timeline([], 0.0)
    t0 = min(known)
    t1 = max([t for t in [*starts, *ends] if t is not None] + [t0])
    total = max((t1 - t0).total_seconds(), 1e-6)
    bars: list[Bar] = []
    for node, start, end in zip(nodes, starts, ends, strict=True):
        if start is None:
            bars.append(Bar(node, 0.0, _MIN_WIDTH, None, False))
            continue
        offset = (start - t0).total_seconds() / total * 100
        length = ((end or start) - start).total_seconds() / total * 100
        width = max(length, _MIN_WIDTH)
        offset = min(offset, 100 - width)
        running = node.status in ("active", "pending") and node.span.get("finished_at") is None
        bars.append(Bar(node, offset, width, (start - t0).total_seconds(), running))
    return Timeline(bars, total)
