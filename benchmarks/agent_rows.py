"""Issue 17's rows of the core harness (``benchmarks/run.py`` runs and reports them).

* ``agent_thread``: CPU per span on the agent's thread, ours (caller + delivery engine)
  against OpenTelemetry's ``BatchSpanProcessor`` (BENCHMARKS.md section 6), and ours with
  the engine on its own thread (``SyncPrefactorCoreClient`` used from the async agent);
* ``backlog``: caller time from an empty queue to a long backlog, with and without the
  queue's ``gc.freeze()`` handling (section 7);
* ``lag``: the agent's event loop while the engine delivers, 1 ms ticker (section 8),
  the engine on the agent's loop and on its own thread.
"""

from __future__ import annotations

from typing import Any

from benchmarks.run import OURS, Plan, fmt, free_port, log, run, stats


def agent_thread(plan: Plan, url: str, token: str) -> dict[str, Any]:
    """CPU per span on the agent's thread: ours (caller + delivery engine) against OTel."""
    rows: dict[str, list[dict[str, Any]]] = {"ours": [], "otel": [], "baseline": []}
    sync_rows: list[dict[str, Any]] = []
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
        sync_rows.append(own_thread_row(n, url, token))

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
        **own_thread_figures(sync_rows, rows["ours"], rows["otel"]),
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


def own_thread_row(n: int, url: str, token: str) -> dict[str, Any]:
    """One run of section 2's loop with ``SyncPrefactorCoreClient`` (its engine on its own
    thread) used from the async agent; its figures keyed as ``agent_thread``'s rows."""
    res = run(OURS, "delivery_sync", {"spans": n, "api_url": url, "token": token})
    res["thread_cpu_us"] = res["caller_cpu_us"] + res["engine_cpu_us"]
    res["other_threads_cpu_us"] = res["process_cpu_us"] - res["thread_cpu_us"]
    log(
        f"agent thread, engine on its own thread: caller {res['caller_cpu_us']:.1f} + "
        f"{res['engine_cpu_us']:.1f} µs on the agent's thread, +{res['other_threads_cpu_us']:.1f} "
        f"on the engine's; {res['spans_per_s']:,.0f} spans/s stored"
    )
    return res


def own_thread_figures(
    sync: list[dict[str, Any]], ours: list[dict[str, Any]], otel: list[dict[str, Any]]
) -> dict[str, Any]:
    """Section 6's figures for the engine on its own thread, beside the same repetition's
    async client (``ours``) and OpenTelemetry."""
    out: dict[str, Any] = {"sync_rows": sync}
    for key in ("caller_cpu_us", "engine_cpu_us", "thread_cpu_us", "other_threads_cpu_us"):
        out[f"sync_{key}"] = stats([float(r[key]) for r in sync])
    for name, results in (("sync", sync), ("ours", ours)):
        out[f"{name}_process_cpu_us"] = stats([float(r["process_cpu_us"]) for r in results])
        out[f"{name}_spans_per_s"] = stats([float(r["spans_per_s"]) for r in results])
    triples = list(zip(sync, ours, otel, strict=True))
    out["otel_thread_over_sync_thread"] = stats(
        [t["thread_cpu_us"] / s["thread_cpu_us"] for s, _, t in triples]
    )
    out["otel_process_over_sync_process"] = stats(
        [
            (t["thread_cpu_us"] + t["other_threads_cpu_us"]) / s["process_cpu_us"]
            for s, _, t in triples
        ]
    )
    out["ours_thread_over_sync_thread"] = stats(
        [o["thread_cpu_us"] / s["thread_cpu_us"] for s, o, _ in triples]
    )
    return out


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
    """The agent's event loop while ``lag_spans`` spans are delivered (1 ms ticker), the
    engine on the agent's loop (``rows``) and on its own thread (``sync_rows``)."""
    runs: dict[str, list[dict[str, Any]]] = {"async": [], "sync": []}
    for rep in range(plan.reps if plan.reps < 5 else 3):
        for client, results in runs.items():
            args = {"api_url": url, "token": token, "spans": plan.lag_spans, "client": client}
            res = run(OURS, "lag", args)
            results.append(res)
            d, i = res["delivering"], res["idle"]
            log(
                f"lag rep {rep + 1} ({client} client): delivering {res['delivery_s']:.1f} s, "
                f"max lag {d['lag_max_ms']:.1f} ms (busy {d['busy_max_ms']:.1f} ms, "
                f"{d['busy_over_2ms']} busy > 2 ms, longest collection "
                f"{d['gc_longest_cpu_ms']:.1f} ms); idle max lag {i['lag_max_ms']:.1f} ms"
            )
    rows, sync_rows = runs["async"], runs["sync"]
    out: dict[str, Any] = {"spans": plan.lag_spans, "rows": rows, "sync_rows": sync_rows}
    for phase in ("delivering", "idle"):
        for key in rows[0][phase]:
            out[f"{phase}_{key}"] = stats([float(r[phase][key]) for r in rows])
            out[f"sync_{phase}_{key}"] = stats([float(r[phase][key]) for r in sync_rows])
    out["delivery_s"] = stats([r["delivery_s"] for r in rows])
    out["sync_delivery_s"] = stats([r["delivery_s"] for r in sync_rows])
    out["sync_queued_at_flush"] = stats([float(r["queued_at_flush"]) for r in sync_rows])
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
            *own_thread_row_line(a),
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
            *own_thread_ratio_lines(a),
            "",
            "Target (issue 17): ours, caller and engine together, at most half of "
            "OpenTelemetry's (a ratio of 2× or more in the second row).",
            *own_thread_note(a),
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
        sync = "sync_delivering_ticks" in g

        def row(name: str, key: str, digits: int, unit: str = "") -> list[str]:
            cells = [g.get(f"delivering_{key}"), g.get(f"idle_{key}")]
            if sync:
                cells.insert(1, g.get(f"sync_delivering_{key}"))
            if all(c is None for c in cells):
                return []  # not measured in older results
            text = " | ".join("–" if c is None else fmt(c, digits, unit) for c in cells)
            return [f"| {name} | {text} |"]

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
            *own_thread_lag_text(g),
            "| | delivering | idle loop |"
            if not sync
            else "| | delivering, engine on the "
            "agent's loop (PrefactorCoreClient) | delivering, engine on its own thread "
            "(SyncPrefactorCoreClient) | idle loop |",
            "|---|---|---|" if not sync else "|---|---|---|---|",
            *row("ticks", "ticks", 0),
            *row("longest lag", "lag_max_ms", 2, " ms"),
            *row("lag, 99.9th percentile", "lag_p999_ms", 2, " ms"),
            *row("ticks later than 2 ms", "lags_over_2ms", 0),
            *row("longest busy stretch", "busy_max_ms", 2, " ms"),
            *row("busy stretches over 2 ms", "busy_over_2ms", 0),
            *row("longest garbage collection (CPU)", "gc_longest_cpu_ms", 2, " ms"),
            *row("full (generation 2) collections", "gc_full_collections", 0),
            "",
            "Target (issue 17): no stall over 2 ms.",
        ]
    return lines


