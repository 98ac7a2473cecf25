"""Caller overhead: time on the agent's path per span (enter, start, complete, exit).

``sdk`` is ``ours``/``published`` (whichever this interpreter has), ``baseline`` (the
same loop, no SDK) or ``otel`` (OpenTelemetry's SDK: a ``TracerProvider`` with a
``BatchSpanProcessor`` and an exporter that does nothing; ``start_as_current_span``,
the params and the result set as attributes, status OK). ``shape`` is ``flat`` or
``nested`` (three spans inside each other; the time is per span). Only the loop is timed;
between repetitions our SDK is flushed (untimed) so its queue never fills, and OTel's
processor is flushed so its queue (sized to hold every span) never drops.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import _sdk
import _wl

T = _wl.SPAN_TYPE
P = _wl.PARAMS
R = _wl.RESULT


async def flat(instance: Any, n: int) -> float:
    perf = time.perf_counter
    t0 = perf()
    for _ in range(n):
        async with instance.span(T) as span:
            await span.start(P)
            await span.complete(R)
    return perf() - t0


async def nested(instance: Any, n: int) -> float:
    perf = time.perf_counter
    t0 = perf()
    for _ in range(n // 3):
        async with instance.span(T) as a:
            await a.start(P)
            async with instance.span(T) as b:
                await b.start(P)
                async with instance.span(T) as c:
                    await c.start(P)
                    await c.complete(R)
                await b.complete(R)
            await a.complete(R)
    return perf() - t0


def otel_tracer(spans: int) -> tuple[Any, Any]:
    """An OTel tracer whose provider batches into a no-op exporter, and the provider."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NoOpExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), max_queue_size=spans + 1000))
    return provider.get_tracer("bench"), provider


async def otel_flat(tracer: Any, n: int) -> float:
    from opentelemetry.trace import StatusCode

    ok = StatusCode.OK
    perf = time.perf_counter
    t0 = perf()
    for _ in range(n):
        with tracer.start_as_current_span(T) as span:
            span.set_attributes(P)
            span.set_attributes(R)
            span.set_status(ok)
    return perf() - t0


async def otel_nested(tracer: Any, n: int) -> float:
    from opentelemetry.trace import StatusCode

    ok = StatusCode.OK
    perf = time.perf_counter
    start = tracer.start_as_current_span
    t0 = perf()
    for _ in range(n // 3):
        with start(T) as a:
            a.set_attributes(P)
            with start(T) as b:
                b.set_attributes(P)
                with start(T) as c:
                    c.set_attributes(P)
                    c.set_attributes(R)
                    c.set_status(ok)
                b.set_attributes(R)
                b.set_status(ok)
            a.set_attributes(R)
            a.set_status(ok)
    return perf() - t0


async def main() -> None:
    a = _wl.args()
    sdk: str = a["sdk"]
    n: int = a["spans"]
    inner: int = a.get("inner_reps", 3)
    loop = nested if a["shape"] == "nested" else flat
    client: Any = None
    provider: Any = None
    if sdk == "otel":
        instance, provider = otel_tracer(n)
        loop = otel_nested if a["shape"] == "nested" else otel_flat
    elif sdk == "baseline":
        instance: Any = _sdk.NoopInstance()
    else:
        client = _sdk.make_client(a["api_url"], a["token"])
        instance = await _sdk.open_instance(client, "bench-caller")
    await loop(instance, min(n, 300))  # warm-up
    if client is not None and sdk == "ours":
        await client.flush(60)
    samples: list[float] = []
    for _ in range(inner):
        gc.collect()
        elapsed = await loop(instance, n)
        spans = n if a["shape"] == "flat" else (n // 3) * 3
        samples.append(elapsed / spans * 1e6)
        if client is not None and sdk == "ours":
            await client.flush(120)
        if provider is not None:
            provider.force_flush()
    if provider is not None:
        provider.shutdown()
    if client is not None:
        await instance.finish()
        await client.close()
    samples.sort()
    _wl.emit({"us_per_span": samples[len(samples) // 2], "inner": samples})


if __name__ == "__main__":
    asyncio.run(main())
