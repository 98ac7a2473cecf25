"""Caller time per span as the backlog grows: an empty queue against ``backlog`` spans queued.

Our client points at a closed port on 127.0.0.1, so nothing is delivered and every span
recorded stays queued (the queue is sized to hold them all). The loop (flat spans; enter,
start with a small params dict, complete with a small result, exit; a yield every 100
spans) is timed over ``block`` spans twice: first with nothing queued, then after
``backlog`` more spans were recorded (untimed). Each timing is the best of ``inner``
consecutive blocks (the machine is shared and noisy). The time the cyclic garbage
collector spent inside each timed block (``gc.callbacks``) says how much of the
difference is its scans of the live backlog.

Args (JSON): api_url (closed), token, block, backlog, inner.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import _sdk
import _wl

BLOCK = 100


class GcClock:
    """Wall time spent in the cyclic garbage collector, by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._start
            self.counts[generation] += 1

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.counts)


async def record(instance: Any, n: int) -> None:
    T, P, R = _wl.SPAN_TYPE, _wl.PARAMS, _wl.RESULT
    remaining = n
    while remaining > 0:
        for _ in range(min(BLOCK, remaining)):
            async with instance.span(T) as span:
                await span.start(P)
                await span.complete(R)
        remaining -= BLOCK
        await asyncio.sleep(0)


async def timed(instance: Any, n: int, inner: int, clock: GcClock) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(inner):
        gc_s0, gc_n0 = clock.snapshot()
        c0, t0 = time.thread_time(), time.perf_counter()
        await record(instance, n)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        gc_s1, gc_n1 = clock.snapshot()
        sample = {
            "us_per_span": wall / n * 1e6,
            "cpu_us_per_span": cpu / n * 1e6,
            "gc_us_per_span": [(b - a) / n * 1e6 for a, b in zip(gc_s0, gc_s1, strict=True)],
            "gc_collections": [b - a for a, b in zip(gc_n0, gc_n1, strict=True)],
        }
        if best is None or sample["cpu_us_per_span"] < best["cpu_us_per_span"]:
            best = sample
    assert best is not None
    return best


async def main() -> None:
    a = _wl.args()
    block: int = a["block"]
    backlog: int = a["backlog"]
    inner: int = a.get("inner", 3)
    total = backlog + block * (2 * inner + 1)
    client = _sdk.make_client(
        a["api_url"], a["token"], ours_queue={"max_queue_size": 2 * total + 1000}
    )
    client._config = client._config.model_copy(
        update={"startup_timeout": 0.2, "close_timeout": 0.0}
    )
    instance = await _sdk.open_instance(client, "bench-backlog")
    clock = GcClock()
    await record(instance, 300)  # warm-up
    gc.collect()
    empty = await timed(instance, block, inner, clock)
    queued_before = client.statistics().queued
    await record(instance, backlog)
    queued = client.statistics().queued
    full = await timed(instance, block, inner, clock)
    _wl.emit(
        {
            "block": block,
            "backlog_spans": backlog,
            "queued_operations_at_empty": queued_before,
            "queued_operations_at_backlog": queued,
            "empty": empty,
            "backlog": full,
            "gc_frozen_objects": gc.get_freeze_count(),
        }
    )
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
