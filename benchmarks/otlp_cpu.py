"""CPU time per span of the server's OTLP ingest path, in-process (BENCHMARKS.md section 7).

    .venv/bin/python -m benchmarks.otlp_cpu              # 24 exports of 512 spans
    .venv/bin/python -m benchmarks.otlp_cpu --exports 4  # a smoke run
    .venv/bin/python -m benchmarks.otlp_cpu --profile    # plus a cProfile of the whole path

Wall-clock spans/s is noisy on a shared machine; CPU time is not (much). The exports are
the ``otlp_ingest`` workload's GenAI spans (20 per trace), encoded by the standard
exporter's own encoder, each export a fresh set of traces. Measured per span:

* ``decode``: protobuf → neutral spans (``decode_protobuf``), this thread's CPU time;
* ``map``: neutral spans → rows (``otlp_ingest.prepare``), this thread's CPU time;
* ``store``: the write transaction (``otlp_ingest.store`` + commit), the process's CPU time
  while the writer thread runs it (this thread only waits);
* ``endpoint``: the whole ``POST /v1/traces`` through the ASGI app (auth, body, decode, map,
  store, answer), the process's CPU time, on other fresh exports, until the spans are
  stored (on SQLite the answer comes once the export is in the OTLP journal, and the
  spans are stored after it: the measurement waits for that too);
* ``endpoint_wall``: the same requests' wall-clock time per span until stored;
* ``answer_wall``: their wall-clock time per span until answered (the latency an exporter
  waits for).

The collector is tuned as ``prefactor serve`` tunes it (``tune_gc_for_serving``).

Results go to ``benchmarks/results/otlp-cpu.json`` and ``benchmarks/results/otlp-cpu.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from benchmarks.run import RESULTS
from prefactor_server import _time
from prefactor_server.domain.accounts import hash_token
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.otlp_ingest import Outcome, PreparedTrace, prepare, store
from prefactor_server.domain.otlp_protobuf import decode_protobuf
from prefactor_server.gc_tuning import tune_gc_for_serving
from prefactor_server.storage.base import WriteSession
from prefactor_server.testing import LocalServer

sys.path.insert(0, str(Path(__file__).parent / "workloads"))
from otlp_ingest import make_spans  # type: ignore[import-not-found]

BATCH = 512


def _bodies(count: int) -> list[bytes]:
    spans = make_spans(count * BATCH)
    return [
        encode_spans(spans[offset : offset + BATCH]).SerializeToString()
        for offset in range(0, len(spans), BATCH)
    ]


def _us(seconds: float, spans: int) -> float:
    return seconds / spans * 1e6


def _components(server: LocalServer, bodies: list[bytes]) -> dict[str, list[float]]:
    account = server.storage.read_sync(
        lambda session: session.account_for_token(hash_token(server.token))
    )
    assert account is not None
    schemas = server.app.state.schemas
    out: dict[str, list[float]] = {"decode": [], "map": [], "store": []}
    for body in bodies:
        start = time.thread_time()
        export = decode_protobuf(body)
        decoded = time.thread_time()
        traces = prepare(export)
        mapped = time.thread_time()
        count = export.span_count
        out["decode"].append(_us(decoded - start, count))
        out["map"].append(_us(mapped - decoded, count))

        def job(session: WriteSession, traces: list[PreparedTrace] = traces) -> Outcome:
            stamp = _time.now()
            ctx = WriteContext(account=account, schemas=schemas, clock=lambda: stamp)
            return store(session, ctx, traces)

        start = time.process_time()
        outcome = server.storage.write_sync(job)
        out["store"].append(_us(time.process_time() - start, count))
        assert outcome.stored == count, outcome
    return out


async def _endpoint(
    server: LocalServer, bodies: list[bytes]
) -> tuple[list[float], list[float], list[float]]:
    out: list[float] = []
    wall: list[float] = []
    answered: list[float] = []
    journal = getattr(server.app.state, "otlp_journal", None)
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/x-protobuf",
    }
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as client:
        for body in bodies:
            start, started = time.process_time(), time.perf_counter()
            response = await client.post("/v1/traces", content=body, headers=headers)
            answered.append(_us(time.perf_counter() - started, BATCH))
            if journal is not None:
                await journal.caught_up()
            out.append(_us(time.process_time() - start, BATCH))
            wall.append(_us(time.perf_counter() - started, BATCH))
            assert response.status_code == 200, response.text
            assert not response.content, response.content  # no partial success
    return out, wall, answered


def _run(exports: int, profile: bool) -> dict[str, Any]:
    bodies = _bodies(exports * 2)
    with tempfile.TemporaryDirectory() as directory:
        server = LocalServer(Path(directory) / "otlp.db", token="bench-token-otlp-cpu")
        tune_gc_for_serving()  # as `prefactor serve` does before serving
        try:
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            parts = _components(server, bodies[:exports])
            parts["endpoint"], parts["endpoint_wall"], parts["answer_wall"] = asyncio.run(
                _endpoint(server, bodies[exports:])
            )
            if profiler:
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats("tottime")
                stats.print_stats(30)
        finally:
            server.close()
    return parts


def _summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exports", type=int, default=24, help="exports per measurement")
    parser.add_argument("--profile", action="store_true", help="print a cProfile")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = _run(options.exports, options.profile)
    rows = {name: _summary(values) for name, values in parts.items()}
    lines = [
        f"Run on {started} with `python -m benchmarks.otlp_cpu --exports {options.exports}`; "
        f"exports of {BATCH} GenAI spans, median (min–max) over the exports; load average "
        f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| server time per OTLP span (CPU unless `wall`) | µs |",
        "|---|---|",
    ]
    for name, (median, low, high) in rows.items():
        lines.append(f"| {name} | {median:.1f} ({low:.1f}–{high:.1f}) |")
    total = sum(rows[name][0] for name in ("decode", "map", "store"))
    lines.append(f"| decode + map + store | {total:.1f} |")
    report = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "otlp-cpu.json").write_text(json.dumps(parts, indent=2))
    (RESULTS / "otlp-cpu.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
