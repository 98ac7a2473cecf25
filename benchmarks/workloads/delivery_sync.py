"""Section 2's delivery loop with ``SyncPrefactorCoreClient`` used from an async agent.

The same loop as ``delivery.py`` (flat spans; enter, start with a small params dict,
complete with a small result, exit; a yield to the event loop every 100 spans; the same
back-pressure above ``max_queued`` operations), written with the sync client's spans
inside the agent's coroutine. The sync client's engine (queue, dispatcher, bodies, HTTP)
runs on its own thread with its own event loop, so it delivers while the loop runs and
takes none of the agent's thread's CPU except through the GIL.

CPU: ``caller_cpu_us`` is the agent's (main) thread's ``time.thread_time`` inside the
span loop; ``thread_cpu_us`` the same thread from the first span until ``flush`` (awaited
through ``asyncio.to_thread``, as an async agent calls it) returned, so ``engine_cpu_us``
(the difference) is what delivery still costs the agent's thread (the yields, the wait);
``process_cpu_us`` adds every other thread (the engine's). The clock for ``spans_per_s``
stops when the server's read API reports every span stored and finished.

Args (JSON): api_url, token, spans, max_queued (optional).
"""

from __future__ import annotations

import asyncio
import time

import _sync_sdk
import _wl

BLOCK = 100


async def main() -> None:
    a = _wl.args()
    n: int = a["spans"]
    api_url: str = a["api_url"]
    token: str = a["token"]
    max_queued: int = a.get("max_queued", 150_000)
    client = _sync_sdk.make_client(api_url, token)
    instance = await _sync_sdk.open_instance(client, "bench-delivery-sync")
    T, P, R = _wl.SPAN_TYPE, _wl.PARAMS, _wl.RESULT
    perf, cpu = time.perf_counter, time.thread_time
    caller_cpu = 0.0
    paused = 0.0
    t0 = perf()
    cpu0, proc0 = cpu(), time.process_time()
    remaining = n
    while remaining > 0:
        count = min(BLOCK, remaining)
        c0 = cpu()
        for _ in range(count):
            with instance.span(T) as span:
                span.start(P)
                span.complete(R)
        caller_cpu += cpu() - c0
        remaining -= count
        await asyncio.sleep(0)
        paused += await _wl.hold_back(client, max_queued)
    t_enqueued = perf()
    await asyncio.to_thread(client.flush, 600)
    thread_cpu, process_cpu = cpu() - cpu0, time.process_time() - proc0
    instance.finish()
    await asyncio.to_thread(client.close)
    t_end, stored = _wl.wait_stored(api_url, token, instance.id, n, 120.0)
    elapsed = t_end - t0
    _wl.emit(
        {
            "sdk": "ours-sync",
            **_wl.delivery_figures(
                n, stored, elapsed, t_enqueued - t0, paused, caller_cpu, thread_cpu, process_cpu
            ),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
