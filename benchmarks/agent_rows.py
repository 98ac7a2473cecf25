"""Issue 17's rows of the core harness (``benchmarks/run.py`` runs and reports them).

* ``agent_thread``: CPU per span on the agent's thread, ours (caller + delivery engine)
  against OpenTelemetry's ``BatchSpanProcessor`` (BENCHMARKS.md section 6);
* ``backlog``: caller time from an empty queue to a long backlog, with and without the
  queue's ``gc.freeze()`` handling (section 7);
* ``lag``: the agent's event loop while the engine delivers, 1 ms ticker (section 8).
"""

from __future__ import annotations

from typing import Any

from benchmarks.run import OURS, Plan, fmt, free_port, log, run, stats


def agent_thread(plan: Plan, url: str, token: str) -> dict[str, Any]:
    """CPU per span on the agent's thread: ours (caller + delivery engine) against OTel."""
    rows: dict[str, list[dict[str, Any]]] = {"ours": [], "otel": [], "baseline": []}
    n = plan.agent_spans
    for rep in range(plan.reps if plan.reps < 5 else 3):
        rows["baseline"].append(run(OURS, "agent_thread", {"sdk": "baseline", "spans": n}))
        ours = run(OURS, "delivery", {"sdk": "ours", "spans": n, "api_url": url, "token": token})
        ours["thread_cpu_us"] = ours["caller_cpu_us"] + ours["engine_cpu_us"]
        ours["other_threads_cpu_us"] = ours["process_cpu_us"] - ours["thread_cpu_us"]
        rows["ours"].append(ours)
        rows["otel"].append(run(OURS, "agent_thread", {"sdk": "otel", "spans": n}))
        o, t = rows["ours"][-1], rows["otel"][-1]
        log(
            f"agent thread rep {rep + 1}: ours caller {o['caller_cpu_us']:.1f} + engine "
            f"{o['engine_cpu_us']:.1f} µs; otel caller {t['caller_cpu_us']:.1f} µs "
            f"(+{t['other_threads_cpu_us']:.1f} on its export thread)"
        )

    def figure(sdk: str, key: str) -> dict[str, float]:
        return stats([float(r[key]) for r in rows[sdk]])

    pairs = list(zip(rows["ours"], rows["otel"], strict=True))
    return {
        "spans": n,
        **{
            f"{sdk}_{key}": figure(sdk, key)
            for sdk in rows
            for key in ("caller_cpu_us", "thread_cpu_us", "other_threads_cpu_us")
        },
        "ours_engine_cpu_us": figure("ours", "engine_cpu_us"),
        "otel_caller_over_ours_caller": stats(
            [t["caller_cpu_us"] / o["caller_cpu_us"] for o, t in pairs]
        ),
        "otel_thread_over_ours_thread": stats(
            [t["thread_cpu_us"] / o["thread_cpu_us"] for o, t in pairs]
        ),
        "otel_process_over_ours_process": stats(
            [
                (t["thread_cpu_us"] + t["other_threads_cpu_us"]) / o["process_cpu_us"]
                for o, t in pairs
            ]
        ),
        "rows": rows,
    }


def backlog(plan: Plan, url: str, token: str) -> dict[str, Any]:
    """Caller time per span from an empty queue to ``backlog_spans`` spans queued.

    ``ours``: the client as it comes (its queue freezes a long backlog out of the
    garbage collector's scans); ``unfrozen``: the same with ``freeze_step=0``, as before.
    """
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: nothing drains
    rows: dict[str, list[dict[str, Any]]] = {"ours": [], "unfrozen": []}
    for rep in range(plan.reps if plan.reps < 5 else 3):
        for variant, extra in (("ours", {}), ("unfrozen", {"freeze_step": 0})):
            args = {"api_url": closed, "token": token, "block": plan.backlog_block}
            res = run(OURS, "backlog", {**args, "backlog": plan.backlog_spans, **extra})
            rows[variant].append(res)
            log(
                f"backlog rep {rep + 1} {variant}: empty {res['empty']['cpu_us_per_span']:.2f} "
                f"µs, last third {res['backlog']['cpu_us_per_span']:.2f} µs CPU (gc "
                f"{res['backlog']['gc_us_per_span']:.2f} µs, longest "
                f"{res['backlog']['gc_longest_ms']:.0f} ms)"
            )
    out: dict[str, Any] = {
        "block": plan.backlog_block,
        "backlog_spans": plan.backlog_spans,
        "queued_operations": rows["ours"][0]["queued_operations"],
        "rows": rows,
    }
    for variant, results in rows.items():
        for state in ("empty", "backlog"):
            for key in ("us_per_span", "cpu_us_per_span", "gc_us_per_span", "gc_longest_ms"):
                out[f"{variant}_{state}_{key}"] = stats([float(r[state][key]) for r in results])
        for key in ("us_per_span", "cpu_us_per_span"):
            out[f"{variant}_ratio_{key}"] = stats(
                [r["backlog"][key] / r["empty"][key] for r in results]
            )
    return out


