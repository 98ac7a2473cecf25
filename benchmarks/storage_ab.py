"""``python -m benchmarks.storage_ab --before DIR``: server ingest, older code against this one.

The server's write path is measured twice in one run, rounds interleaved: ``prefactor
serve`` from this checkout, and the same command with ``PYTHONPATH`` pointing at the
server, core and http sources of another checkout (``DIR`` holds ``packages/``, e.g.
``git archive <commit> packages | tar -x -C DIR``; ``--after DIR2`` likewise replaces this
checkout's sources on the other side). Both serve a fresh SQLite file (or,
with ``--postgres``, a fresh database of ``PREFACTOR_TEST_POSTGRES_URL``); the workloads
run unchanged from this checkout:

* ``bulk``: the ``ingest`` workload (pre-built ``POST /api/v1/bulk`` bodies of 1,000 span
  creates with client ids, ``Prefer: return=minimal``, 4 keep-alive connections);
* ``bulk without ids``: ``benchmarks.storage``'s bodies (500 creates without ids, 4 senders);
* ``delivery``: the ``delivery`` workload of our SDK (one process, ``span()`` to stored:
  the server's share of the SDK's delivery is its CPU per span here);
* ``otlp``: the ``otlp_ingest`` workload (one ``OTLPSpanExporter`` process, protobuf, 512
  spans per export).

Prints the medians (min–max) of each and the median of the per-round ratios, and the
server process's CPU time per span over the workload (user + system, read from
``/proc``: steadier than the rates on a shared machine), with the load average at the
start and the end, and writes ``benchmarks/results/storage-ab.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks import storage
from benchmarks.run import OURS, RESULTS, log, run, server

_PACKAGES = ("prefactor-server", "prefactor-core", "prefactor-http")


def _server_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's ``prefactor serve`` child."""
    me = os.getpid()
    with open(f"/proc/{me}/task/{me}/children") as children:
        pids = children.read().split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"serve" not in cmdline.read():
                    continue
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError("no prefactor serve child process")


@contextmanager
def _serving(target: str, token: str, sources: Path | None) -> Iterator[str]:
    """``prefactor serve`` on ``target``, importing from ``sources`` when given."""
    saved = os.environ.get("PYTHONPATH")
    with ExitStack() as stack:
        if sources is not None:
            paths = [str(sources / "packages" / name / "src") for name in _PACKAGES]
            os.environ["PYTHONPATH"] = os.pathsep.join(paths)
        try:
            url = stack.enter_context(server(target, token))
        finally:  # only the server process imports the other sources, not the workloads
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        yield url


def _bulk(url: str, token: str, spans: int) -> float:
    res = run(
        OURS,
        "ingest",
        {"mode": "bulk_minimal", "spans": spans, "connections": 4, "api_url": url, "token": token},
    )
    if res["errors"] or res["stored"] != spans:
        raise RuntimeError(f"bulk: {res}")
    return float(res["spans_per_s"])


def _delivery(url: str, token: str, spans: int) -> float:
    res = run(OURS, "delivery", {"sdk": "ours", "spans": spans, "api_url": url, "token": token})
    if res["stored"] != spans:
        raise RuntimeError(f"delivery: {res}")
    return float(res["spans_per_s"])


def _bulk_no_ids(url: str, token: str, spans: int) -> float:
    return asyncio.run(storage._ingest([url], spans))  # authenticates with storage.TOKEN


def _otlp(url: str, token: str, spans: int) -> float:
    res = run(OURS, "otlp_ingest", {"url": url, "token": token, "spans": spans, "batch": 512})
    if res["stored"] != res["spans"]:
        raise RuntimeError(f"otlp: {res}")
    return float(res["spans_per_s"])


_WORKLOADS: dict[str, Callable[[str, str, int], float]] = {
    "bulk": _bulk,
    "bulk without ids": _bulk_no_ids,
    "delivery": _delivery,
    "otlp": _otlp,
}


def _target(directory: str, name: str, postgres: bool) -> tuple[str, Callable[[], None]]:
    if not postgres:
        return f"{directory}/{name}.db", lambda: None
    cluster = os.environ["PREFACTOR_TEST_POSTGRES_URL"]
    url = storage._database(cluster)
    return url, lambda: storage._drop(cluster, url)


def _fmt(values: list[float], digits: int = 0) -> str:
    median = statistics.median(values)
    return f"{median:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _table(
    title: str,
    ratio: str,
    names: list[str],
    values: dict[tuple[str, str], list[float]],
    digits: int,
    *,
    higher_is_better: bool,
) -> list[str]:
    """A markdown table of before and after per workload, with the per-round gain."""
    lines = [f"| {title} | before | after | {ratio} |", "|---|---|---|---|"]
    for name in names:
        before, after = values[(name, "before")], values[(name, "after")]
        gains = [a / b if higher_is_better else b / a for a, b in zip(after, before, strict=True)]
        lines.append(
            f"| {name} | {_fmt(before, digits)} | {_fmt(after, digits)} | {_fmt(gains, 2)}× |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout's root")
    parser.add_argument("--after", type=Path, help="a checkout's root (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--only", help="comma-separated workloads: " + ", ".join(_WORKLOADS))
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(_WORKLOADS)
    token = storage.TOKEN
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for rnd in range(args.rounds):
            for variant, sources in (("before", args.before), ("after", args.after)):
                for name in names:
                    target, drop = _target(
                        directory, f"{variant}-{rnd}-{len(rates)}", args.postgres
                    )
                    try:
                        with _serving(target, token, sources) as url:
                            cpu = _server_cpu()
                            rate = _WORKLOADS[name](url, token, args.spans)
                            cpu = _server_cpu() - cpu
                    finally:
                        drop()
                    rates.setdefault((name, variant), []).append(rate)
                    per_span = cpu / args.spans * 1e6
                    cpus.setdefault((name, variant), []).append(per_span)
                    log(
                        f"round {rnd + 1} {variant} {name}: {rate:,.0f} spans/s, "
                        f"server CPU {per_span:.1f} µs/span"
                    )
    backend = "PostgreSQL" if args.postgres else "SQLite"
    lines = [
        f"Run {started} with `python -m benchmarks.storage_ab --before {args.before}"
        f"{' --postgres' if args.postgres else ''}`: {backend}, {args.spans:,} spans per "
        f"measurement, {args.rounds} interleaved rounds, median (min–max); "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end.",
        "",
        *_table("spans/s stored", "after / before", names, rates, 0, higher_is_better=True),
        "",
        *_table(
            "server CPU, µs per span (user + system, whole process)",
            "before / after",
            names,
            cpus,
            1,
            higher_is_better=False,
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"storage-ab{'-postgres' if args.postgres else ''}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
