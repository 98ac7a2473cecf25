"""Where bridged OpenTelemetry spans nest, worked out off the agent's thread.

``PrefactorSpanProcessor.on_start`` only records a :data:`Started` tuple (the span and
the Prefactor context it started in: the innermost open Prefactor span, the stack's
depth, the current instance). :class:`Nesting` turns those records, in the order the
spans started, into :class:`Node` values, and settles each ended span: whether it is
forwarded, its Prefactor parent, and the instance operations its trace needs.

Rules (the same as the server's OTLP ingest where no Prefactor span is involved):

* A span whose parent OTel span is known here joins the parent's instance.
* Otherwise it joins the innermost open Prefactor span it started in (under it), else the
  current instance of the processor's client (at its top), else the instance of its own
  trace (``otel-<trace id>``): a :class:`TraceRun`, registered and started when its first
  forwarded span is handed over and finished when its last local root span ends.
* The filter runs once per span, when its verdict is first needed: when the span ends, or
  earlier when a forwarded child ends (or a Prefactor span opens) inside it. A span that is
  not forwarded is transparent: its forwarded descendants nest under its nearest forwarded
  ancestor (or its Prefactor parent).

Not thread-safe: the processor calls it under its lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from prefactor_core._engine.optable import finish_instance_op, register_op, start_instance_op
from prefactor_core.operations import Operation
from prefactor_core.otel._mapping import agent_id_for_service, instance_id_for_trace, span_id_for
from prefactor_core.otel._sdk_spans import service_of
from prefactor_core.utils import generate_idempotency_key
from prefactor_http.models.types import STATUS_COMPLETE, STATUS_FAILED

if TYPE_CHECKING:
    from prefactor_core._open_spans import OpenSpan
    from prefactor_core.managers.agent_instance import AgentInstanceHandle

__all__ = ["Forward", "Nesting", "Node", "Started", "TraceRun"]

logger = logging.getLogger(__name__)

Started = tuple[ReadableSpan, int, "OpenSpan | None", "AgentInstanceHandle | None"]
"""What ``on_start`` records: the span, the Prefactor span stack's depth, the innermost
open Prefactor span (None when the stack is empty or its top is not this client's) and
the current instance (None when there is none or it has finished)."""

Forward = tuple[ReadableSpan, "Node", "str | None"]
"""An ended span to hand over: the span, its node and its Prefactor parent's id."""


class TraceRun:
    """The instance made for an OTel trace that started outside any Prefactor span."""

    __slots__ = ("instance_id", "open_roots", "registered", "started_ns")

    def __init__(self, instance_id: str, started_ns: int) -> None:
        self.instance_id = instance_id
        self.started_ns = started_ns  # its first local root's start
        self.open_roots = 0  # local root spans of the trace not yet ended
        self.registered = False  # its register and start were handed over


class Node:
    """A started OTel span, as far as nesting goes."""

    __slots__ = (
        "_own",
        "depth",
        "forwarded",
        "instance_id",
        "parent",
        "run",
        "span",
        "span_id",
        "stack_parent",
        "trace",
    )

    def __init__(
        self,
        span: ReadableSpan | None,
        span_id: int,
        trace: str,
        instance_id: str,
        parent: Node | None,
        stack_parent: str | None,
        depth: int,
        run: TraceRun | None,
    ) -> None:
        self.span = span  # kept until the filter's verdict is known
        self.span_id = span_id
        self.trace = trace  # the trace id, 32 hex digits
        self.instance_id = instance_id
        self.parent = parent  # the parent OTel span's node (None: a local root)
        self.stack_parent = stack_parent  # a local root's Prefactor parent span, if any
        self.depth = depth  # the Prefactor span stack's depth when it started
        self.run = run  # the trace's own instance, when it belongs to one
        self.forwarded: bool | None = None  # the filter's verdict, once asked
        self._own: str | None = None

    @property
    def own_id(self) -> str:
        """Its Prefactor id (``otel-<trace id>-<span id>``)."""
        own = self._own
        if own is None:
            own = self._own = span_id_for(self.trace, format(self.span_id, "016x"))
        return own


class Nesting:
    """The processor's nesting state: started spans' nodes and the traces' own runs.

    Args:
        accepts: The filter, with any error already handled (False).
        owns: Whether an instance handle belongs to the processor's client.
        agent_id: The agent of trace runs (None: from ``service.name``).
        agent_version: Their agent version (None: from the service).
    """

    def __init__(
        self,
        accepts: Callable[[ReadableSpan], bool],
        owns: Callable[[AgentInstanceHandle], bool],
        agent_id: str | None,
        agent_version: dict[str, Any] | None,
    ) -> None:
        self._accepts = accepts
        self._owns = owns
        self._agent_id = agent_id
        self._agent_version = agent_version
        self.nodes: dict[int, Node] = {}
        self._runs: dict[int, TraceRun] = {}

    def start(
        self,
        span: ReadableSpan,
        depth: int,
        open_span: OpenSpan | None,
        handle: AgentInstanceHandle | None,
    ) -> None:
        """Record where a started span nests (the parts of a :data:`Started` record)."""
        context = span.context
        if context is None:
            return
        parent = span.parent
        parent_node = self.nodes.get(parent.span_id) if parent is not None else None
        if parent_node is not None:
            node = Node(
                span,
                context.span_id,
                parent_node.trace,
                parent_node.instance_id,
                parent_node,
                None,
                depth,
                parent_node.run,
            )
        else:
            trace = format(context.trace_id, "032x")
            run: TraceRun | None = None
            stack_parent: str | None = None
            if open_span is not None:
                instance_id, stack_parent = open_span.instance_id, open_span.id
            elif handle is not None and self._owns(handle):
                instance_id = handle.id
            else:
                run = self._runs.get(context.trace_id)
                if run is None:
                    run = TraceRun(instance_id_for_trace(trace), span.start_time or time.time_ns())
                    self._runs[context.trace_id] = run
                run.open_roots += 1
                instance_id = run.instance_id
            node = Node(span, context.span_id, trace, instance_id, None, stack_parent, depth, run)
        self.nodes[context.span_id] = node

    def forwarded(self, node: Node) -> bool:
        """The filter's verdict on ``node``'s span (asked once)."""
        verdict = node.forwarded
        if verdict is None:
            span = node.span
            verdict = node.forwarded = span is not None and self._accepts(span)
            node.span = None
        return verdict

    def prefactor_id(self, node: Node) -> str | None:
        """The Prefactor span ``node``'s forwarded descendants nest under: itself, else
        its nearest forwarded ancestor, else the Prefactor span it started in."""
        current: Node | None = node
        while current is not None:
            if self.forwarded(current):
                return current.own_id
            if current.parent is None:
                return current.stack_parent
            current = current.parent
        return None  # pragma: no cover - the loop always returns

    def end(self, span: ReadableSpan, out: Callable[[Operation | Forward], None]) -> None:
        """Settle an ended span: pass to ``out``, in order, its trace run's register and
        start (for the run's first forwarded span), the span to hand over (when the
        filter forwards it) and its run's finish (when it was the run's last open local
        root)."""
        context = span.context
        if context is None:
            return
        node = self.nodes.pop(context.span_id, None)
        if node is None:
            return  # started before the processor was added
        run = node.run
        if self.forwarded(node):
            parent = node.parent
            parent_id = self.prefactor_id(parent) if parent is not None else node.stack_parent
            if run is not None and not run.registered:
                run.registered = True
                for op in self._register(run, span):
                    out(op)
            out((span, node, parent_id))
        if run is not None and node.parent is None:
            run.open_roots -= 1
            if run.open_roots <= 0:
                self._runs.pop(context.trace_id, None)
                if run.registered:
                    failed = span.status.status_code.value == 2
                    out(
                        finish_instance_op(
                            run.instance_id,
                            STATUS_FAILED if failed else STATUS_COMPLETE,
                            (span.end_time or time.time_ns()) / 1e9,
                            time.time(),
                            generate_idempotency_key(),
                        )
                    )

    def _register(self, run: TraceRun, span: ReadableSpan) -> list[Operation]:
        service, version = service_of(span)
        body = {
            "id": run.instance_id,
            "agent_id": self._agent_id or agent_id_for_service(service),
            "agent_version": self._agent_version
            or {"name": service, "external_identifier": version or "unversioned"},
            "agent_schema_version": {"external_identifier": "otel"},
            "update_current_version": True,
        }
        now = time.time()
        return [
            register_op(run.instance_id, body, now, generate_idempotency_key()),
            start_instance_op(
                run.instance_id, run.started_ns / 1e9, now, generate_idempotency_key()
            ),
        ]
