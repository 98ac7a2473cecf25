"""Memory: resident memory of a client holding ``spans`` queued spans, server stopped.

``sdk=ours``/``published``: the client points at a closed port on 127.0.0.1, so nothing
can be delivered; each span gets its own params and result dicts (made and dropped per
span, as in an agent). ``sdk=payloads``: the same process with the same imports that only
builds the same payloads and keeps their JSON text (the least any queue must hold).
Bytes per queued span beyond its payload = (growth with the SDK - growth with payloads) / spans.

With ``tracemalloc`` true, growth is what Python's allocator traced
(``tracemalloc.get_traced_memory``, started after the client opened) instead of the
resident set: exact for Python objects, blind to the allocator's own slack. Slower; a
separate run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from typing import Any

import _sdk
import _wl


def payload(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return {**_wl.PARAMS, "i": i}, {**_wl.RESULT, "i": i}


async def main() -> None:
    a = _wl.args()
    sdk: str = a["sdk"]
    n: int = a["spans"]
    traced: bool = a.get("tracemalloc", False)
    import prefactor_core  # noqa: F401  (same imports in every mode)

    held: list[Any] = []
    error = None
    traced0 = 0
    if sdk == "payloads":
        gc.collect()
        if traced:
            tracemalloc.start()
            traced0 = tracemalloc.get_traced_memory()[0]
        rss0 = _wl.rss_kb()
        for i in range(n):
            params, result = payload(i)
            held.append((json.dumps(params), json.dumps(result)))
    else:
        client = _sdk.make_client(
            a["api_url"], a["token"], ours_queue={"max_queue_size": 2 * n + 100}
        )
        if sdk == "ours":
            client._config = client._config.model_copy(
                update={"startup_timeout": 0.2, "close_timeout": 0.0}
            )
        try:
            instance = await _sdk.open_instance(client, "bench-memory")
        except Exception as exc:  # the published SDK needs the server at start-up
            _wl.emit({"sdk": sdk, "error": f"{type(exc).__name__}: {exc}"[:300]})
            return
        gc.collect()
        if traced:
            tracemalloc.start()
            traced0 = tracemalloc.get_traced_memory()[0]
        rss0 = _wl.rss_kb()
        for i in range(n):
            params, result = payload(i)
            async with instance.span(_wl.SPAN_TYPE) as span:
                await span.start(params)
                await span.complete(result)
            if i % 100 == 0:
                await asyncio.sleep(0)
        held.append(client.statistics())
    gc.collect()
    rss1 = _wl.rss_kb()
    traced1 = tracemalloc.get_traced_memory()[0] if traced else 0
    _wl.emit(
        {
            "sdk": sdk,
            "spans": n,
            "error": error,
            "rss_before_kb": rss0,
            "rss_after_kb": rss1,
            "peak_rss_kb": _wl.peak_rss_kb(),
            "growth_bytes_per_span": (rss1 - rss0) * 1024 / n,
            "traced_bytes_per_span": (traced1 - traced0) / n if traced else None,
            "queued": held[-1].queued if sdk != "payloads" else None,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
