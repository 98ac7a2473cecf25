"""Event-loop lag while our SDK delivers: how long the engine holds the agent's loop.

``spans`` flat spans are recorded first (the agent's own work, not measured here; the
queue is sized to hold them all), then a ticker task asks the loop to wake it every
1 ms while ``flush`` delivers them to the server. For every tick it records the lag (the
interval beyond 1 ms) and the CPU the loop's thread used in that interval
(``time.thread_time``): a long interval with little CPU is the OS running something else
on this shared machine, a long interval with the CPU busy is the engine holding the
loop. The same ticker then runs alone on the idle loop for as long, as the machine's
noise floor. The cyclic garbage collector's part is counted apart (``gc.callbacks``):
its longest single collection and its full (generation 2) collections while delivering.

``client``: ``async`` (``PrefactorCoreClient``, its engine on the agent's loop: the
default) or ``sync`` (``SyncPrefactorCoreClient`` used from the async agent: its engine
runs on its own thread and starts delivering while the spans are still being recorded;
``flush`` is awaited through ``asyncio.to_thread``, the way an async agent calls it, and
``queued_at_flush`` says how much of the delivery was left for the ticker to see).

Args (JSON): api_url, token, spans, batch_size (optional: ``QueueConfig.batch_size``),
client (optional).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import _sdk
import _wl

TICK = 0.001


async def ticker(stop: asyncio.Event, out: list[tuple[float, float]]) -> None:
    perf, cpu = time.perf_counter, time.thread_time
    last_wall, last_cpu = perf(), cpu()
    while not stop.is_set():
        await asyncio.sleep(TICK)
        wall, used = perf(), cpu()
        out.append((wall - last_wall - TICK, used - last_cpu))
        last_wall, last_cpu = wall, used


class GcWatch:
    """The collector's collections while ``on`` is set: the longest (in CPU time of the
    loop's thread, so the machine's other load does not count), and how many were full."""

    def __init__(self) -> None:
        self.on = False
        self.longest = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._start = time.thread_time()
            return
        self.longest = max(self.longest, time.thread_time() - self._start)
        self.full += info["generation"] == 2

    def take(self) -> dict[str, float]:
        out = {"gc_longest_cpu_ms": self.longest * 1e3, "gc_full_collections": self.full}
        self.longest, self.full = 0.0, 0
        return out


def summary(ticks: list[tuple[float, float]]) -> dict[str, Any]:
    lags = sorted(lag for lag, _ in ticks)
    busy = sorted(used for _, used in ticks)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1e3

    return {
        "ticks": len(ticks),
        "lag_max_ms": lags[-1] * 1e3,
        "lag_p99_ms": pct(lags, 0.99),
        "lag_p999_ms": pct(lags, 0.999),
        "lags_over_2ms": sum(1 for lag in lags if lag > 0.002),
        "busy_max_ms": busy[-1] * 1e3,
        "busy_p999_ms": pct(busy, 0.999),
        "busy_over_2ms": sum(1 for used in busy if used > 0.002),
    }


async def main() -> None:
    a = _wl.args()
    n: int = a["spans"]
    sync = a.get("client", "async") == "sync"
    queue: dict[str, Any] = {"max_queue_size": 2 * n + 1000}
    if "batch_size" in a:
        queue["batch_size"] = a["batch_size"]
    T, P, R = _wl.SPAN_TYPE, _wl.PARAMS, _wl.RESULT
    client: Any
    if sync:
        import _sync_sdk

        client = _sync_sdk.make_client(a["api_url"], a["token"], queue)
        instance = await _sync_sdk.open_instance(client, "bench-lag-sync")
        for _ in range(n):
            with instance.span(T) as span:
                span.start(P)
                span.complete(R)

        async def flush() -> None:
            await asyncio.to_thread(client.flush, 600)

    else:
        client = _sdk.make_client(a["api_url"], a["token"], ours_queue=queue)
        instance = await _sdk.open_instance(client, "bench-lag")
        for _ in range(n):
            async with instance.span(T) as span:
                await span.start(P)
                await span.complete(R)

        async def flush() -> None:
            await client.flush(600)

    gc.collect()
    watch = GcWatch()
    queued = client.statistics().queued
    stop = asyncio.Event()
    ticks: list[tuple[float, float]] = []
    task = asyncio.create_task(ticker(stop, ticks))
    watch.on = True
    t0 = time.perf_counter()
    await flush()
    delivery_s = time.perf_counter() - t0
    stop.set()
    await task
    delivering = {**summary(ticks), **watch.take()}
    idle: list[tuple[float, float]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(stop, idle))
    await asyncio.sleep(delivery_s)
    stop.set()
    await task
    watch.on = False
    idle_summary = {**summary(idle), **watch.take()}
    stats = client.statistics()
    if sync:
        instance.finish()
        await asyncio.to_thread(client.close)
    else:
        await instance.finish()
        await client.close()
    _wl.emit(
        {
            "spans": n,
            "client": "sync" if sync else "async",
            "queued_at_flush": queued,
            "delivery_s": delivery_s,
            "sent": stats.sent,
            "dropped": stats.dropped,
            "requests": stats.requests,
            "delivering": delivering,
            "idle": idle_summary,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
