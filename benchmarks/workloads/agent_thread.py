"""CPU per span on the agent's thread, without our SDK: OpenTelemetry's and a no-op loop.

The loop is the one ``delivery.py`` runs for our SDK (flat spans; enter, start with a
small params dict, complete with a small result, exit; a yield to the event loop every
100 spans), so the figures stand beside its ``caller_cpu_us``/``engine_cpu_us``:

* ``otel``: a ``TracerProvider`` with a ``BatchSpanProcessor`` (queue sized to hold
  every span, so none is dropped) and an exporter that does nothing. The agent's thread
  pays ``start_as_current_span``, the attributes and ``end``; the processor's own
  thread exports. ``caller_cpu_us`` is the agent thread's CPU (``time.thread_time``)
  around the loop, ``other_threads_cpu_us`` what the rest of the process used until
  ``force_flush`` returned (the export thread).
* ``baseline``: the same loop over no-op objects.

Args (JSON): sdk, spans.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import _sdk
import _wl

BLOCK = 100


async def main() -> None:
    a = _wl.args()
    sdk: str = a["sdk"]
    n: int = a["spans"]
    T, P, R = _wl.SPAN_TYPE, _wl.PARAMS, _wl.RESULT
    provider: Any = None
    if sdk == "otel":
        from caller import otel_tracer
        from opentelemetry.trace import StatusCode

        tracer, provider = otel_tracer(n)
        ok = StatusCode.OK
        start = tracer.start_as_current_span

        async def block(count: int) -> None:
            for _ in range(count):
                with start(T) as span:
                    span.set_attributes(P)
                    span.set_attributes(R)
                    span.set_status(ok)

    else:
        instance = _sdk.NoopInstance()

        async def block(count: int) -> None:
            for _ in range(count):
                async with instance.span(T) as span:
                    await span.start(P)
                    await span.complete(R)

    await block(300)  # warm-up
    if provider is not None:
        provider.force_flush()
    gc.collect()
    cpu = time.thread_time
    caller = 0.0
    t0, proc0, wall0 = cpu(), time.process_time(), time.perf_counter()
    remaining = n
    while remaining > 0:
        count = min(BLOCK, remaining)
        c0 = cpu()
        await block(count)
        caller += cpu() - c0
        remaining -= count
        await asyncio.sleep(0)
    if provider is not None:
        provider.force_flush()
    thread, process = cpu() - t0, time.process_time() - proc0
    wall = time.perf_counter() - wall0
    if provider is not None:
        provider.shutdown()
    _wl.emit(
        {
            "sdk": sdk,
            "spans": n,
            "caller_cpu_us": caller / n * 1e6,
            "thread_cpu_us": thread / n * 1e6,
            "other_threads_cpu_us": (process - thread) / n * 1e6,
            "wall_us": wall / n * 1e6,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
