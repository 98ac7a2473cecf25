"""Our spans into an OTel exporter too: the cost of ``OtelSpanMirror``.

The loop of ``delivery.py`` (flat spans: enter, start with a small params dict, complete
with a small result, exit; a yield every 100 spans) with our client delivering to the
server, with or without an ``OtelSpanMirror`` feeding OTel's ``BatchSpanProcessor`` with
an exporter that does nothing. Per span: ``caller_cpu_us`` (the agent thread's CPU in
the loop), ``thread_cpu_us`` (the agent thread's CPU until the client delivered
everything and the mirror handed everything to the processor: caller, engine and the
mirror's tap), ``process_cpu_us`` (every thread: the mirror's worker and the
processor's export thread too). ``mirrored`` counts the spans the exporter received,
``stored`` the spans the server stored.

Args (JSON): url, token, spans, mirror.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import _sdk
import _wl
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from prefactor_core.otel import OtelSpanMirror

BLOCK = 100


class CountingExporter(SpanExporter):
    """Does nothing with the spans but count them."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


async def main() -> None:
    a: dict[str, Any] = _wl.args()
    n: int = a["spans"]
    client = _sdk.make_client(a["url"], a["token"])
    instance = await _sdk.open_instance(client, "bench-otel-mirror")
    exporter = CountingExporter()
    mirror = (
        OtelSpanMirror(client, BatchSpanProcessor(exporter, max_queue_size=n + 10))
        if a["mirror"]
        else None
    )
    P, R = _wl.PARAMS, _wl.RESULT
    cpu = time.thread_time
    caller = 0.0
    cpu0, proc0 = cpu(), time.process_time()
    remaining = n
    while remaining > 0:
        count = min(BLOCK, remaining)
        c0 = cpu()
        for _ in range(count):
            async with instance.span(_wl.SPAN_TYPE) as span:
                await span.start(P)
                await span.complete(R)
        caller += cpu() - c0
        remaining -= count
        await asyncio.sleep(0)
    await client.flush(600)
    if mirror is not None:
        mirror.force_flush()
    thread, process = cpu() - cpu0, time.process_time() - proc0
    await instance.finish()
    await client.close()
    if mirror is not None:
        mirror.shutdown()
    _, stored = _wl.wait_stored(a["url"], a["token"], instance.id, n, 120.0)
    _wl.emit(
        {
            "mirror": bool(a["mirror"]),
            "spans": n,
            "caller_cpu_us": caller / n * 1e6,
            "thread_cpu_us": thread / n * 1e6,
            "process_cpu_us": process / n * 1e6,
            "mirrored": exporter.count,
            "stored": stored,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
