"""Caller overhead: time on the agent's path per span (enter, start, complete, exit).

``sdk`` is ``ours``/``published`` (whichever this interpreter has) or ``baseline`` (the
same loop, no SDK). ``shape`` is ``flat`` or ``nested`` (three spans inside each other;
the time is per span). Only the loop is timed; between repetitions our SDK is flushed
(untimed) so its queue never fills.
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


async def main() -> None:
    a = _wl.args()
    sdk: str = a["sdk"]
    n: int = a["spans"]
    inner: int = a.get("inner_reps", 3)
    loop = nested if a["shape"] == "nested" else flat
    client: Any = None
    if sdk == "baseline":
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
    if client is not None:
        await instance.finish()
        await client.close()
    samples.sort()
    _wl.emit({"us_per_span": samples[len(samples) // 2], "inner": samples})


if __name__ == "__main__":
    asyncio.run(main())
