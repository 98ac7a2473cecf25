"""``PrefactorSpanProcessor``: ended OpenTelemetry spans become Prefactor spans.

Nesting, both ways:

* An OTel span started while a Prefactor span is open (in the same task or thread
  context) joins that span's instance, under it.
* A Prefactor span opened while a bridged OTel span is current nests under that OTel span
  (through :mod:`prefactor_core._engine.parents`).
* An OTel trace started outside any Prefactor span gets an instance of its own, like the
  server's OTLP ingest: id ``otel-<trace id>``, agent from the resource's ``service.name``,
  finished when the last of the trace's local root spans ends.

Only spans the filter accepts are forwarded (by default GenAI spans: see
:func:`~prefactor_core.otel._mapping.is_genai_span`). A span that is not forwarded is
transparent: its forwarded descendants nest under its nearest forwarded ancestor.

The agent's thread pays what OpenTelemetry's ``BatchSpanProcessor`` pays: ``on_start``
appends the span and its Prefactor context (two context variables) to a deque,
``on_end`` appends the span to another. A worker thread does the rest in batches: the
nesting (:mod:`prefactor_core.otel._nesting`), the filter, the mapping, and the hand-over
to the client's engine.
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
)
from prefactor_core._engine.parents import add_resolver, remove_resolver
from prefactor_core._engine.wire import encode_json
from prefactor_core._traced_types import declare
from prefactor_core.context_stack import _STACK
from prefactor_core.current import _INSTANCE
from prefactor_core.operations import Operation, OperationType, derived_operation
from prefactor_core.otel._mapping import SCHEMA_NAMES, is_genai, json_safe, map_span
from prefactor_core.otel._nesting import Forward, Nesting, Node, Started
from prefactor_core.otel._sdk_spans import (
    SpanFilter,
    default_span_filter,
    ended_otel_span,
    to_otel_span,
)
from prefactor_core.sync_client import SyncPrefactorCoreClient

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["PrefactorSpanProcessor", "SpanFilter", "default_span_filter", "to_otel_span"]

logger = logging.getLogger(__name__)

_BATCH = 256
"""Ended spans that wake the worker at once."""
_LINGER = 0.05
"""Seconds the worker waits for a batch to fill before mapping what it has."""
_CHUNK = 64
"""Ended spans the worker settles under its lock at a time."""
_IDLE = 1.0
"""Seconds the worker sleeps at most between batches (a safety net: the hooks wake it)."""
_MAX_SCOPES = 1024
"""Instrumentation scopes whose default-filter verdict is remembered."""


class PrefactorSpanProcessor(SpanProcessor):
    """An OTel ``SpanProcessor`` that records ended spans as Prefactor spans.

    Add it to a ``TracerProvider`` of your own; it never touches the global provider. Its
    hooks never block and never raise: ``on_start`` and ``on_end`` only queue the span, a
    worker thread nests, filters and maps it and hands it to the client's delivery engine
    through the client's thread-safe entry (the one the sync client and ``@trace`` use: in
    order, bounded, never blocking).

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
            ``lambda span: True`` forwards every span. It is called once per span, off
            the agent's thread, when the verdict is first needed (see
            :data:`~prefactor_core.otel._sdk_spans.SpanFilter`); an error in it counts as
            "not forwarded" and is logged.
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
        self._loop = loop
        self._dropped = 0
        self._warned = False
        self._closed = False
        # The mapped spans' types must be known to instances that validate span types:
        # registered in the client's registry now, and declared like @trace's types, so a
        # client without a registry (one that only @trace feeds) registers them too.
        registry = client.config.schema_registry
        for name in SCHEMA_NAMES:
            declare(name, f"OpenTelemetry {name}")
            if registry is not None and not registry.has(name):
                registry.register_type(name=name, params_schema={"type": "object"})
        self._genai_scopes: dict[str, bool] = {}
        self._nesting = Nesting(
            self._accepts, lambda handle: handle._client is client, agent_id, agent_version
        )
        # Guards the nesting: the worker settles batches under it, and a Prefactor span
        # opened inside an OTel span reads its node under it. Re-entrant: the filter runs
        # under it, and a filter that opens a Prefactor span comes back through the
        # resolver on the same thread.
        self._lock = threading.RLock()
        # on_start's records, in start order: a Started tuple, or the span alone when it
        # started outside any Prefactor run
        self._started: deque[Started | ReadableSpan] = deque()
        self._ended: deque[Any] = deque()  # ended spans, and flush/stop markers
        self._wake = threading.Event()  # something is waiting
        self._hurry = threading.Event()  # ... and it should not wait for LINGER
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
        """Record the span and the Prefactor context it starts in (never blocks or
        raises): the innermost open Prefactor span, the stack's depth, the current
        instance. Everything else happens on the worker thread."""
        try:
            if self._closed:
                return
            stack = _STACK.get()
            handle = _INSTANCE.get()
            if handle is not None and handle._finished:
                handle = None
            if stack:
                manager = self._client._span_manager
                open_span = manager.table.spans.get(stack[-1]) if manager is not None else None
                self._started.append((span, len(stack), open_span, handle))
            elif handle is not None:
                self._started.append((span, 0, None, handle))
            else:  # outside any Prefactor run: the span alone (no tuple to allocate)
                self._started.append(span)
        except Exception:  # telemetry must never break the traced code
            logger.exception("PrefactorSpanProcessor.on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the ended span for the worker (never blocks or raises)."""
        if self._closed:  # after shutdown the worker is gone
            return
        ended = self._ended
        ended.append(span)
        # Wake the worker for the first span of a batch and again when a batch is full;
        # between the two it waits LINGER, so the agent's thread is not interrupted by a
        # thread switch per span.
        waiting = len(ended)
        if waiting == 1:
            self._wake.set()
        elif waiting == _BATCH:
            self._hurry.set()

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

    # -- the filter -----------------------------------------------------------------------

    def _accepts(self, span: ReadableSpan) -> bool:
        """The filter's verdict (an error in a user's filter: not forwarded, logged). The
        default filter's verdict on a GenAI instrumentation scope is remembered per
        scope, so such spans skip the attribute scan."""
        try:
            if self._filter is not default_span_filter:
                return bool(self._filter(span))
            scope = span.instrumentation_scope
            name = scope.name if scope is not None else ""
            genai_scope = self._genai_scopes.get(name)
            if genai_scope is None:
                genai_scope = is_genai(name, {})
                if len(self._genai_scopes) < _MAX_SCOPES:
                    self._genai_scopes[name] = genai_scope
            return genai_scope or is_genai("", span.attributes or {})
        except Exception:
            logger.exception("PrefactorSpanProcessor's span filter failed (span not forwarded)")
            return False

    # -- the worker -----------------------------------------------------------------------

    def _work(self) -> None:
        """The worker thread: settle ended spans in order, map them, hand them over."""
        ended = self._ended
        while True:
            self._wake.wait(_IDLE)
            self._wake.clear()
            if len(ended) < _BATCH:
                self._hurry.wait(_LINGER)  # set at once by a full batch, a flush, a stop
            self._hurry.clear()
            # In chunks: each is settled under the lock, then mapped and handed over, so
            # its spans are released early (fewer survive into the older GC generations)
            # and the lock is never held for long.
            while ended:
                chunk = [ended.popleft() for _ in range(min(len(ended), _CHUNK))]
                if self._handle(chunk):
                    return

    def _handle(self, chunk: list[Any]) -> bool:
        """Settle, map and hand over ended spans and markers, in order.

        Returns:
            True when it met the stop marker.
        """
        settled: list[Operation | Forward | threading.Event] = []
        nesting = self._nesting
        out = settled.append
        with self._lock:
            # Every span of the chunk started before it ended: its record is queued.
            self._take_started()
            for item in chunk:
                if isinstance(item, threading.Event):  # a flush or stop marker
                    settled.append(item)
                    continue
                try:
                    nesting.end(item, out)
                except Exception:  # a span that cannot be settled is logged, not fatal
                    logger.exception("PrefactorSpanProcessor could not settle a span")
        ops: list[Operation] = []
        now = time.time()
        for entry in settled:
            if isinstance(entry, Operation):
                ops.append(entry)
            elif isinstance(entry, tuple):
                try:
                    ops.append(_create(*entry, now))
                except Exception:  # a span that cannot be mapped is logged, not fatal
                    logger.exception("PrefactorSpanProcessor could not map a span")
            else:
                if ops:
                    self._submit(ops)
                    ops = []
                entry.set()
                if entry is self._stop:
                    return True
        if ops:
            self._submit(ops)
        return False

    def _take_started(self) -> None:
        """Work out where the spans started so far nest (holding the lock)."""
        started = self._started
        nesting = self._nesting
        while started:
            record = started.popleft()
            try:
                if isinstance(record, tuple):
                    nesting.start(*record)
                else:
                    nesting.start(record, 0, None, None)
            except Exception:
                logger.exception("PrefactorSpanProcessor could not record a started span")

    def _resolve_parent(self, instance_id: str, depth: int) -> str | None:
        """The current OTel span's Prefactor id, when it is inner to the SDK's stack
        (asked on the thread that opens a Prefactor span)."""
        context = otel_trace.get_current_span().get_span_context()
        if not context.is_valid or self._closed:
            return None
        nesting = self._nesting
        with self._lock:
            node = nesting.nodes.get(context.span_id)
            if node is None:
                self._take_started()  # it may have started since the worker's last batch
                node = nesting.nodes.get(context.span_id)
            if node is None or node.instance_id != instance_id or depth > node.depth:
                return None
            return nesting.prefactor_id(node)


def _encoded(payload: dict[str, Any]) -> str:
    """The payload's JSON text, with what JSON cannot hold written as the server's OTLP
    ingest keeps it (:func:`json_safe`): an attribute integer past 64 bits, which orjson
    refuses, and NaN or an infinity, which it writes as ``null`` (so a text with a
    ``null`` in it, rare in a span's payload, is made again from the safe payload)."""
    try:
        text = encode_json(payload)
    except TypeError:
        return encode_json(json_safe(payload))
    return encode_json(json_safe(payload)) if "null" in text else text


def _create(span: ReadableSpan, node: Node, parent_id: str | None, now: float) -> Operation:
    """The terminal span create of an ended, forwarded span."""
    own_id = node.own_id
    parent = span.parent
    mapped = map_span(
        ended_otel_span(
            span,
            node.trace,
            own_id[-16:],
            format(parent.span_id, "016x") if parent is not None else None,
        )
    )
    start = (span.start_time or 0) / 1e9
    payload = {
        SPAN_ID: own_id,
        INSTANCE_ID: node.instance_id,
        SCHEMA_NAME: mapped.schema_name,
        STATUS: mapped.status,
        PAYLOAD_JSON: _encoded(mapped.params),
        RESULT_JSON: _encoded(mapped.result) if mapped.result else None,
        PARENT_SPAN_ID: parent_id,
        STARTED_AT: start,
        FINISHED_AT: (span.end_time or 0) / 1e9 or start,
    }
    return derived_operation(OperationType.CREATE_SPAN, payload, now, CREATE_KEY_PREFIX, own_id)
