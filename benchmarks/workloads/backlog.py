"""Caller time per span as the backlog grows, from an empty queue to ``backlog`` spans queued.

Our client points at a closed port on 127.0.0.1, so nothing is delivered and every span
recorded stays queued (the queue is sized to hold them all). The loop (flat spans; enter,
start with a small params dict, complete with a small result, exit; a yield every 100
spans) records ``backlog`` spans in slices of ``block``, each timed (wall and the
thread's CPU) with the time the cyclic garbage collector spent inside it
(``gc.callbacks``) and its longest single collection.

``empty``: the median slice of the first three (at most ``3 * block`` spans queued).
``backlog``: every slice of the last third together (from two thirds of ``backlog`` to
all of it queued), so the full collections that come every few tens of thousands of
spans are counted at their share, and the longest of them is reported.

``freeze_step`` (optional) makes the client's queue with that ``freeze_step`` (0: the
queue never calls ``gc.freeze()``, as before issue 17).

Args (JSON): api_url (closed), token, block, backlog, freeze_step.
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
    """Wall time spent in the cyclic garbage collector, and its longest collection."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            took = time.perf_counter() - self._start
            self.seconds += took
            self.longest = max(self.longest, took)
            self.full += info["generation"] == 2


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


async def timed(instance: Any, n: int, clock: GcClock) -> dict[str, float]:
    clock.longest = 0.0
    gc0, full0 = clock.seconds, clock.full
    c0, t0 = time.thread_time(), time.perf_counter()
    await record(instance, n)
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    return {
        "spans": n,
        "us_per_span": wall / n * 1e6,
        "cpu_us_per_span": cpu / n * 1e6,
        "gc_us_per_span": (clock.seconds - gc0) / n * 1e6,
        "gc_longest_ms": clock.longest * 1e3,
        "full_collections": clock.full - full0,
    }


def together(slices: list[dict[str, float]]) -> dict[str, float]:
    """One figure for consecutive slices: per-span means weighted by spans, the maxima."""
    spans = sum(s["spans"] for s in slices)

    def mean(key: str) -> float:
        return sum(s[key] * s["spans"] for s in slices) / spans

    return {
        "spans": spans,
        "us_per_span": mean("us_per_span"),
        "cpu_us_per_span": mean("cpu_us_per_span"),
        "gc_us_per_span": mean("gc_us_per_span"),
        "gc_longest_ms": max(s["gc_longest_ms"] for s in slices),
        "full_collections": sum(s["full_collections"] for s in slices),
    }


async def main() -> None:
    a = _wl.args()
    block: int = a["block"]
    backlog: int = a["backlog"]
    size = 2 * backlog + 10_000
    queue = None
    if "freeze_step" in a:
        from prefactor_core import InMemoryQueue

        class Queue(InMemoryQueue[Any]):
            # The client takes ``queue or its own``: an empty queue (``len() == 0``)
            # would be ignored without this.
            def __bool__(self) -> bool:
                return True

        queue = Queue(size, put_timeout=0.05, freeze_step=a["freeze_step"])
    client = _sdk.make_client(
        a["api_url"], a["token"], ours_queue={"max_queue_size": size}, queue=queue
    )
    client._config = client._config.model_copy(
        update={"startup_timeout": 0.2, "close_timeout": 0.0}
    )
    instance = await _sdk.open_instance(client, "bench-backlog")
    clock = GcClock()
    await record(instance, 300)  # warm-up
    gc.collect()
    slices = [await timed(instance, block, clock) for _ in range(backlog // block)]
    first = sorted(slices[:3], key=lambda s: s["cpu_us_per_span"])[len(slices[:3]) // 2]
    _wl.emit(
        {
            "block": block,
            "backlog_spans": backlog,
            "queued_operations": client.statistics().queued,
            "empty": first,
            "backlog": together(slices[len(slices) * 2 // 3 :]),
            "slices_cpu_us": [round(s["cpu_us_per_span"], 2) for s in slices],
            "gc_frozen_objects": gc.get_freeze_count(),
        }
    )
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
