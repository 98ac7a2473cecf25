"""Run every benchmark against one real server and write BENCHMARKS.md and a chart.

    scripts/bench            # full run (about 15-20 minutes on 2 cores)
    scripts/bench --full     # the same with the scaling table up to 1,000,000 spans
    scripts/bench --quick    # smoke run (under 3 minutes); writes benchmarks/results/quick.*
    scripts/bench --only lag # one part (caller, delivery, ingest, memory, scaling,
                             # agent_thread, backlog, lag); raw results in
                             # benchmarks/results/results-only.json, no report

One ``prefactor serve`` process (ours, on 127.0.0.1, a fresh SQLite file) serves every
workload. Each workload is a script in ``benchmarks/workloads/`` run in a subprocess of
the interpreter of the SDK it measures: ``.venv`` for ours, ``.venv-published`` for the
published prefactor-core 0.5.3 / prefactor-http 0.4.3. Repetitions interleave the SDKs,
every figure is a median with its spread (min-max) over the repetitions, and every
comparison is the median of ratios taken within the same repetition.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "benchmarks" / "workloads"
OURS = ROOT / ".venv" / "bin" / "python"
PUBLISHED = ROOT / ".venv-published" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    reps: int
    caller_spans: int
    caller_spans_published: int
    delivery_spans: int
    delivery_spans_published: int
    procs: int
    ingest_bulk_spans: int
    ingest_single_spans: int
    memory_spans: int
    scaling: tuple[int, ...]
    agent_spans: int
    backlog_block: int
    backlog_spans: int
    lag_spans: int


FULL = Plan(
    5,
    20_000,
    100,
    100_000,
    1_000,
    4,
    50_000,
    4_000,
    100_000,
    (1_000, 10_000, 100_000, 300_000),
    50_000,
    5_000,
    300_000,
    100_000,
)
QUICK = Plan(
    2, 3_000, 30, 10_000, 150, 4, 5_000, 600, 20_000, (1_000, 10_000), 5_000, 1_000, 20_000, 10_000
)
# ``--full``: the scaling table up to a million spans (several more minutes).
FULL_SCALING = (1_000, 10_000, 100_000, 300_000, 1_000_000)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVER_PIDS: dict[str, int] = {}
"""The process id of each running :func:`server`, by its URL (for its CPU time)."""


def process_cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(db: Path | str, token: str) -> Iterator[str]:
    """A ``prefactor serve`` process on 127.0.0.1 (``db``: a file or a PostgreSQL URL)."""
    port = free_port()
    env = {**os.environ, "PREFACTOR_API_TOKEN": token}
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "prefactor"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            str(db),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{url}/api/v1/ping", headers={"Authorization": f"Bearer {token}"}
                )
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        SERVER_PIDS[url] = proc.pid
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(python: Path, script: str, args: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run a workload script; return the JSON object on its last stdout line."""
    done = subprocess.run(
        [str(python), str(WORKLOADS / f"{script}.py"), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} {args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_parallel(
    python: Path, script: str, args_list: list[dict[str, Any]], timeout: float = 900
) -> list[dict[str, Any]]:
    """Run several workload processes at once; return their results. Each is given
    ``"barrier": true``: it says ``ready`` once set up, and all are told to go together
    (``_wl.ready_then_wait``)."""
    procs = [
        subprocess.Popen(
            [str(python), str(WORKLOADS / f"{script}.py"), json.dumps({**args, "barrier": True})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in args_list
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and line.strip() != "ready":  # anything a process printed before
            line = proc.stdout.readline()
        if not line:
            for other in procs:
                other.kill()
            _, stderr = proc.communicate(timeout=timeout)
            raise RuntimeError(f"{script} did not get ready:\n{stderr[-3000:]}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{script} failed:\n{stdout[-2000:]}\n{stderr[-3000:]}")
        out.append(json.loads(lines[-1]))
    return out


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(
        [str(OURS), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": version,
        "os": platform.platform(),
    }


# -- the five measurements -------------------------------------------------------------


def caller_overhead(plan: Plan, url: str, token: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for shape in ("flat", "nested"):
        samples: dict[str, list[float]] = {"baseline": [], "ours": [], "otel": [], "published": []}
        for rep in range(plan.reps):
            for sdk, python, n in (
                ("baseline", OURS, plan.caller_spans),
                ("ours", OURS, plan.caller_spans),
                ("otel", OURS, plan.caller_spans),
                ("published", PUBLISHED, plan.caller_spans_published),
            ):
                inner = 1 if sdk == "published" else 3
                result = run(
                    python,
                    "caller",
                    {
                        "sdk": sdk,
                        "shape": shape,
                        "spans": n,
                        "inner_reps": inner,
                        "api_url": url,
                        "token": token,
                    },
                )
                samples[sdk].append(result["us_per_span"])
            log(
                f"caller {shape} rep {rep + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} µs" for k, v in samples.items())
            )
        pairs = list(zip(samples["baseline"], samples["ours"], samples["published"], strict=True))
        otel = list(zip(samples["baseline"], samples["ours"], samples["otel"], strict=True))
        out[shape] = {
            **{sdk: stats(v) for sdk, v in samples.items()},
            "ours_minus_baseline": stats([o - b for b, o, _ in pairs]),
            "published_over_ours": stats([p / o for _, o, p in pairs]),
            "ours_over_baseline": stats([o / b for b, o, _ in pairs]),
            "otel_over_ours": stats([t / o for _, o, t in otel]),
            "otel_over_ours_net": stats([(t - b) / (o - b) for b, o, t in otel]),
            "samples": samples,
        }
    return out


def delivery(plan: Plan, url: str, token: str) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"ours": [], "published": [], "ours_x4": [], "published_x4": []}
    detail: dict[str, list[Any]] = {k: [] for k in rates}
    for rep in range(plan.reps if plan.reps < 5 else 3):
        one = run(
            OURS,
            "delivery",
            {"sdk": "ours", "spans": plan.delivery_spans, "api_url": url, "token": token},
        )
        pub = run(
            PUBLISHED,
            "delivery",
            {
                "sdk": "published",
                "spans": plan.delivery_spans_published,
                "api_url": url,
                "token": token,
            },
        )
        for key, res in (("ours", one), ("published", pub)):
            rates[key].append(res["spans_per_s"])
            detail[key].append(res)
        for key, python, total in (
            ("ours_x4", OURS, plan.delivery_spans),
            ("published_x4", PUBLISHED, plan.delivery_spans_published),
        ):
            each = total // plan.procs
            sdk = key.split("_")[0]
            t0 = time.perf_counter()
            results = run_parallel(
                python,
                "delivery",
                [
                    {"sdk": sdk, "spans": each, "api_url": url, "token": token}
                    for _ in range(plan.procs)
                ],
            )
            # Aggregate: all spans over the longest process's time (the processes start
            # their clocks together, once all have started up and opened their instance).
            longest = max(r["seconds"] for r in results)
            stored = sum(r["stored"] for r in results)
            rates[key].append(stored / longest)
            detail[key].append(
                {
                    "stored": stored,
                    "seconds": longest,
                    "spans": total,
                    "wall_with_startup": time.perf_counter() - t0,
                }
            )
        log(
            f"delivery rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items())
        )
    return {
        **{k: stats(v) for k, v in rates.items()},
        "ours_over_published": stats(
            [o / p for o, p in zip(rates["ours"], rates["published"], strict=True)]
        ),
        "ours_x4_over_published_x4": stats(
            [o / p for o, p in zip(rates["ours_x4"], rates["published_x4"], strict=True)]
        ),
        "detail": detail,
    }


def ingest(plan: Plan, url: str, token: str) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"bulk": [], "bulk_sdk": [], "single": []}
    connections = 4
    modes = (
        ("bulk", plan.ingest_bulk_spans),
        ("bulk_sdk", plan.ingest_bulk_spans),
        ("single", plan.ingest_single_spans),
    )
    for rep in range(plan.reps if plan.reps < 5 else 3):
        for mode, spans in modes:
            res = run(
                OURS,
                "ingest",
                {
                    "mode": mode,
                    "spans": spans,
                    "connections": connections,
                    "api_url": url,
                    "token": token,
                },
            )
            if res["errors"] or res["stored"] != spans:
                raise RuntimeError(f"ingest {mode}: {res}")
            rates[mode].append(res["spans_per_s"])
        log(
            f"ingest rep {rep + 1}: bulk {rates['bulk'][-1]:,.0f}/s, "
            f"bulk as our SDK asks {rates['bulk_sdk'][-1]:,.0f}/s, "
            f"single {rates['single'][-1]:,.0f}/s"
        )
    return {
        **{k: stats(v) for k, v in rates.items()},
        "bulk_over_single": stats(
            [b / s for b, s in zip(rates["bulk"], rates["single"], strict=True)]
        ),
        "connections": connections,
    }


def memory(plan: Plan, url: str, token: str) -> dict[str, Any]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    per_span: list[float] = []
    peaks: list[float] = []
    payload_growth: list[float] = []
    traced_per_span: list[float] = []
    traced_payload: list[float] = []
    for rep in range(plan.reps if plan.reps < 5 else 3):
        ours = run(
            OURS,
            "memory",
            {"sdk": "ours", "spans": plan.memory_spans, "api_url": closed, "token": token},
        )
        base = run(
            OURS,
            "memory",
            {"sdk": "payloads", "spans": plan.memory_spans, "api_url": closed, "token": token},
        )
        per_span.append(ours["growth_bytes_per_span"] - base["growth_bytes_per_span"])
        peaks.append(ours["peak_rss_kb"] / 1024)
        payload_growth.append(base["growth_bytes_per_span"])
        # The same pair of runs with tracemalloc: Python's own count of the bytes.
        traced = {
            sdk: run(
                OURS,
                "memory",
                {
                    "sdk": sdk,
                    "spans": plan.memory_spans,
                    "api_url": closed,
                    "token": token,
                    "tracemalloc": True,
                },
            )["traced_bytes_per_span"]
            for sdk in ("ours", "payloads")
        }
        traced_per_span.append(traced["ours"] - traced["payloads"])
        traced_payload.append(traced["payloads"])
        log(
            f"memory rep {rep + 1}: peak {peaks[-1]:.0f} MiB, {per_span[-1]:.0f} B/span "
            f"beyond payload ({ours['queued']} operations queued); tracemalloc "
            f"{traced_per_span[-1]:.0f} B/span"
        )
    published = run(
        PUBLISHED,
        "memory",
        {"sdk": "published", "spans": plan.memory_spans, "api_url": closed, "token": token},
    )
    return {
        "peak_rss_mib": stats(peaks),
        "bytes_per_span_beyond_payload": stats(per_span),
        "payload_bytes_per_span": stats(payload_growth),
        "traced_bytes_per_span_beyond_payload": stats(traced_per_span),
        "traced_payload_bytes_per_span": stats(traced_payload),
        "published": published.get("error") or published,
    }


def scaling(plan: Plan, url: str, token: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in plan.scaling:
        res = run(
            OURS,
            "delivery",
            {"sdk": "ours", "spans": n, "api_url": url, "token": token},
            timeout=1200,
        )
        slices = res["caller_us_slices"]
        out[str(n)] = {
            "spans_per_s": res["spans_per_s"],
            "seconds": res["seconds"],
            "stored": res["stored"],
            "caller_us_median": statistics.median(slices),
            "caller_us_first": slices[0],
            "caller_us_last": slices[-1],
            "caller_us_slices": slices,
            "paused_seconds": res["paused_seconds"],
        }
        log(
            f"scaling {n:,}: {res['spans_per_s']:,.0f} spans/s, caller "
            f"{statistics.median(slices):.1f} µs (first tenth {slices[0]:.1f}, "
            f"last {slices[-1]:.1f})"
        )
    return out


# -- report ----------------------------------------------------------------------------


def fmt(s: dict[str, float], digits: int = 1, unit: str = "") -> str:
    f = f"{{:,.{digits}f}}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}–{f.format(s['max'])})"


# The suites `scripts/bench` runs after this harness, each in its own module with its own
# competitors side by side; their tables (benchmarks/results/<name>.md) join the report.
SUITES = (
    ("trace", "@trace against an undecorated call, a hand-written span, Langfuse and LangSmith"),
    (
        "otel",
        "OpenTelemetry: OTLP ingest, PrefactorSpanProcessor and OtelSpanMirror against "
        "BatchSpanProcessor",
    ),
    ("storage", "Storage backends: SQLite, PostgreSQL with one and with two server processes"),
    ("viewer", "The viewer in headless Chromium: big runs and many runs, before and after"),
)
SUITE_COMMANDS = {
    "trace": "python -m benchmarks.trace_overhead",
    "otel": "python -m benchmarks.otel",
    "storage": "python -m benchmarks.storage",
    "viewer": "python -m benchmarks.viewer",
}


def report(data: dict[str, Any], chart_name: str) -> str:
    m = data["machine"]
    p = data["plan"]
    c = data["caller"]
    d = data["delivery"]
    g = data["ingest"]
    mem = data["memory"]
    lines = [
        "# Benchmarks",
        "",
        f"Run on {data['date']} with `{data['command']}` ({data['minutes']:.1f} minutes).",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['os']}.",
        "Ours: this repository's prefactor-core/prefactor-http in `.venv`; published: "
        "prefactor-core 0.5.3 + prefactor-http 0.4.3 in `.venv-published`. Both talk to the "
        "same `prefactor serve` process (ours, SQLite, 127.0.0.1) started once for the run; "
        "every workload is its own subprocess.",
        "",
        f"Each figure is the median over {p['reps']} repetitions (caller overhead) or "
        f"{min(p['reps'], 3)} (the others), with the spread (min–max) in parentheses. Ratios "
        "are taken within each repetition, then the median. The server shares the machine's "
        "CPUs with the clients, and these machines are noisy: compare ratios, not absolutes.",
        "",
        f"![chart]({chart_name})",
        "",
        "## 1. Caller overhead per span",
        "",
        "Enter, `start()` with a small params dict, `complete()` with a small result, exit; "
        "flat spans and spans nested three deep (time per span). The baseline is the same "
        f"loop over no-op objects. Ours: {p['caller_spans']:,} spans per sample (median of 3 "
        f"inner runs); published: {p['caller_spans_published']:,} spans per sample (each "
        "awaits an HTTP request).",
        "",
        "| shape | baseline (no SDK) | ours | ours − baseline | OpenTelemetry | OTel / ours "
        "| published | published / ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape in ("flat", "nested"):
        s = c[shape]
        otel = (
            f"{fmt(s['otel'], 2, ' µs')} | {fmt(s['otel_over_ours'], 1, '×')}"
            if "otel" in s
            else "– | –"
        )
        lines.append(
            f"| {shape} | {fmt(s['baseline'], 2, ' µs')} | {fmt(s['ours'], 2, ' µs')} | "
            f"{fmt(s['ours_minus_baseline'], 2, ' µs')} | {otel} | "
            f"{fmt(s['published'], 0, ' µs')} | {fmt(s['published_over_ours'], 0, '×')} |"
        )
    lines += [
        "",
        "OpenTelemetry: its SDK in the same loop (`start_as_current_span`, the params and the "
        "result set as attributes, status OK) with a `BatchSpanProcessor` and an exporter that "
        "does nothing, its queue sized to hold every span. Targets: at most 10 µs per span; "
        "at least 4× less than OpenTelemetry's.",
        "",
        "## 2. Delivery throughput (span() → stored and readable)",
        "",
        "Flat spans of one agent instance; the clock runs from the first `span()` until the "
        "server's read API reports every span stored and finished. Ours sends "
        f"{p['delivery_spans']:,} spans from one process, and {p['delivery_spans']:,} in total "
        f"from {p['procs']} processes at once ({p['delivery_spans'] // p['procs']:,} each). "
        "The published SDK takes milliseconds per span, so it sends only "
        f"{p['delivery_spans_published']:,} spans (one process) and "
        f"{p['delivery_spans_published']:,} in total ({p['procs']} processes): its rate in "
        "spans/s is what compares.",
        "",
        "| | ours | published | ours / published |",
        "|---|---|---|---|",
        f"| 1 process | {fmt(d['ours'], 0, '/s')} | {fmt(d['published'], 0, '/s')} | "
        f"{fmt(d['ours_over_published'], 0, '×')} |",
        f"| {p['procs']} processes | {fmt(d['ours_x4'], 0, '/s')} | "
        f"{fmt(d['published_x4'], 0, '/s')} | {fmt(d['ours_x4_over_published_x4'], 0, '×')} |",
    ]
    if "caller_cpu_us" in (d["detail"]["ours"] or [{}])[0]:
        cpu = {
            key: stats([r[key] for r in d["detail"]["ours"]])
            for key in ("caller_cpu_us", "engine_cpu_us", "process_cpu_us")
        }
        lines += [
            "",
            f"Ours, 1 process, µs of CPU per span: caller {fmt(cpu['caller_cpu_us'], 1)}, "
            f"delivery engine on the agent's thread {fmt(cpu['engine_cpu_us'], 1)}, the "
            f"process in all {fmt(cpu['process_cpu_us'], 1)} (see section 6).",
        ]
    lines += [
        "",
        "Target: at least 20,000 spans/s into SQLite from one process (issue 17: 40,000).",
        "",
        "## 3. Server ingest (client cost kept out)",
        "",
        "Pre-built request bodies sent by a minimal keep-alive HTTP/1.1 client on raw asyncio "
        f"streams over {g['connections']} connections; a 2xx answer means committed. Bulk: "
        f"{p['ingest_bulk_spans']:,} spans, 1,000 span creates per request (terminal status, "
        "result and both timestamps: the merged create our SDK sends). Single: "
        f"{p['ingest_single_spans']:,} `POST /api/v1/agent_spans` requests, one span each. "
        "Every span is checked against the instance's params and result JSON Schemas. "
        "Bulk, answered in full: each output the span's whole body. Bulk as our SDK asks: "
        "`Prefer: return=minimal, omit=success`, an answer listing only what did not "
        "plainly succeed.",
        "",
        "| path | spans/s |",
        "|---|---|",
        f"| bulk, answered in full | {fmt(g['bulk'], 0, '/s')} |",
        *(
            [
                f"| bulk, as our SDK asks (minimal, successes omitted) | "
                f"{fmt(g['bulk_sdk'], 0, '/s')} |"
            ]
            if "bulk_sdk" in g
            else []
        ),
        f"| single requests | {fmt(g['single'], 0, '/s')} |",
        f"| bulk / single | {fmt(g['bulk_over_single'], 1, '×')} |",
    ]
    before = data.get("ingest_before")
    if before:
        lines += ["", before]
    lines += [
        "",
        "## 4. Memory of queued spans (server stopped)",
        "",
        f"Our client pointed at a closed port on 127.0.0.1 records {p['memory_spans']:,} spans "
        "(each with its own params and result); nothing can be delivered, so all of them stay "
        "queued (one record per span, its finish folded in; counted as two operations). "
        "Compared with a process with the "
        "same imports that only builds the same payloads and keeps their JSON text.",
        "",
        "| | value |",
        "|---|---|",
        f"| peak RSS, ours, {p['memory_spans']:,} spans queued | "
        f"{fmt(mem['peak_rss_mib'], 0, ' MiB')} |",
        f"| payload JSON per span (baseline process growth) | "
        f"{fmt(mem['payload_bytes_per_span'], 0, ' B')} |",
        f"| bytes per queued span beyond its payload | "
        f"{fmt(mem['bytes_per_span_beyond_payload'], 0, ' B')} |",
    ]
    if "traced_bytes_per_span_beyond_payload" in mem:
        lines += [
            f"| the same by tracemalloc (Python's allocations; payload "
            f"{fmt(mem['traced_payload_bytes_per_span'], 0, ' B')}) | "
            f"{fmt(mem['traced_bytes_per_span_beyond_payload'], 0, ' B')} |",
        ]
    lines += [
        f"| published SDK | not measurable: `{mem['published']}` |",
        "",
        "Target: at most 500 B per queued span beyond its payload (issue 17; 1 KB before), "
        "and bounded (`QueueConfig.max_queue_size`; raised here to hold every span).",
        "",
        "## 5. Scaling with the number of spans",
        "",
        "Our SDK, one process, flat spans, as in 2; caller time per span in the first and "
        "last tenth of the run, and throughput to stored. One run per size"
        + (
            " (the 1,000,000 run is a single, time-bounded run; the loop sleeps while more "
            "than 150,000 operations wait, which is not counted as caller time)."
            if "1000000" in data["scaling"]
            else "."
        ),
        "",
        "| spans | caller µs/span (median of tenths) | first tenth | last tenth | spans/s |",
        "|---|---|---|---|---|",
    ]
    for n, s in data["scaling"].items():
        lines.append(
            f"| {int(n):,} | {s['caller_us_median']:.1f} | {s['caller_us_first']:.1f} | "
            f"{s['caller_us_last']:.1f} | {s['spans_per_s']:,.0f} |"
        )
    from benchmarks.agent_rows import agent_sections  # it imports this module's helpers

    lines += agent_sections(data)
    for number, (name, title) in enumerate(SUITES, start=9):
        table = RESULTS / f"{name}.md"
        if table.exists():
            lines += ["", f"## {number}. {title}", "", f"`{SUITE_COMMANDS[name]}`:", ""]
            lines += [table.read_text().strip()]
    if data.get("notes"):
        lines += ["", "## Notes", "", data["notes"]]
    lines += storage_section()
    return "\n".join(lines) + "\n"


def storage_section() -> list[str]:
    """The storage backends' table (``python -m benchmarks.storage``) and its notes."""
    table, notes = RESULTS / "storage.md", RESULTS / "storage-notes.md"
    if not table.exists():
        return []
    lines = ["", "## Storage backends: SQLite and PostgreSQL", "", table.read_text().strip()]
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return lines


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    c = data["caller"]
    names = [n for n in ("baseline", "ours", "otel", "published") if n in c["flat"]]
    width = 0.38
    for i, shape in enumerate(("flat", "nested")):
        values = [c[shape][n]["median"] for n in names]
        lows = [c[shape][n]["median"] - c[shape][n]["min"] for n in names]
        highs = [c[shape][n]["max"] - c[shape][n]["median"] for n in names]
        xs = [x + (i - 0.5) * width for x in range(len(names))]
        bars = ax.bar(xs, values, width, yerr=[lows, highs], label=shape, capsize=3)
        ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values], fontsize=8)
    ax.axhline(10, color="red", linestyle="--", linewidth=1, label="target 10 µs")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [{"otel": "OpenTelemetry"}.get(n, n) for n in names])
    ax.set_ylabel("µs per span (log)")
    ax.set_title("1. Caller overhead per span")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    d = data["delivery"]
    keys = ["published", "published_x4", "ours", "ours_x4"]
    labels = [
        "published\n1 proc",
        f"published\n{data['plan']['procs']} procs",
        "ours\n1 proc",
        f"ours\n{data['plan']['procs']} procs",
    ]
    values = [d[k]["median"] for k in keys]
    bars = ax.bar(
        labels,
        values,
        color=["#999", "#bbb", "#1f77b4", "#6baed6"],
        yerr=[
            [d[k]["median"] - d[k]["min"] for k in keys],
            [d[k]["max"] - d[k]["median"] for k in keys],
        ],
        capsize=3,
    )
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax.axhline(20_000, color="red", linestyle="--", linewidth=1, label="target 20,000/s")
    ax.set_yscale("log")
    ax.set_ylabel("spans/s stored (log)")
    ax.set_title("2. Delivery: span() → stored in SQLite")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    g = data["ingest"]
    rows = [("single", g["single"]["median"]), ("bulk", g["bulk"]["median"])]
    before = data.get("ingest_before_values") or {}
    if before:
        rows = [
            ("single\nbefore", before["single"]),
            ("single", g["single"]["median"]),
            ("bulk\nbefore", before["bulk"]),
            ("bulk", g["bulk"]["median"]),
        ]
    if "bulk_sdk" in g:
        rows.append(("bulk,\nSDK's answer", g["bulk_sdk"]["median"]))
    bars = ax.bar(
        [r[0] for r in rows],
        [r[1] for r in rows],
        color=["#bbb" if "before" in r[0] else "#2ca02c" for r in rows],
    )
    ax.bar_label(bars, labels=[f"{r[1]:,.0f}" for r in rows], fontsize=8)
    ax.set_ylabel("spans/s stored")
    ax.set_title("3. Server ingest (pre-built bodies, 4 connections)")

    ax = axes[1][1]
    s = data["scaling"]
    ns = [int(n) for n in s]
    ax.plot(ns, [s[str(n)]["caller_us_first"] for n in ns], "o--", label="caller µs, first tenth")
    ax.plot(ns, [s[str(n)]["caller_us_last"] for n in ns], "o-", label="caller µs, last tenth")
    ax.set_xscale("log")
    ax.set_xlabel("spans in the run")
    ax.set_ylabel("caller µs per span")
    ax2 = ax.twinx()
    ax2.plot(
        ns, [s[str(n)]["spans_per_s"] for n in ns], "s-", color="#d62728", label="spans/s stored"
    )
    ax2.set_ylabel("spans/s stored", color="#d62728")
    ax2.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    ax.set_title("5. Scaling (ours)")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=8, loc="lower left")
    fig.suptitle(f"prefactor benchmarks, {data['date']} ({data['machine']['nproc']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (under 2 minutes)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, quick 2)")
    parser.add_argument(
        "--only",
        help="comma-separated: caller,delivery,ingest,memory,scaling,agent_thread,backlog,lag",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the scaling table up to 1,000,000 spans (several more minutes)",
    )
    parser.add_argument("--output", type=Path, help="the Markdown report to write")
    parser.add_argument(
        "--notes",
        type=Path,
        default=RESULTS / "notes.md",
        help="a Markdown file appended as Notes (default benchmarks/results/notes.md)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report and chart from the last raw results",
    )
    args = parser.parse_args(argv)
    for python in (OURS, PUBLISHED):
        if not python.exists():
            print(f"missing {python}: run scripts/setup and scripts/published-venv")
            return 2
    plan = QUICK if args.quick else FULL
    if args.render_only:
        raw = RESULTS / ("results-quick.json" if args.quick else "results.json")
        data = json.loads(raw.read_text())
        if args.notes and args.notes.exists():
            data["notes"] = args.notes.read_text()
        output = args.output or (RESULTS / "quick.md" if args.quick else ROOT / "BENCHMARKS.md")
        chart_path = RESULTS / ("chart-quick.png" if args.quick else "chart.png")
        chart(data, chart_path)
        output.write_text(report(data, os.path.relpath(chart_path, output.parent)))
        log(f"wrote {output} and {chart_path}")
        return 0
    if args.reps:
        plan = dataclasses.replace(plan, reps=args.reps)
    if args.full:
        plan = dataclasses.replace(plan, scaling=FULL_SCALING)
    only = set(args.only.split(",")) if args.only else None
    output = args.output or (RESULTS / "quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    chart_path = RESULTS / ("chart-quick.png" if args.quick else "chart.png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "scripts/bench" + (" --quick" if args.quick else "")
    if args.reps:
        command += f" --reps {args.reps}"
    if args.full:
        command += " --full"
    started = time.monotonic()
    token = "bench-" + secrets.token_hex(12)
    tmp = Path(tempfile.mkdtemp(prefix="prefactor-bench-"))
    data: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(),
        "plan": plan.__dict__,
    }
    from benchmarks.agent_rows import agent_thread, backlog, lag  # see report()

    steps: list[tuple[str, Callable[[Plan, str, str], dict[str, Any]]]] = [
        ("caller", caller_overhead),
        ("delivery", delivery),
        ("ingest", ingest),
        ("memory", memory),
        ("scaling", scaling),
        ("agent_thread", agent_thread),
        ("backlog", backlog),
        ("lag", lag),
    ]
    try:
        with server(tmp / "bench.db", token) as url:
            log(f"server at {url}, database {tmp / 'bench.db'}")
            for name, step in steps:
                if only is None or name in only:
                    log(f"-- {name}")
                    data[name] = step(plan, url, token)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data["minutes"] = (time.monotonic() - started) / 60
    raw = RESULTS / ("results-quick.json" if args.quick else "results.json")
    if only is not None:  # a partial run leaves the last full run's raw results alone
        raw = RESULTS / ("results-only-quick.json" if args.quick else "results-only.json")
    before_file = RESULTS / "ingest-before.json"
    if before_file.exists():
        before = json.loads(before_file.read_text())
        data["ingest_before_values"] = before["values"]
        data["ingest_before"] = before["text"]
    if args.notes and args.notes.exists() and not args.quick:
        data["notes"] = args.notes.read_text()
    raw.write_text(json.dumps(data, indent=1))
    log(f"raw results in {raw}")
    if only is None:
        chart(data, chart_path)
        rel = os.path.relpath(chart_path, output.parent)
        output.write_text(report(data, rel))
        log(f"wrote {output} and {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
