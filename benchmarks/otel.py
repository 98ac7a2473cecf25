"""The OpenTelemetry benchmark rows, side by side in one run (BENCHMARKS.md section 7).

    .venv/bin/python -m benchmarks.otel            # full run
    .venv/bin/python -m benchmarks.otel --quick    # smoke run

One ``prefactor serve`` (127.0.0.1, a fresh SQLite file) serves both workloads:

* ``otlp_ingest``: OTLP spans/s stored by ``POST /v1/traces`` (protobuf) from one
  process running the standard ``OTLPSpanExporter``; none may be dropped.
* ``otel_processor``: the agent thread's cost per span of ``PrefactorSpanProcessor`` and
  of OTel's ``BatchSpanProcessor`` with a no-op exporter, over no processor at all.
* ``otel_mirror`` (with ``agent_thread``'s OTel row beside it): the other direction,
  our spans delivered to the server with and without ``OtelSpanMirror`` feeding a
  ``BatchSpanProcessor`` with a no-op exporter, against OTel's own SDK doing the same
  loop into the same processor.

Results go to ``benchmarks/results/otel.json`` and ``benchmarks/results/otel.md`` (the
Markdown tables, also printed), with the machine's load average at the start and end: on a
shared machine it says how far to trust the absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.run import OURS, RESULTS, SERVER_PIDS, log, process_cpu_seconds, run, server


def _median(rows: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [float(row[key]) for row in rows]
    return statistics.median(values), min(values), max(values)


def _fmt(figure: tuple[float, float, float], digits: int = 0) -> str:
    median, low, high = figure
    return f"{median:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    quick = parser.parse_args().quick
    reps, ingest_spans, processor_spans = (1, 5_000, 2_000) if quick else (3, 50_000, 20_000)
    token = "bench-" + secrets.token_hex(8)
    load_before = os.getloadavg()[0]
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ingest: list[dict[str, Any]] = []
    processor: list[dict[str, Any]] = []
    mirror: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as directory,
        server(Path(directory) / "otel.db", token) as url,
    ):
        for rep in range(reps):
            log(f"otlp ingest {rep + 1}/{reps}")
            server_cpu = process_cpu_seconds(SERVER_PIDS[url])
            row = run(
                OURS,
                "otlp_ingest",
                {"url": url, "token": token, "spans": ingest_spans, "batch": 512},
            )
            # The server's CPU per stored span (the figure the machine's load moves least).
            server_cpu = process_cpu_seconds(SERVER_PIDS[url]) - server_cpu
            row["server_cpu_us"] = server_cpu / max(row["stored"], 1) * 1e6
            ingest.append(row)
            log(f"span processor {rep + 1}/{reps}")
            processor.append(
                run(OURS, "otel_processor", {"url": url, "token": token, "spans": processor_spans})
            )
            log(f"span mirror {rep + 1}/{reps}")
            mirror.append(_mirror_rows(url, token, processor_spans))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"otel{'-quick' if quick else ''}.json").write_text(
        json.dumps({"ingest": ingest, "processor": processor, "mirror": mirror}, indent=2)
    )
    dropped = sum(row["spans"] - row["stored"] for row in ingest)
    undelivered = sum(row["expected"] - row["delivered"] for row in processor)
    report = "\n".join(
        [
            f"Run on {started} with `python -m benchmarks.otel{' --quick' if quick else ''}`; "
            f"{reps} repetitions, median (min–max); {os.cpu_count()} CPUs, load average "
            f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end.",
            "",
            "| OTLP ingest (protobuf, one exporter process, 512 spans per export) | |",
            "|---|---|",
            f"| stored spans/s | {_fmt(_median(ingest, 'spans_per_s'))} |",
            f"| spans dropped | {dropped} |",
            f"| exporter's own CPU per span, µs | {_fmt(_median(ingest, 'exporter_cpu_us'), 1)} |",
            f"| server's CPU per stored span, µs | {_fmt(_median(ingest, 'server_cpu_us'), 1)} |",
            "",
            "| cost per span, µs | wall time of the agent's loop | agent thread's CPU "
            "| process CPU until handled |",
            "|---|---|---|---|",
            *(
                f"| {label} | {_fmt(_median(processor, key + '_wall'), 1)} "
                f"| {_fmt(_median(processor, key + '_thread'), 1)} "
                f"| {_fmt(_median(processor, key + '_process'), 1)} |"
                for label, key in (
                    ("no processor (baseline)", "baseline"),
                    ("OTel BatchSpanProcessor, no-op exporter", "batch"),
                    ("PrefactorSpanProcessor (delivered to the server)", "ours"),
                )
            ),
            "",
            f"Spans not delivered by PrefactorSpanProcessor: {undelivered}.",
            "",
            *_mirror_table(mirror),
        ]
    )
    (RESULTS / f"otel{'-quick' if quick else ''}.md").write_text(report + "\n")
    print(report)


def _mirror_rows(url: str, token: str, spans: int) -> dict[str, Any]:
    """One repetition of the mirror comparison: OTel's SDK, ours, ours mirrored."""
    otel = run(OURS, "agent_thread", {"sdk": "otel", "spans": spans})
    plain = run(OURS, "otel_mirror", {"url": url, "token": token, "spans": spans, "mirror": False})
    mirrored = run(
        OURS, "otel_mirror", {"url": url, "token": token, "spans": spans, "mirror": True}
    )
    return {
        "otel_thread": otel["thread_cpu_us"],
        "otel_process": otel["thread_cpu_us"] + otel["other_threads_cpu_us"],
        **{f"ours_{key}": plain[f"{key}_cpu_us"] for key in ("caller", "thread", "process")},
        **{f"mirror_{key}": mirrored[f"{key}_cpu_us"] for key in ("caller", "thread", "process")},
        # every span and the run's root span mirrored; every span stored
        "lost": (spans + 1 - mirrored["mirrored"]) + (spans - mirrored["stored"]),
    }


def _mirror_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| spans into an OTel exporter (BatchSpanProcessor, no-op exporter), CPU per span, "
        "µs | agent thread (caller + engine) | process (every thread) |",
        "|---|---|---|",
        f"| OTel SDK: span with params and result as attributes | "
        f"{_fmt(_median(rows, 'otel_thread'), 1)} | {_fmt(_median(rows, 'otel_process'), 1)} |",
        f"| ours, delivered to Prefactor only | {_fmt(_median(rows, 'ours_thread'), 1)} "
        f"| {_fmt(_median(rows, 'ours_process'), 1)} |",
        f"| ours, delivered to Prefactor and mirrored (OtelSpanMirror) "
        f"| {_fmt(_median(rows, 'mirror_thread'), 1)} "
        f"| {_fmt(_median(rows, 'mirror_process'), 1)} |",
    ]
    for row in rows:
        row["tap"] = row["mirror_thread"] - row["ours_thread"]
        row["ratio"] = row["otel_thread"] / row["mirror_thread"]
    lines += [
        "",
        f"The mirror's cost on the agent's thread (mirrored minus not): "
        f"{_fmt(_median(rows, 'tap'), 1)} µs per span; OTel's SDK over ours mirrored, agent "
        f"thread: {_fmt(_median(rows, 'ratio'), 2)}×. Spans not mirrored or not stored: "
        f"{sum(row['lost'] for row in rows)}.",
    ]
    return lines


if __name__ == "__main__":
    main()