def own_thread_row_line(a: dict[str, Any]) -> list[str]:
    """Section 6's row for ``SyncPrefactorCoreClient`` (absent in older results)."""
    if "sync_caller_cpu_us" not in a:
        return []
    return [
        f"| ours, engine on its own thread (SyncPrefactorCoreClient) | "
        f"{fmt(a['sync_caller_cpu_us'], 2)} | {fmt(a['sync_engine_cpu_us'], 2)} | "
        f"{fmt(a['sync_thread_cpu_us'], 2)} | {fmt(a['sync_other_threads_cpu_us'], 2)} |"
    ]


def own_thread_ratio_lines(a: dict[str, Any]) -> list[str]:
    if "sync_caller_cpu_us" not in a:
        return []
    return [
        f"| OTel agent's thread / ours with the engine on its own thread | "
        f"{fmt(a['otel_thread_over_sync_thread'], 2, '×')} |",
        f"| OTel process / ours with the engine on its own thread | "
        f"{fmt(a['otel_process_over_sync_process'], 2, '×')} |",
        f"| ours, engine on the agent's loop / on its own thread (agent's thread) | "
        f"{fmt(a['ours_thread_over_sync_thread'], 2, '×')} |",
    ]


def own_thread_note(a: dict[str, Any]) -> list[str]:
    if "sync_caller_cpu_us" not in a:
        return []
    return [
        "",
        "The engine on its own thread: `SyncPrefactorCoreClient` used from the same async "
        "loop (`with instance.span(...)`, plain `start`/`complete`; `flush` awaited through "
        "`asyncio.to_thread`); its engine (queue, dispatcher, bodies, HTTP) runs on a thread "
        "of its own, so the agent's thread pays its caller path and the GIL hand-overs, and "
        "the engine's CPU is in the last column. Process CPU per span: "
        f"{fmt(a['sync_process_cpu_us'], 2)} µs, against {fmt(a['ours_process_cpu_us'], 2)} "
        "µs with the engine on the agent's loop; delivery "
        f"{fmt(a['sync_spans_per_s'], 0)} spans/s stored, against "
        f"{fmt(a['ours_spans_per_s'], 0)} (the same runs).",
    ]


def own_thread_lag_text(g: dict[str, Any]) -> list[str]:
    if "sync_delivering_ticks" not in g:
        return []
    return [
        "With the engine on its own thread (`SyncPrefactorCoreClient` used from the async "
        "agent, `flush` awaited through `asyncio.to_thread`), delivery starts while the "
        "spans are recorded: "
        f"{fmt(g['sync_queued_at_flush'], 0)} of {2 * g['spans']:,} operations were still "
        f"queued when the ticker started ({fmt(g['sync_delivery_s'], 1, ' s')} to deliver "
        "them). Its loop thread is nearly idle, so its lag is the wait for the GIL (the "
        "engine's thread holds it for up to the switch interval, 5 ms, or a whole C call), "
        "not its own busy time.",
        "",
    ]
