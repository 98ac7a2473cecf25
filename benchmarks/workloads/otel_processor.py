"""Cost per span on the agent's thread: PrefactorSpanProcessor vs OTel's BatchSpanProcessor.

The same loop — start a GenAI span with OpenInference attributes, end it — under three
TracerProviders of their own: no processor (the baseline), OTel's ``BatchSpanProcessor``
with an exporter that does nothing, and ``PrefactorSpanProcessor`` feeding a real client
connected to the server (its delivery runs on the same event loop, after the loop). Per
span: the loop's wall time, the agent thread's CPU during it, and the whole process's CPU
until everything queued was handled (for ours: mapped, encoded and delivered to the
server, the worker thread and the engine included); ``delivered`` checks that every span
of ours reached the server. Ours is also broken down: ``ours_worker`` is the processor's
worker thread's CPU (filter, nesting, mapping, hand-over) and ``ours_engine`` the agent
thread's CPU after the loop until the client delivered everything (the engine runs on the
agent's event loop).

Args (JSON): url, token, spans.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from _wl import args, emit, get_json
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_core.otel import PrefactorSpanProcessor
from prefactor_core.otel._mapping import instance_id_for_trace
from prefactor_http import HttpClientConfig

ATTRIBUTES = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o",
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "What is the weather?",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "Rain, 12 degrees.",
    "llm.token_count.prompt": 12,
    "llm.token_count.completion": 5,
}


class NoOpExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Cost:
    """Per-span costs of one run of the loop, in µs."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._wall = time.perf_counter()
        self._thread = time.thread_time()
        self._process = time.process_time()
        self.wall = self.thread = self.process = 0.0

    def loop_done(self) -> None:
        """The agent's loop ended: its wall time and its thread's CPU."""
        self.wall = (time.perf_counter() - self._wall) / self.count * 1e6
        self.thread = (time.thread_time() - self._thread) / self.count * 1e6

    def all_done(self) -> None:
        """Everything the processor queued was handled: the process's CPU (every thread)."""
        self.process = (time.process_time() - self._process) / self.count * 1e6


def thread_cpu(thread: threading.Thread) -> float:
    """The CPU time (s) another thread of this process has used so far."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def per_span(provider: TracerProvider, count: int) -> tuple[Cost, str]:
    """The loop's costs, and the trace id of the run's root."""
    tracer = provider.get_tracer("openinference.instrumentation.bench")
    with tracer.start_as_current_span(
        "agent", attributes={"openinference.span.kind": "AGENT"}
    ) as root:
        cost = Cost(count)
        for _ in range(count):
            with tracer.start_as_current_span("chat", attributes=ATTRIBUTES):
                pass
        cost.loop_done()
    return cost, format(root.get_span_context().trace_id, "032x")


async def main() -> None:
    a: dict[str, Any] = args()
    count = a["spans"]
    baseline, _ = per_span(TracerProvider(), count)
    baseline.all_done()

    batch_provider = TracerProvider()
    batch_provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), max_queue_size=count + 10))
    batch, _ = per_span(batch_provider, count)
    batch_provider.force_flush()
    batch.all_done()
    batch_provider.shutdown()

    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=a["url"], api_token=a["token"])
    )
    async with PrefactorCoreClient(config) as client:
        provider = TracerProvider()
        processor = PrefactorSpanProcessor(client)
        provider.add_span_processor(processor)
        worker = processor._worker
        worker_before = thread_cpu(worker)
        ours, trace_id = per_span(provider, count)
        after_loop = time.thread_time()
        processor.force_flush()
        await client.flush(timeout=300)  # delivered: the engine's CPU is counted too
        ours.all_done()
        engine = (time.thread_time() - after_loop) / count * 1e6
        worker_cpu = (thread_cpu(worker) - worker_before) / count * 1e6
        processor.shutdown()
    stored = get_json(
        f"{a['url']}/api/v1/agent_spans?agent_instance_id={instance_id_for_trace(trace_id)}"
        "&pagination[page_size]=1",
        a["token"],
    )["pagination"]["item_count"]
    emit(
        {
            "spans": count,
            **{
                f"{name}_{what}": getattr(cost, what)
                for name, cost in (("baseline", baseline), ("batch", batch), ("ours", ours))
                for what in ("wall", "thread", "process")
            },
            "ours_worker": worker_cpu,
            "ours_engine": engine,
            "delivered": int(stored),
            "expected": count + 1,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
