"""OTLP ingest: spans/s stored by ``POST /v1/traces`` (protobuf) from one exporter process.

The spans are made first (a real TracerProvider recording GenAI-shaped spans, 20 per
trace: an agent span with LLM and tool children) and encoded by the standard exporter's
own encoder; the clock then runs while the standard ``OTLPSpanExporter`` sends them in
batches of ``batch`` spans (the exporter answers SUCCESS only after the server committed,
retrying 503 after Retry-After), until the read API counts every span stored (a read
waits for the exports answered before it to be stored).

Args (JSON): url, token, spans, batch.
"""

from __future__ import annotations

import time
from typing import Any

from _wl import args, emit, get_json
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PER_TRACE = 20


def make_spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("openinference.instrumentation.bench")
    for _ in range(count // PER_TRACE):
        with tracer.start_as_current_span(
            "agent", attributes={"openinference.span.kind": "AGENT", "input.value": "plan a trip"}
        ):
            for index in range(PER_TRACE - 1):
                kind = "LLM" if index % 2 else "TOOL"
                with tracer.start_as_current_span(
                    f"step {index}",
                    attributes={
                        "openinference.span.kind": kind,
                        "llm.model_name": "gpt-4o",
                        "llm.input_messages.0.message.role": "user",
                        "llm.input_messages.0.message.content": "What is the weather?",
                        "llm.output_messages.0.message.role": "assistant",
                        "llm.output_messages.0.message.content": "Rain, 12 degrees.",
                        "llm.token_count.prompt": 12,
                        "llm.token_count.completion": 5,
                    },
                ):
                    pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def stored_total(url: str, token: str) -> int:
    """Every span the server has stored (all instances)."""
    body = get_json(f"{url}/api/v1/agent_spans?pagination[page_size]=1", token)
    return int(body["pagination"]["item_count"])


def main() -> None:
    a: dict[str, Any] = args()
    spans = make_spans(a["spans"])
    batch = a["batch"]
    exporter = OTLPSpanExporter(
        endpoint=f"{a['url']}/v1/traces", headers={"Authorization": f"Bearer {a['token']}"}
    )
    before = stored_total(a["url"], a["token"])
    failed = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for offset in range(0, len(spans), batch):
        if exporter.export(spans[offset : offset + batch]) is not SpanExportResult.SUCCESS:
            failed += 1
    cpu = time.process_time() - cpu
    # The clock stops once the read API counts the spans (a read waits for every export
    # answered before it to be stored: on SQLite the answer comes once an export is in
    # the OTLP journal, its spans are stored right after).
    stored = stored_total(a["url"], a["token"]) - before
    elapsed = time.perf_counter() - start
    exporter.shutdown()
    emit(
        {
            "spans": len(spans),
            "stored": stored,
            "failed_exports": failed,
            "seconds": elapsed,
            "spans_per_s": stored / elapsed,
            # The exporter's own CPU per span (encoding, HTTP): it shares the cores with
            # the server and waits for each answer, so it bounds the rate too.
            "exporter_cpu_us": cpu / len(spans) * 1e6,
        }
    )


if __name__ == "__main__":
    main()
