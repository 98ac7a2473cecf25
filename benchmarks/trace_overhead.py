"""@trace overhead: caller time per decorated call, side by side with an undecorated call,
our hand-written span, Langfuse ``@observe`` and LangSmith ``@traceable``.

    scripts/bench-trace            # full run (a few minutes)
    scripts/bench-trace --quick    # smoke run

Ours runs in ``.venv`` against one ``prefactor serve`` on 127.0.0.1; the peers run in
``.venv-peers`` (langfuse and langsmith, never installed into the SDK's environment),
exporting to a closed port on 127.0.0.1. Repetitions interleave the cases; each figure is
a median over repetitions with its spread, and each ratio is the median of ratios taken
within one repetition. Writes ``benchmarks/results/trace.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.run import OURS, RESULTS, ROOT, free_port, log, machine, run, server

PEERS = ROOT / ".venv-peers" / "bin" / "python"
OUR_CASES = (
    "plain_sync",
    "plain_async",
    "hand_span",
    "traced_sync",
    "traced_async",
    "sync_hand_span",
    "sync_traced",
)
PEER_CASES = ("langfuse", "langsmith")
LABELS = {
    "plain_sync": "undecorated sync call",
    "plain_async": "undecorated async call",
    "hand_span": "our hand-written span (async client)",
    "traced_sync": "our @trace, sync function (async client)",
    "traced_async": "our @trace, async function (async client)",
    "sync_hand_span": "our hand-written span (SyncPrefactorCoreClient)",
    "sync_traced": "our @trace, sync function (SyncPrefactorCoreClient)",
    "langfuse": "Langfuse @observe (exporting to a closed port)",
    "langsmith": "LangSmith @traceable (exporting to a closed port)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    reps, calls, peer_calls = (2, 2_000, 300) if options.quick else (5, 20_000, 2_000)
    token = secrets.token_hex(16)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    samples: dict[str, list[float]] = {case: [] for case in OUR_CASES + PEER_CASES}
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp) / "trace.db", token) as url:
        for rep in range(reps):
            log(f"trace overhead: repetition {rep + 1}/{reps}")
            for case in OUR_CASES:
                args = {"case": case, "calls": calls, "api_url": url, "token": token}
                samples[case].append(run(OURS, "trace_ours", args)["us_per_call"])
            for case in PEER_CASES:
                args = {"case": case, "calls": peer_calls, "closed_url": closed}
                samples[case].append(run(PEERS, "trace_peers", args)["us_per_call"])
    report = summarise(samples, reps, calls, peer_calls)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "trace.json").write_text(json.dumps(report, indent=2) + "\n")
    table = render(report)
    (RESULTS / "trace.md").write_text(table)
    print(table)


def summarise(
    samples: dict[str, list[float]], reps: int, calls: int, peer_calls: int
) -> dict[str, Any]:
    def ratio(case: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(samples[case], samples[base], strict=True))

    rows = {
        case: {
            "label": LABELS[case],
            "us_per_call": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "x_hand_span": ratio(case, "hand_span"),
        }
        for case, values in samples.items()
    }
    return {
        "machine": machine(),
        "reps": reps,
        "calls": calls,
        "peer_calls": peer_calls,
        "rows": rows,
        "target": "a decorated call costs at most 2x our hand-written span",
        "traced_sync_vs_hand": ratio("traced_sync", "hand_span"),
        "traced_async_vs_hand": ratio("traced_async", "hand_span"),
        "sync_traced_vs_sync_hand": ratio("sync_traced", "sync_hand_span"),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        "| what | µs per call (median, min-max) | × our hand-written span |",
        "|---|---|---|",
    ]
    for row in report["rows"].values():
        lines.append(
            f"| {row['label']} | {row['us_per_call']:.2f} ({row['min']:.2f}-{row['max']:.2f}) "
            f"| {row['x_hand_span']:.2f} |"
        )
    lines.append("")
    lines.append(
        f"{report['reps']} repetitions of {report['calls']} calls (peers: "
        f"{report['peer_calls']}); @trace sync / hand span: "
        f"{report['traced_sync_vs_hand']:.2f}×, @trace async / hand span: "
        f"{report['traced_async_vs_hand']:.2f}×, sync client @trace / its hand span: "
        f"{report['sync_traced_vs_sync_hand']:.2f}× (target: at most 2×)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
