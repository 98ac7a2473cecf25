"""Cost per span on the agent's thread: PrefactorSpanProcessor vs OTel's BatchSpanProcessor.

The same loop — start a GenAI span with OpenInference attributes, end it — under three
TracerProviders of their own: no processor (the baseline), OTel's ``BatchSpanProcessor``
with an exporter that does nothing, and ``PrefactorSpanProcessor`` feeding a real client
connected to the server (its delivery runs on the same event loop, after the loop). The
time per span is what the agent's thread pays; ``delivered`` checks that every span of
ours reached the server.

Args (JSON): url, token, spans.
"""

from __future__ import annotations

import asyncio
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


def per_span(provider: TracerProvider, count: int) -> tuple[float, str]:
    """Seconds per span of the loop, and the trace id of the run's root."""
    tracer = provider.get_tracer("openinference.instrumentation.bench")
    with tracer.start_as_current_span(
        "agent", attributes={"openinference.span.kind": "AGENT"}
    ) as root:
        start = time.perf_counter()
        for _ in range(count):
            with tracer.start_as_current_span("chat", attributes=ATTRIBUTES):
                pass
        elapsed = time.perf_counter() - start
    return elapsed / count, format(root.get_span_context().trace_id, "032x")


async def main() -> None:
    a: dict[str, Any] = args()
    count = a["spans"]
    baseline, _ = per_span(TracerProvider(), count)

    batch_provider = TracerProvider()
    batch_provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), max_queue_size=count + 10))
    batch, _ = per_span(batch_provider, count)
    batch_provider.shutdown()

    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=a["url"], api_token=a["token"])
    )
    async with PrefactorCoreClient(config) as client:
        provider = TracerProvider()
        processor = PrefactorSpanProcessor(client)
        provider.add_span_processor(processor)
        ours, trace_id = per_span(provider, count)
        processor.force_flush()
        await client.flush(timeout=300)
        processor.shutdown()
    stored = get_json(
        f"{a['url']}/api/v1/agent_spans?agent_instance_id={instance_id_for_trace(trace_id)}"
        "&pagination[page_size]=1",
        a["token"],
    )["pagination"]["item_count"]
    emit(
        {
            "spans": count,
            "baseline_us": baseline * 1e6,
            "batch_us": batch * 1e6,
            "ours_us": ours * 1e6,
            "delivered": int(stored),
            "expected": count + 1,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
