"""``OtelSpanMirror``: Prefactor spans also sent to OpenTelemetry (the other direction).

The mirror taps the client's delivery engine (``prefactor_core._engine.taps``): the
engine's reader shows it every operation as it takes it from the queue, and the mirror
only keeps a reference (a deque append on the agent's loop thread). A worker thread turns
the operations into ended OTel spans (:mod:`prefactor_core.otel._outbound`) and hands
them to the OTel ``SpanProcessor`` given, typically a ``BatchSpanProcessor`` around an
``OTLPSpanExporter``. Delivery to Prefactor is not changed or delayed by it, and a
failing processor never reaches the agent (logged once, counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from prefactor_core.operations import Operation
from prefactor_core.otel._outbound import Outbound
from prefactor_core.sync_client import SyncPrefactorCoreClient

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["OtelSpanMirror"]

logger = logging.getLogger(__name__)

_BATCH = 512
"""Operations waiting that wake the worker at once."""
_LINGER = 0.05
"""Seconds the worker waits for a batch to fill."""
_IDLE = 1.0
"""Seconds the worker sleeps at most between batches (the tap wakes it)."""


class OtelSpanMirror:
    """Sends the client's spans to an OpenTelemetry ``SpanProcessor`` as well.

    Every span the client records (from ``@trace``, ``span()``, the sync client, the
    adapters) also becomes an ended OTel span: each agent instance is one OTel trace with
    a root span for the run, the spans keep their tree, times, status, params and result
    (see :mod:`prefactor_core.otel._outbound` for the attributes). Spans that came from
    OpenTelemetry through :class:`PrefactorSpanProcessor` are not sent back.

    Spans are mirrored as the client's engine takes them in, after their finish was
    queued: call ``await client.flush()`` (or close the client) before
    :meth:`force_flush` or :meth:`shutdown` to be sure the last ones are in.

    Example::

        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        mirror = OtelSpanMirror(client, BatchSpanProcessor(OTLPSpanExporter()))
        ...
        await client.close()
        mirror.shutdown()  # exports what is left, shuts the processor down

    Args:
        client: A :class:`PrefactorCoreClient` (opened before or after) or a
            :class:`SyncPrefactorCoreClient` (opened here if it is not yet).
        span_processor: Where the spans go (the mirror owns it: :meth:`shutdown` shuts
            it down, as a ``TracerProvider`` does).
        resource: The spans' resource (default: ``Resource.create()``, which reads
            ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``).
        max_backlog: The most operations waiting for the worker; beyond it they are not
            mirrored (counted in :attr:`dropped`; Prefactor still gets them).

    Raises:
        TypeError: ``span_processor`` is not an OTel SDK ``SpanProcessor``, or
            ``client`` is not a Prefactor client.
        ValueError: ``max_backlog`` is below 1.
    """

    def __init__(
        self,
        client: PrefactorCoreClient | SyncPrefactorCoreClient,
        span_processor: SpanProcessor,
        *,
        resource: Resource | None = None,
        max_backlog: int = 100_000,
    ) -> None:
        if not isinstance(span_processor, SpanProcessor):
            raise TypeError(
                "span_processor must be an opentelemetry.sdk.trace.SpanProcessor (for "
                "example BatchSpanProcessor(exporter)), got "
                f"{type(span_processor).__name__}"
            )
        if resource is not None and not isinstance(resource, Resource):
            raise TypeError(f"resource must be an OTel Resource, got {type(resource).__name__}")
        if type(max_backlog) is not int or max_backlog < 1:
            raise ValueError(f"max_backlog must be a positive int, got {max_backlog!r}")
        if isinstance(client, SyncPrefactorCoreClient):
            client.open()
            client = client._require_engine().client
        taps = getattr(client, "_taps", None)
        if taps is None:
            raise TypeError(
                "client must be a PrefactorCoreClient or a SyncPrefactorCoreClient, got "
                f"{type(client).__name__}"
            )
        self._taps = taps
        self._processor = span_processor
        self._max_backlog = max_backlog
        self._outbound = Outbound(resource or Resource.create(), self._emit)
        self._ops: deque[Operation | threading.Event] = deque()
        self._dropped = 0
        self._failures = 0
        self._warned = False
        self._closed = False
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(
            target=self._work, name="prefactor-otel-mirror", daemon=True
        )
        self._worker.start()
        taps.add(self._observe)

    @property
    def dropped(self) -> int:
        """Operations not mirrored: the backlog was full, or the mirror was shut down."""
        return self._dropped

    @property
    def failures(self) -> int:
        """Operations the mirror could not convert, and spans the processor refused."""
        return self._failures

    @property
    def emitted(self) -> int:
        """Spans handed to the processor."""
        return self._outbound.emitted

    def _observe(self, op: Operation) -> None:
        """The engine's tap (the engine's loop thread): keep the operation for the worker."""
        ops = self._ops
        waiting = len(ops)
        if waiting >= self._max_backlog or self._closed:
            self._dropped += 1
            return
        ops.append(op)
        if waiting == 0:
            self._wake.set()
        elif waiting + 1 == _BATCH:
            self._hurry.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Convert what the engine has taken in so far and flush the processor.

        Returns:
            False when ``timeout_millis`` ran out or the processor's flush said False.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._closed:
            marker = threading.Event()
            self._ops.append(marker)
            self._wake.set()
            self._hurry.set()
            if not marker.wait(timeout_millis / 1000):
                return False
        left = max(int((deadline - time.monotonic()) * 1000), 0)
        flushed: object = self._processor.force_flush(left)
        return flushed is not False  # the base class's flush answers None

    def shutdown(self) -> None:
        """Stop mirroring: convert what was taken in, stop the worker, and shut the
        processor down (idempotent)."""
        if self._closed:
            return
        self._taps.remove(self._observe)
        self._closed = True
        self._ops.append(self._stop)
        self._wake.set()
        self._hurry.set()
        self._worker.join(timeout=30)
        try:
            self._processor.shutdown()
        except Exception:
            logger.exception("the span processor's shutdown failed")

    def __enter__(self) -> OtelSpanMirror:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    # -- the worker ---------------------------------------------------------------------

    def _work(self) -> None:
        ops = self._ops
        take = self._outbound.take
        while True:
            self._wake.wait(_IDLE)
            self._wake.clear()
            if len(ops) < _BATCH:
                self._hurry.wait(_LINGER)
            self._hurry.clear()
            while ops:
                item = ops.popleft()
                if isinstance(item, threading.Event):
                    item.set()
                    if item is self._stop:
                        return
                    continue
                try:
                    take(item)
                except Exception:
                    self._failed("could not convert an operation")

    def _emit(self, span: ReadableSpan) -> None:
        try:
            self._processor.on_end(span)
        except Exception:
            self._failed("the span processor's on_end failed")

    def _failed(self, what: str) -> None:
        self._failures += 1
        if not self._warned:
            self._warned = True
            logger.exception("OtelSpanMirror: %s (logged once; see .failures)", what)
