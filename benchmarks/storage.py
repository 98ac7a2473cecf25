"""``python -m benchmarks.storage``: the storage backends side by side in one run.

Three setups, each a fresh database behind real ``prefactor serve`` processes on
127.0.0.1: SQLite (one process), PostgreSQL with one process, PostgreSQL with two
processes (senders alternate between them, as behind a load balancer). For each:

* bulk ingestion: SENDERS concurrent senders POST ``/api/v1/bulk`` with BATCH span creates
  per request (``Prefer: return=minimal``, the SDK's form) until SPANS spans are stored;
  spans per second from the first request to the last answer;
* the run list: ``GET /api/v1/agent_instance`` (first page, 25 runs, with span counts) over
  RUNS runs;
* a 10,000-span run's read API: the instance (with span counts), the first and the last
  page of 100 spans of the run.

Latencies are the median of REPEAT requests from one client. Needs
``PREFACTOR_TEST_POSTGRES_URL`` (``scripts/postgres-test-cluster start``); writes the
table to ``benchmarks/results/storage.md`` and prints it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg

from benchmarks.run import server

TOKEN = "bench-storage-token-0123456789"
SPANS = int(os.environ.get("BENCH_SPANS", "60000"))
BATCH = 500
SENDERS = 4
RUNS = 200
RUN_SPANS = 10_000
REPEAT = 30
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SCHEMA = {"external_identifier": "bench-v1", "span_type_schemas": [
    {"name": "agent:step", "params_schema": {"type": "object"}}]}  # fmt: skip


async def _register(client: httpx.AsyncClient, url: str) -> str:
    body = {
        "agent_id": "bench",
        "agent_version": {"name": "bench", "external_identifier": "v1"},
        "agent_schema_version": SCHEMA,
    }
    response = await client.post(f"{url}/api/v1/agent_instance/register", json=body)
    response.raise_for_status()
    instance_id: str = response.json()["details"]["id"]
    return instance_id


def _batch(instance_id: str, start: int) -> bytes:
    items = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"k-{instance_id}-{start + n:08d}",
            "details": {
                "agent_instance_id": instance_id,
                "schema_name": "agent:step",
                "status": "complete",
                "payload": {"step": start + n, "prompt": "x" * 200},
                "result_payload": {"response": "y" * 200},
            },
        }
        for n in range(BATCH)
    ]
    return orjson.dumps({"items": items})


async def _ingest(urls: list[str], total: int) -> float:
    """Send ``total`` spans through bulk from SENDERS senders; return spans per second."""
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
        instances = [await _register(client, urls[n % len(urls)]) for n in range(SENDERS)]
        per_sender = total // SENDERS

        async def sender(n: int) -> None:
            url = urls[n % len(urls)]
            for start in range(0, per_sender, BATCH):
                response = await client.post(
                    f"{url}/api/v1/bulk",
                    content=_batch(instances[n], start),
                    headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
                )
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(sender(n) for n in range(SENDERS)))
        return per_sender * SENDERS / (time.perf_counter() - began)


async def _latency(client: httpx.AsyncClient, url: str, params: dict[str, str | int]) -> float:
    times = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        response = await client.get(url, params=params)
        times.append(time.perf_counter() - began)
        response.raise_for_status()
    return statistics.median(times) * 1000


async def _prepare(url: str) -> str:
    """Register RUNS runs for the run list; give the last one RUN_SPANS spans; return it."""
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
        ids = [await _register(client, url) for _ in range(RUNS)]
        for start in range(0, RUN_SPANS, BATCH):
            response = await client.post(
                f"{url}/api/v1/bulk",
                content=_batch(ids[-1], start),
                headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
            )
            response.raise_for_status()
        return ids[-1]


async def _reads(url: str, big: str, suffix: str = "") -> dict[str, float]:
    api = f"{url}/api/v1"
    page: dict[str, str | int] = {"agent_instance_id": big, "pagination[page_size]": 100}
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
        return {
            f"run list{suffix}": await _latency(
                client, f"{api}/agent_instance", {"sorting": "-id"}
            ),
            f"run (instance + counts){suffix}": await _latency(
                client, f"{api}/agent_instance/{big}", {}
            ),
            f"spans, first page{suffix}": await _latency(client, f"{api}/agent_spans", page),
            f"spans, last page{suffix}": await _latency(
                client,
                f"{api}/agent_spans",
                {**page, "pagination[offset]": RUN_SPANS - 100},
            ),
        }


def _settle(target: str) -> None:
    """What a database does by itself soon after a burst of writes: on PostgreSQL,
    (auto)vacuum and analyze (visibility map, row estimates). SQLite has no such step."""
    if target.startswith("postgresql://"):
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def _save(text: str) -> None:
    out = Path(__file__).resolve().parent / "results" / "storage.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


def _database(cluster: str) -> str:
    name = f"prefactor_bench_{secrets.token_hex(4)}"
    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    return urlsplit(cluster)._replace(path=f"/{name}").geturl()


def _drop(cluster: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(cluster, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


async def _setup(target: str, processes: int) -> dict[str, float]:
    with ExitStack() as stack:
        urls = [stack.enter_context(server(target, TOKEN)) for _ in range(processes)]
        rate = await _ingest(urls, SPANS)
        big = await _prepare(urls[0])
        fresh = await _reads(urls[0], big)
        await asyncio.to_thread(_settle, target)
        settled = await _reads(urls[0], big, " (settled)")
        return {"bulk spans/s": rate, **fresh, **settled}


async def _round(cluster: str, tmp: str, rep: int) -> dict[str, dict[str, float]]:
    """One measurement of every setup, each on a fresh database."""
    results = {"SQLite, 1 process": await _setup(f"{tmp}/bench-{rep}.db", 1)}
    for processes in (1, 2):
        url = _database(cluster)
        try:
            label = f"PostgreSQL, {processes} process{'es' if processes > 1 else ''}"
            results[label] = await _setup(url, processes)
        finally:
            _drop(cluster, url)
    return results


def _cell(metric: str, values: list[float]) -> str:
    def one(value: float) -> str:
        return f"{value:,.0f}" if metric.endswith("/s") else f"{value:.1f}"

    unit = "" if metric.endswith("/s") else " ms"
    spread = f" ({one(min(values))}–{one(max(values))})" if len(values) > 1 else ""
    return one(statistics.median(values)) + unit + spread


async def main() -> int:
    """Run the three setups ROUNDS times, interleaved, and print the medians."""
    cluster = os.environ.get("PREFACTOR_TEST_POSTGRES_URL")
    if not cluster:
        print("set PREFACTOR_TEST_POSTGRES_URL (scripts/postgres-test-cluster start)")
        return 2
    rounds: list[dict[str, dict[str, float]]] = []
    with TemporaryDirectory() as tmp:
        for rep in range(ROUNDS):
            rounds.append(await _round(cluster, tmp, rep))
    setups = list(rounds[0])
    metrics = list(rounds[0][setups[0]])
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`python -m benchmarks.storage`: {SPANS:,} spans from {SENDERS} senders, {BATCH} per "
        f"bulk request; latencies are the median of {REPEAT} requests, in ms. Each figure is "
        f"the median of {ROUNDS} rounds (min–max). {os.cpu_count()} CPUs.",
        "",
        "| | " + " | ".join(setups) + " |",
        "|---|" + "---|" * len(setups),
    ]
    for metric in metrics:
        cells = [_cell(metric, [r[setup][metric] for r in rounds]) for setup in setups]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    _save(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
