"""``python -m benchmarks.storage_breakdown``: where a bulk request's time goes on PostgreSQL.

Runs the app in-process on a fresh PostgreSQL database (``PREFACTOR_TEST_POSTGRES_URL``),
sends REQUESTS bulk requests of 500 span creates one at a time, and splits each request's
time into the SQL statements (timed around psycopg's ``Cursor.execute``), the rest of the
write transaction (domain code) and the rest of the request (HTTP, JSON, routing).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import psycopg

from benchmarks.storage import BATCH, HEADERS, TOKEN, _batch, _database, _drop, _register
from prefactor_server.storage.postgres import storage as pg_storage
from prefactor_server.testing import LocalServer

REQUESTS = 20


def _instrument() -> dict[str, float]:
    """Time every statement (by its first words) and every write transaction."""
    spent: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    execute = psycopg.Cursor.execute
    write = pg_storage.PostgresStorage._write

    def timed_execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(self, query, params, **kwargs)
        finally:
            text = query.decode() if isinstance(query, bytes) else str(query)
            words = " ".join(text.replace("Composed(", "").split()[:3])[:30]
            for clause in ("DO NOTHING", "DO UPDATE"):
                words += f" … {clause}" if clause in text else ""
            with lock:
                spent[f"SQL: {words}"] += time.perf_counter() - began
                spent["SQL, all statements"] += time.perf_counter() - began

    def timed_write(self: Any, fn: Any) -> Any:
        began = time.perf_counter()
        try:
            return write(self, fn)
        finally:
            with lock:
                spent["write transaction"] += time.perf_counter() - began

    psycopg.Cursor.execute = timed_execute  # type: ignore[method-assign]
    pg_storage.PostgresStorage._write = timed_write  # type: ignore[method-assign]
    return spent


async def _measure(url: str, spent: dict[str, float]) -> float:
    server = LocalServer(url, token=TOKEN)
    try:
        async with httpx.AsyncClient(
            transport=server.transport, base_url=server.api_url, headers=HEADERS
        ) as client:
            instance_id = await _register(client, "")
            bodies = [_batch(instance_id, n * BATCH) for n in range(REQUESTS)]
            spent.clear()
            began = time.perf_counter()
            for body in bodies:
                response = await client.post(
                    "/api/v1/bulk",
                    content=body,
                    headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
                )
                response.raise_for_status()
            return time.perf_counter() - began
    finally:
        await server.aclose()


def main() -> int:
    """Print the per-request breakdown."""
    cluster = os.environ.get("PREFACTOR_TEST_POSTGRES_URL")
    if not cluster:
        print("set PREFACTOR_TEST_POSTGRES_URL (scripts/postgres-test-cluster start)")
        return 2
    spent = _instrument()
    url = _database(cluster)
    try:
        elapsed = asyncio.run(_measure(url, spent))
    finally:
        _drop(cluster, url)
    print(f"{REQUESTS} bulk requests of {BATCH} span creates, one at a time, in-process:")
    print(f"  {'request (total)':<44} {elapsed * 1000 / REQUESTS:7.1f} ms")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:<44} {seconds * 1000 / REQUESTS:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
