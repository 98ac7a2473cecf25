"""Caller time per call on our SDK: undecorated, ``@trace``-decorated, and a hand-written
span with the same params and result, in the async client and in the sync client.

Cases (``case``): ``plain_sync``/``plain_async`` (no SDK), ``hand_span`` (``async with
instance.span()`` + ``start`` + ``complete``), ``traced_sync``/``traced_async`` (a
decorated function called inside an instance of the async client), ``sync_hand_span`` and
``sync_traced`` (the same with ``SyncPrefactorCoreClient``). Only the loop is timed; the
SDK is flushed between repetitions (untimed) so its queue never fills.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _wl

from prefactor_core import (
    PrefactorCoreClient,
    PrefactorCoreConfig,
    SchemaRegistry,
    SyncPrefactorCoreClient,
    trace,
)
from prefactor_http import HttpClientConfig

T = "bench:tool"
PARAMS = {"a": 1, "b": 2}
RESULT = {"output": 3}


def plain(a: int, b: int = 2) -> int:
    return a + b


async def aplain(a: int, b: int = 2) -> int:
    return a + b


traced = trace(T)(plain)
atraced = trace(T)(aplain)


def config(api_url: str, token: str) -> PrefactorCoreConfig:
    registry = SchemaRegistry()
    registry.register_type(T, params_schema={"type": "object"}, title="tool")
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token), schema_registry=registry
    )


def timed_sync(call: Callable[[], Any], n: int) -> float:
    perf = time.perf_counter
    gc.collect()
    t0 = perf()
    for _ in range(n):
        call()
    return (perf() - t0) / n * 1e6


async def timed_async(call: Callable[[], Awaitable[Any]], n: int) -> float:
    perf = time.perf_counter
    gc.collect()
    t0 = perf()
    for _ in range(n):
        await call()
    return (perf() - t0) / n * 1e6


async def async_cases(case: str, a: dict[str, Any], n: int, inner: int) -> list[float]:
    samples: list[float] = []
    if case == "plain_sync":
        return [timed_sync(lambda: plain(1), n) for _ in range(inner)]
    if case == "plain_async":
        return [await timed_async(lambda: aplain(1), n) for _ in range(inner)]
    client = PrefactorCoreClient(config(a["api_url"], a["token"]))
    version = {"name": "bench"}
    async with client, client.create_agent_instance(agent_id="trace", agent_version=version) as run:
        await run.start()

        async def hand() -> None:
            async with run.span(T) as span:
                await span.start(PARAMS)
                await span.complete(RESULT)

        for rep in range(inner + 1):  # the first is a warm-up
            if case == "hand_span":
                sample = await timed_async(hand, n if rep else 300)
            elif case == "traced_async":
                sample = await timed_async(lambda: atraced(1), n if rep else 300)
            else:  # traced_sync
                sample = timed_sync(lambda: traced(1), n if rep else 300)
            if rep:
                samples.append(sample)
            await client.flush(120)
    return samples


def sync_cases(case: str, a: dict[str, Any], n: int, inner: int) -> list[float]:
    samples: list[float] = []
    client = SyncPrefactorCoreClient(config(a["api_url"], a["token"]))
    client.open()
    with client.create_agent_instance(
        agent_id="bench-trace-sync", agent_version={"name": "b"}
    ) as run:
        run.start()

        def hand() -> None:
            with run.span(T) as span:
                span.start(PARAMS)
                span.complete(RESULT)

        for rep in range(inner + 1):
            call = hand if case == "sync_hand_span" else (lambda: traced(1))
            sample = timed_sync(call, n if rep else 300)
            if rep:
                samples.append(sample)
            client.flush(120)
    client.close()
    return samples


def main() -> None:
    a = _wl.args()
    case: str = a["case"]
    n: int = a["calls"]
    inner: int = a.get("inner_reps", 3)
    if case.startswith("sync_"):
        samples = sync_cases(case, a, n, inner)
    else:
        samples = asyncio.run(async_cases(case, a, n, inner))
    samples.sort()
    _wl.emit({"us_per_call": samples[len(samples) // 2], "inner": samples})


if __name__ == "__main__":
    main()
