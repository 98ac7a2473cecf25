"""Helpers shared by the workload scripts (stdlib only: they also run in .venv-published).

Each workload script is run as ``python benchmarks/workloads/<name>.py '<json args>'`` in
the interpreter of the SDK it measures, and prints exactly one JSON object on its last
stdout line: its measurements.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from typing import Any

PARAMS = {"model": "gpt-4", "prompt": "What is the capital of France?", "temperature": 0.2}
RESULT = {"response": "Paris is the capital of France.", "tokens": 12}


def args() -> dict[str, Any]:
    """The workload's arguments: one JSON object in argv[1]."""
    parsed: dict[str, Any] = json.loads(sys.argv[1])
    return parsed


def ready_then_wait() -> None:
    """Say ``ready`` to the parent (stdout) and wait for its word to go (a line on stdin):
    processes run at once start their clocks together, after every one has imported and
    set up, so no process's measured window holds another's start-up."""
    print("ready", flush=True)
    sys.stdin.readline()


def emit(result: dict[str, Any]) -> None:
    """Print the workload's result as the last stdout line."""
    print(json.dumps(result), flush=True)


def get_json(url: str, token: str) -> Any:
    """GET a JSON document from the API (blocking; only off the measured path)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def span_count(api_url: str, token: str, instance_id: str) -> int:
    """How many spans of the instance the server has stored and can read back."""
    body = get_json(
        f"{api_url}/api/v1/agent_spans?agent_instance_id={instance_id}&pagination[page_size]=1",
        token,
    )
    return int(body["pagination"]["item_count"])


def finished_count(api_url: str, token: str, instance_id: str) -> tuple[int, int]:
    """(total, finished) span counts of an instance, from the instance resource."""
    body = get_json(f"{api_url}/api/v1/agent_instance/{instance_id}", token)
    counts = body["details"]["span_counts"]
    return int(counts["total"]), int(counts["finished"])


def wait_stored(
    api_url: str, token: str, instance_id: str, expected: int, deadline_s: float
) -> tuple[float, int]:
    """Poll until ``expected`` spans of the instance are stored and finished.

    Returns (the time they were, by time.perf_counter(), the count seen); gives up at the
    deadline and returns the last count.
    """
    end = time.perf_counter() + deadline_s
    finished = 0
    while True:
        _, finished = finished_count(api_url, token, instance_id)
        now = time.perf_counter()
        if finished >= expected or now > end:
            return now, finished
        time.sleep(0.02)


async def hold_back(client: Any, max_queued: int) -> float:
    """While more than ``max_queued`` operations wait in our client's queue, sleep (the
    back-pressure of the delivery loops); return the seconds slept (not caller time)."""
    paused = 0.0
    while client.statistics().queued > max_queued:
        p0 = time.perf_counter()
        await asyncio.sleep(0.005)
        paused += time.perf_counter() - p0
    return paused


def delivery_figures(
    n: int,
    stored: int,
    elapsed: float,
    enqueue_seconds: float,
    paused: float,
    caller_cpu: float,
    thread_cpu: float,
    process_cpu: float,
) -> dict[str, Any]:
    """The figures a delivery run reports: rates, and CPU in µs per span (the engine's
    share of the agent's thread is that thread's CPU minus the caller's)."""
    return {
        "spans": n,
        "stored": stored,
        "seconds": elapsed,
        "spans_per_s": stored / elapsed,
        "enqueue_seconds": enqueue_seconds,
        "paused_seconds": paused,
        "caller_cpu_us": caller_cpu / n * 1e6,
        "engine_cpu_us": (thread_cpu - caller_cpu) / n * 1e6,
        "process_cpu_us": process_cpu / n * 1e6,
    }


def rss_kb() -> int:
    """Current resident set size in KiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_rss_kb() -> int:
    """Peak resident set size in KiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


SPAN_TYPE = "bench:llm"
PARAMS_SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "prompt": {"type": "string"},
        "temperature": {"type": "number"},
    },
    "required": ["model", "prompt"],
}
RESULT_SCHEMA = {
    "type": "object",
    "properties": {"response": {"type": "string"}, "tokens": {"type": "integer"}},
}


def register_body(agent_id: str) -> dict[str, Any]:
    """A register body with the benchmark's span type (for raw HTTP clients)."""
    return {
        "agent_id": agent_id,
        "agent_version": {"name": "Bench Agent", "external_identifier": "bench-v1"},
        "agent_schema_version": {
            "external_identifier": "bench-schema-v1",
            "span_schemas": {SPAN_TYPE: PARAMS_SCHEMA},
            "span_result_schemas": {SPAN_TYPE: RESULT_SCHEMA},
        },
    }
