"""``PrefactorSpanProcessor``: ended OpenTelemetry spans become Prefactor spans.

Nesting, both ways:

* An OTel span started while a Prefactor span is open (in the same task or thread
  context) joins that span's instance, under it.
* A Prefactor span opened while a bridged OTel span is current nests under that OTel span
  (through :mod:`prefactor_core._engine.parents`).
* An OTel trace started outside any Prefactor span gets an instance of its own, like the
  server's OTLP ingest: id ``otel-<trace id>``, agent from the resource's ``service.name``,
  finished when the trace's local root span ends.

Only spans the filter accepts are forwarded (by default GenAI spans: see
:func:`~prefactor_core.otel._mapping.is_genai_span`); the filter sees the span as it
starts. A span that is not forwarded is transparent: its forwarded descendants nest under
its nearest forwarded ancestor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from prefactor_core._engine.optable import (
    CREATE_KEY_PREFIX,
    FINISHED_AT,
    INSTANCE_ID,
    PARENT_SPAN_ID,
    PAYLOAD_JSON,
    RESULT_JSON,
    SCHEMA_NAME,
    SPAN_ID,
    STARTED_AT,
    STATUS,
    finish_instance_op,
    register_op,
    start_instance_op,
)
from prefactor_core._engine.parents import add_resolver, remove_resolver
from prefactor_core._engine.wire import encode_json
from prefactor_core._traced_types import declare
from prefactor_core.context_stack import _STACK
from prefactor_core.current import current_instance
from prefactor_core.operations import Operation, OperationType, derived_operation
from prefactor_core.otel._mapping import (
    SCHEMA_NAMES,
    agent_id_for_service,
    instance_id_for_trace,
    is_genai,
    map_span,
)
from prefactor_core.otel._sdk_spans import (
    Node,
    SpanFilter,
    default_span_filter,
    service_of,
    to_otel_span,
)
from prefactor_core.sync_client import SyncPrefactorCoreClient
from prefactor_core.utils import generate_idempotency_key
from prefactor_http.models.types import STATUS_COMPLETE, STATUS_FAILED

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["PrefactorSpanProcessor", "SpanFilter", "default_span_filter", "to_otel_span"]

logger = logging.getLogger(__name__)

_BATCH = 256
"""Ended spans that wake the worker at once."""
_LINGER = 0.05
"""Seconds the worker waits for a batch to fill before mapping what it has."""
_MAX_SCOPES = 1024
"""Instrumentation scopes whose default-filter verdict is remembered."""


class PrefactorSpanProcessor(SpanProcessor):
    """An OTel ``SpanProcessor`` that records ended spans as Prefactor spans.

    Add it to a ``TracerProvider`` of your own; it never touches the global provider. Its
    hooks never block and never raise: ``on_end`` queues the span, a worker thread maps
    it and hands it to the client's delivery engine through the client's thread-safe
    entry (the one the sync client and ``@trace`` use: in order, bounded, never blocking).

    Example::

        async with PrefactorCoreClient(config) as client:
            provider = TracerProvider()
            provider.add_span_processor(PrefactorSpanProcessor(client))
            OpenAIInstrumentor().instrument(tracer_provider=provider)

    Args:
        client: An initialised (or about to be) :class:`PrefactorCoreClient`, or a
            :class:`SyncPrefactorCoreClient` (opened here if it is not yet; its engine's
            loop is used, so no ``loop`` is needed).
        span_filter: Which spans to forward (default :func:`default_span_filter`);
            ``lambda span: True`` forwards every span.
        agent_id: The agent of instances made for OTel traces started outside any
            Prefactor span (default: a digest of the resource's ``service.name``).
        agent_version: Their agent version (default: named after ``service.name``,
            identified by ``service.version``).
        loop: The client's event loop (default: the running loop).

    Raises:
        RuntimeError: No loop is given and none is running.
    """

    def __init__(
        self,
        client: PrefactorCoreClient | SyncPrefactorCoreClient,
        *,
        span_filter: SpanFilter | None = None,
        agent_id: str | None = None,
        agent_version: dict[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if isinstance(client, SyncPrefactorCoreClient):
            # The sync client's engine: an async client on a loop of its own thread.
            client.open()
            engine = client._require_engine()
            client, loop = engine.client, engine.loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "PrefactorSpanProcessor needs the client's event loop: create it inside "
                    "that loop or pass loop="
                ) from None
        self._client = client
        self._filter = span_filter or default_span_filter
        self._agent_id = agent_id
        self._agent_version = agent_version
        self._loop = loop
        self._dropped = 0
        self._warned = False
        self._nodes: dict[int, Node] = {}
        self._owned: dict[int, str] = {}  # trace id → the instance made for it
        self._closed = False
        # The mapped spans' types must be known to instances that validate span types:
        # registered in the client's registry now, and declared like @trace's types, so a
        # client without a registry (one that only @trace feeds) registers them too.
        registry = client.config.schema_registry
        for name in SCHEMA_NAMES:
            declare(name, f"OpenTelemetry {name}")
            if registry is not None and not registry.has(name):
                registry.register_type(name=name, params_schema={"type": "object"})
        self._ended: deque[Any] = deque()
        self._wake = threading.Event()  # something is waiting
        self._hurry = threading.Event()  # ... and it should not wait for LINGER
        self._genai_scopes: dict[str, bool] = {}
        self._stop = threading.Event()
        self._worker = threading.Thread(
            target=self._work, name="prefactor-otel-processor", daemon=True
        )
        self._worker.start()
        add_resolver(self._resolve_parent)

    @property
    def dropped(self) -> int:
        """Operations that could not be handed to the client (a client not open or
        failed, its loop closed, or its entry's buffer full)."""
        return self._dropped

    # -- SpanProcessor --------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Record where the span nests (never blocks or raises)."""
        try:
            self._start(span)
        except Exception:  # telemetry must never break the traced code
            logger.exception("PrefactorSpanProcessor.on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span as a Prefactor span (never blocks or raises)."""
        try:
            self._end(span)
        except Exception:
            logger.exception("PrefactorSpanProcessor.on_end failed")

    def shutdown(self) -> None:
        """Hand over what has ended, stop the worker, and stop nesting Prefactor spans
        under OTel spans (idempotent; delivery itself is the client's)."""
        if self._closed:
            return
        self._closed = True
        remove_resolver(self._resolve_parent)
        self._ended.append(self._stop)
        self._wake.set()
        self._hurry.set()
        self._worker.join(timeout=10)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Map the ended spans and hand them to the client; off the client's loop, also
        wait until the client delivered them. Bounded by ``timeout_millis``.

        On the loop's own thread it cannot wait for delivery: it hands the spans to the
        client and returns; ``await client.flush()`` then delivers them.

        Returns:
            False when the time ran out (or the loop is closed), else True.
        """
        timeout = timeout_millis / 1000
        deadline = time.monotonic() + timeout
        if not self._closed:
            marker = threading.Event()
            self._ended.append(marker)
            self._wake.set()
            self._hurry.set()
            if not marker.wait(timeout):
                return False
        if self._on_loop():
            return True
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._flush(max(deadline - time.monotonic(), 0.0)), self._loop
            )
            return future.result(max(deadline - time.monotonic(), 0.0))
        except Exception:  # a closed loop, a timeout: report, never raise
            return False

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _flush(self, timeout: float) -> bool:
        return await self._client.flush(timeout)  # it takes in what the entry holds first

    def _submit(self, ops: list[Operation]) -> None:
        """Hand ``ops`` to the client in order (any thread; never blocks or raises)."""
        dropped = self._client._submit(ops)
        if dropped:
            self._dropped += dropped
            if not self._warned:
                self._warned = True
                logger.warning(
                    "PrefactorSpanProcessor dropped %d operation(s): the client is not open, "
                    "has failed, or its buffer is full (logged once; see .dropped)",
                    dropped,
                )

    # -- internals ------------------------------------------------------------------------

    def _start(self, span: Span) -> None:
        context = span.context
        if self._closed or context is None:
            return
        parent = span.parent
        parent_node = self._nodes.get(parent.span_id) if parent is not None else None
        stack = _STACK.get()
        forwarded = self._forwards(span)
        if parent_node is not None and parent_node.instance_id is not None:
            instance_id: str | None = parent_node.instance_id
            parent_id = parent_node.prefactor_id
            trace = parent_node.trace
        else:
            trace = format(context.trace_id, "032x")
            instance_id, parent_id = self._prefactor_parent(stack)
            if instance_id is None:
                instance_id = self._owned.get(context.trace_id)
            if instance_id is None and forwarded:
                instance_id = self._own_instance(span, trace, context.trace_id)
        self._nodes[context.span_id] = Node(
            instance_id,
            trace,
            context.span_id,
            parent_id,
            len(stack),
            forwarded and instance_id is not None,
            parent_node is None,
        )

    def _forwards(self, span: Span) -> bool:
        """The filter's decision; the default filter's verdict on a GenAI instrumentation
        scope is remembered per scope, so such spans skip the attribute scan."""
        if self._filter is not default_span_filter:
            return self._filter(span)
        scope = span.instrumentation_scope
        name = scope.name if scope is not None else ""
        genai_scope = self._genai_scopes.get(name)
        if genai_scope is None:
            genai_scope = is_genai(name, {})
            if len(self._genai_scopes) < _MAX_SCOPES:
                self._genai_scopes[name] = genai_scope
        return genai_scope or is_genai("", span.attributes or {})

    def _prefactor_parent(self, stack: tuple[str, ...]) -> tuple[str | None, str | None]:
        """The instance and span of the innermost open Prefactor span; else the current
        instance of this client (``async with instance`` or ``start()``), at its top."""
        manager = self._client.span_manager
        open_span = manager.table.spans.get(stack[-1]) if stack and manager is not None else None
        if open_span is not None:
            return open_span.instance_id, open_span.id
        handle = current_instance()
        if handle is not None and handle._client is self._client:
            return handle.id, None
        return None, None

    def _own_instance(self, span: Span, trace_id: str, trace_key: int) -> str:
        instance_id = instance_id_for_trace(trace_id)
        self._owned[trace_key] = instance_id
        service, version = service_of(span)
        body = {
            "id": instance_id,
            "agent_id": self._agent_id or agent_id_for_service(service),
            "agent_version": self._agent_version
            or {"name": service, "external_identifier": version or "unversioned"},
            "agent_schema_version": {"external_identifier": "otel"},
            "update_current_version": True,
        }
        started = (span.start_time or time.time_ns()) / 1e9
        now = time.time()
        self._submit(
            [
                register_op(instance_id, body, now, generate_idempotency_key()),
                start_instance_op(instance_id, started, now, generate_idempotency_key()),
            ]
        )
        return instance_id

    def _end(self, span: ReadableSpan) -> None:
        """The agent's part: settle the trace's bookkeeping and queue the span for the
        worker (mapping and encoding happen there, off the agent's thread)."""
        context = span.context
        if context is None or self._closed:  # after shutdown the worker is gone
            return
        node = self._nodes.pop(context.span_id, None)
        if node is None:
            return
        owned = self._owned.pop(context.trace_id, None) if node.local_root else None
        forwarded = node.forwarded and node.instance_id is not None
        if forwarded or owned is not None:
            ended = self._ended
            ended.append((node if forwarded else None, span, owned))
            # Wake the worker for the first span of a batch and again when a batch is
            # full; between the two it waits LINGER, so the agent's thread is not
            # interrupted by a thread switch per span.
            waiting = len(ended)
            if waiting == 1:
                self._wake.set()
            elif waiting >= _BATCH:
                self._hurry.set()

    def _work(self) -> None:
        """The worker thread: map ended spans to operations and hand them over in order."""
        ended = self._ended
        while True:
            self._wake.wait()
            self._wake.clear()
            if len(ended) < _BATCH:
                self._hurry.wait(_LINGER)  # set at once by a full batch, a flush, a stop
            self._hurry.clear()
            ops: list[Operation] = []
            while ended:
                item = ended.popleft()
                if isinstance(item, threading.Event):  # a flush or stop marker
                    if ops:
                        self._submit(ops)
                        ops = []
                    item.set()
                    if item is self._stop:
                        return
                    continue
                try:
                    ops.extend(self._operations(*item))
                except Exception:  # a span that cannot be mapped is logged, not fatal
                    logger.exception("PrefactorSpanProcessor could not map a span")
            if ops:
                self._submit(ops)

    def _operations(
        self, node: Node | None, span: ReadableSpan, owned: str | None
    ) -> list[Operation]:
        ops: list[Operation] = []
        if node is not None and node.instance_id is not None:
            mapped = map_span(to_otel_span(span))
            start = (span.start_time or 0) / 1e9
            payload = {
                SPAN_ID: node.own_id,
                INSTANCE_ID: node.instance_id,
                SCHEMA_NAME: mapped.schema_name,
                STATUS: mapped.status,
                PAYLOAD_JSON: encode_json(mapped.params),
                RESULT_JSON: encode_json(mapped.result) if mapped.result else None,
                PARENT_SPAN_ID: node.parent_id,
                STARTED_AT: start,
                FINISHED_AT: (span.end_time or 0) / 1e9 or start,
            }
            ops.append(
                derived_operation(
                    OperationType.CREATE_SPAN, payload, time.time(), CREATE_KEY_PREFIX, node.own_id
                )
            )
        if owned is not None:
            # The trace's local root ended (forwarded or not): its instance is over.
            failed = span.status.status_code.value == 2
            ops.append(
                finish_instance_op(
                    owned,
                    STATUS_FAILED if failed else STATUS_COMPLETE,
                    (span.end_time or time.time_ns()) / 1e9,
                    time.time(),
                    generate_idempotency_key(),
                )
            )
        return ops

    def _resolve_parent(self, instance_id: str, depth: int) -> str | None:
        """The current OTel span's Prefactor id, when it is inner to the SDK's stack."""
        context = otel_trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        node = self._nodes.get(context.span_id)
        if node is None or node.instance_id != instance_id or depth > node.depth:
            return None
        return node.prefactor_id
