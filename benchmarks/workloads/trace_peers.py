"""Caller time per decorated call of the peers: Langfuse ``@observe`` and LangSmith
``@traceable`` (run in ``.venv-peers``, which has them; our SDK is not installed there).

Both send to a closed port on 127.0.0.1 (``closed_url``): their exporters fail in the
background, as ours would against a server that is down; only the caller's time is
measured. Every call runs inside one outer observed/traced call, so each one is a child
span, like our decorated call inside an agent instance.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import _wl

logging.disable(logging.CRITICAL)  # their exporters log every failed attempt


def measure(call: Callable[[int], Any], n: int, inner: int) -> list[float]:
    perf = time.perf_counter
    samples = []
    for _ in range(inner):
        gc.collect()
        t0 = perf()
        for i in range(n):
            call(i)
        samples.append((perf() - t0) / n * 1e6)
    return sorted(samples)


def plain(a: int, b: int = 2) -> int:
    return a + b


def langfuse_case(closed_url: str, n: int, inner: int) -> list[float]:
    os.environ.update(
        LANGFUSE_PUBLIC_KEY="pk-lf-bench",
        LANGFUSE_SECRET_KEY="sk-lf-bench",
        LANGFUSE_HOST=closed_url,
        LANGFUSE_BASE_URL=closed_url,
    )
    from langfuse import get_client, observe

    traced = observe(name="tool")(plain)
    samples: list[float] = []

    @observe(name="agent")
    def agent() -> None:
        measure(traced, min(n, 300), 1)  # warm-up
        samples.extend(measure(traced, n, inner))

    agent()
    try:
        get_client().shutdown()
    except Exception:  # the exporter's failures are the point, not a result
        pass
    return samples


def langsmith_case(closed_url: str, n: int, inner: int) -> list[float]:
    os.environ.update(
        LANGSMITH_TRACING="true",
        LANGSMITH_ENDPOINT=closed_url,
        LANGSMITH_API_KEY="lsv2-bench",
        LANGSMITH_PROJECT="bench",
    )
    from langsmith import traceable

    traced = traceable(name="tool")(plain)
    samples: list[float] = []

    @traceable(name="agent")
    def agent() -> None:
        measure(traced, min(n, 300), 1)
        samples.extend(measure(traced, n, inner))

    agent()
    return samples


def main() -> None:
    a = _wl.args()
    case: str = a["case"]
    n: int = a["calls"]
    inner: int = a.get("inner_reps", 3)
    if case == "langfuse":
        samples = langfuse_case(a["closed_url"], n, inner)
    elif case == "langsmith":
        samples = langsmith_case(a["closed_url"], n, inner)
    else:
        samples = measure(plain, n, inner)
    _wl.emit({"us_per_call": samples[len(samples) // 2], "inner": samples})
    os._exit(0)  # do not wait for their exporters' retries against the closed port


if __name__ == "__main__":
    main()