def lag(plan: Plan, url: str, token: str) -> dict[str, Any]:
    """The agent's event loop while ``lag_spans`` spans are delivered (1 ms ticker)."""
    rows: list[dict[str, Any]] = []
    for rep in range(plan.reps if plan.reps < 5 else 3):
        res = run(OURS, "lag", {"api_url": url, "token": token, "spans": plan.lag_spans})
        rows.append(res)
        d, i = res["delivering"], res["idle"]
        log(
            f"lag rep {rep + 1}: delivering {res['delivery_s']:.1f} s, max lag "
            f"{d['lag_max_ms']:.1f} ms (busy {d['busy_max_ms']:.1f} ms, "
            f"{d['busy_over_2ms']} busy > 2 ms); idle max lag {i['lag_max_ms']:.1f} ms"
        )
    out: dict[str, Any] = {"spans": plan.lag_spans, "rows": rows}
    for phase in ("delivering", "idle"):
        for key in rows[0][phase]:
            out[f"{phase}_{key}"] = stats([float(r[phase][key]) for r in rows])
    out["delivery_s"] = stats([r["delivery_s"] for r in rows])
    return out


def agent_sections(data: dict[str, Any]) -> list[str]:
    """Sections 6-8: the agent's thread against OpenTelemetry, the backlog, the loop's lag."""
    lines: list[str] = []
    a = data.get("agent_thread")
    if a:
        lines += [
            "",
            "## 6. CPU per span on the agent's thread: ours against OpenTelemetry",
            "",
            f"{a['spans']:,} flat spans in the loop of section 2 (a yield every 100 spans), "
            "CPU time (`time.thread_time`) of the agent's thread. Ours: the caller's share "
            "(inside the loop) and the delivery engine's (queue, dispatcher, bodies, HTTP: all "
            "on the agent's event loop, from the first span until `flush` returned, with the "
            "spans stored in SQLite by the server). OpenTelemetry: the same loop with a "
            "`BatchSpanProcessor` and a no-op exporter; its export runs on its own thread "
            "(the last column, with ours: any other thread of the process).",
            "",
            "| µs of CPU per span | caller | engine on the agent's thread | agent's thread "
            "in all | other threads |",
            "|---|---|---|---|---|",
            f"| baseline (no SDK) | {fmt(a['baseline_caller_cpu_us'], 2)} | – | "
            f"{fmt(a['baseline_thread_cpu_us'], 2)} | – |",
            f"| ours | {fmt(a['ours_caller_cpu_us'], 2)} | {fmt(a['ours_engine_cpu_us'], 2)} | "
            f"{fmt(a['ours_thread_cpu_us'], 2)} | {fmt(a['ours_other_threads_cpu_us'], 2)} |",
            f"| OpenTelemetry, BatchSpanProcessor | {fmt(a['otel_caller_cpu_us'], 2)} | – | "
            f"{fmt(a['otel_thread_cpu_us'], 2)} | {fmt(a['otel_other_threads_cpu_us'], 2)} |",
            "",
            "| ratio (within each repetition) | |",
            "|---|---|",
            f"| OTel caller / ours caller | {fmt(a['otel_caller_over_ours_caller'], 1, '×')} |",
            f"| OTel agent's thread / ours agent's thread (caller + engine) | "
            f"{fmt(a['otel_thread_over_ours_thread'], 2, '×')} |",
            f"| OTel process / ours process (every thread; ours includes delivery to the "
            f"server, OTel's exporter does nothing) | "
            f"{fmt(a['otel_process_over_ours_process'], 2, '×')} |",
            "",
            "Target (issue 17): ours, caller and engine together, at most half of "
            "OpenTelemetry's (a ratio of 2× or more in the second row).",
        ]
    b = data.get("backlog")
    if b:
        third = b["backlog_spans"] * 2 // 3
        lines += [
            "",
            "## 7. Caller time as the backlog grows",
            "",
            f"Our client pointed at a closed port, so every span stays queued; the loop of "
            f"section 2 records {b['backlog_spans']:,} spans in slices of {b['block']:,} "
            f"({b['queued_operations']:,} operations queued at the end). Empty: the median "
            f"of the first three slices. Backlog: all the slices from {third:,} to "
            f"{b['backlog_spans']:,} spans queued together, so the garbage collector's full "
            "collections count at their share (its time and its longest single collection "
            "from `gc.callbacks`). Ours: the client as it comes, whose queue calls "
            "`gc.freeze()` as the backlog grows; without freeze: the same queue with "
            "`freeze_step=0`, as before.",
            "",
            "| | empty queue | backlog | backlog / empty |",
            "|---|---|---|---|",
        ]
        for variant, name in (("ours", "ours"), ("unfrozen", "without freeze")):
            v = {
                key[len(variant) + 1 :]: value
                for key, value in b.items()
                if key.startswith(variant + "_")
            }
            lines += [
                f"| {name}: caller µs per span (wall) | {fmt(v['empty_us_per_span'], 2)} | "
                f"{fmt(v['backlog_us_per_span'], 2)} | {fmt(v['ratio_us_per_span'], 2, '×')} |",
                f"| {name}: caller µs of CPU per span | {fmt(v['empty_cpu_us_per_span'], 2)} "
                f"| {fmt(v['backlog_cpu_us_per_span'], 2)} | "
                f"{fmt(v['ratio_cpu_us_per_span'], 2, '×')} |",
                f"| {name}: of which the garbage collector | "
                f"{fmt(v['empty_gc_us_per_span'], 2)} | {fmt(v['backlog_gc_us_per_span'], 2)} | |",
                f"| {name}: longest collection | {fmt(v['empty_gc_longest_ms'], 1, ' ms')} | "
                f"{fmt(v['backlog_gc_longest_ms'], 1, ' ms')} | |",
            ]
        lines += [
            "",
            "Target (issue 17): at 300,000 queued spans within 20% of the empty queue's cost "
            "(a ratio of at most 1.20×).",
        ]
    g = data.get("lag")
    if g:
        lines += [
            "",
            "## 8. The agent's event loop while the engine delivers",
            "",
            f"{g['spans']:,} spans recorded, then delivered to the server "
            f"({fmt(g['delivery_s'], 1, ' s')}) while a task asks the loop to wake it every "
            "1 ms. Lag: how late each tick came. Busy: the loop thread's CPU between two ticks "
            "(a late tick with the CPU idle is the shared machine running something else; a "
            "busy one is the engine holding the loop). Idle: the same ticker alone for as "
            "long, the machine's noise floor.",
            "",
            "| | delivering | idle loop |",
            "|---|---|---|",
            f"| ticks | {fmt(g['delivering_ticks'], 0)} | {fmt(g['idle_ticks'], 0)} |",
            f"| longest lag | {fmt(g['delivering_lag_max_ms'], 2, ' ms')} | "
            f"{fmt(g['idle_lag_max_ms'], 2, ' ms')} |",
            f"| lag, 99.9th percentile | {fmt(g['delivering_lag_p999_ms'], 2, ' ms')} | "
            f"{fmt(g['idle_lag_p999_ms'], 2, ' ms')} |",
            f"| ticks later than 2 ms | {fmt(g['delivering_lags_over_2ms'], 0)} | "
            f"{fmt(g['idle_lags_over_2ms'], 0)} |",
            f"| longest busy stretch | {fmt(g['delivering_busy_max_ms'], 2, ' ms')} | "
            f"{fmt(g['idle_busy_max_ms'], 2, ' ms')} |",
            f"| busy stretches over 2 ms | {fmt(g['delivering_busy_over_2ms'], 0)} | "
            f"{fmt(g['idle_busy_over_2ms'], 0)} |",
            "",
            "Target (issue 17): no stall over 2 ms.",
        ]
    return lines
