"""Delivery throughput: spans/s from ``span()`` to stored-and-readable in the server.

One instance, ``spans`` flat spans (start with params, complete with a result), the
loop yielding to the event loop every 100 spans as an agent does when it awaits. The
clock starts before the first span and stops when the server's read API reports every
span of the instance stored and finished. Also records the caller time per span in ten
consecutive slices of the run (excluding the yields), to show whether anything grows
with the number of spans already recorded.

CPU: ``time.thread_time`` of the agent's (main) thread around the span loop is the
caller's CPU; the same thread's CPU from the first span until ``flush`` returns, minus
the caller's, is what the delivery engine (queue, dispatcher, body encoding, HTTP, all
on the agent's event loop) took from that thread. ``time.process_time`` adds any other
thread of the process.

Our SDK gets back-pressure: while more than ``max_queued`` operations wait, the loop
sleeps (an agent producing a million spans at once would otherwise fill any queue);
that time is not caller time.
"""

from __future__ import annotations

import asyncio
import time

import _sdk
import _wl

T = _wl.SPAN_TYPE
BLOCK = 100


async def main() -> None:
    a = _wl.args()
    sdk: str = a["sdk"]
    n: int = a["spans"]
    api_url: str = a["api_url"]
    token: str = a["token"]
    max_queued: int = a.get("max_queued", 150_000)
    client = _sdk.make_client(api_url, token)
    instance = await _sdk.open_instance(client, f"bench-delivery-{sdk}")
    instance_id: str = instance.id
    if a.get("barrier"):
        _wl.ready_then_wait()
    P, R = _wl.PARAMS, _wl.RESULT
    perf = time.perf_counter
    cpu = time.thread_time
    caller_cpu = 0.0
    slices = 10
    slice_blocks = max(1, (n // BLOCK) // slices)
    caller: list[float] = []
    acc = 0.0
    done_blocks = 0
    paused = 0.0
    ours = sdk == "ours"
    t0 = perf()
    cpu0, proc0 = cpu(), time.process_time()
    remaining = n
    while remaining > 0:
        count = min(BLOCK, remaining)
        c0 = cpu()
        b0 = perf()
        for _ in range(count):
            async with instance.span(T) as span:
                await span.start(P)
                await span.complete(R)
        acc += perf() - b0
        caller_cpu += cpu() - c0
        remaining -= count
        done_blocks += 1
        if done_blocks % slice_blocks == 0 and len(caller) < slices:
            caller.append(acc / (slice_blocks * BLOCK) * 1e6)
            acc = 0.0
        await asyncio.sleep(0)
        if ours:
            paused += await _wl.hold_back(client, max_queued)
    t_enqueued = perf()
    if ours:
        await client.flush(600)
    thread_cpu, process_cpu = cpu() - cpu0, time.process_time() - proc0
    await instance.finish()
    await client.close()
    t_end, stored = _wl.wait_stored(api_url, token, instance_id, n, 120.0)
    elapsed = t_end - t0
    # The CPU figures mean something for ours (flushed before the clock stops); the
    # published SDK sends on the caller's path.
    figures = _wl.delivery_figures(
        n, stored, elapsed, t_enqueued - t0, paused, caller_cpu, thread_cpu, process_cpu
    )
    _wl.emit({"sdk": sdk, **figures, "caller_us_slices": caller})


if __name__ == "__main__":
    asyncio.run(main())
