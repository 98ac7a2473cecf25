"""The web viewer with real data, in headless Chromium: big runs and many runs.

``python -m benchmarks.viewer [--quick] [--before-src DIR]`` builds one SQLite file with
a run of 10,000 spans, a run of 100,000 spans (nested, 2% failed, 1 KB payloads, every
fourth span an LLM call) and 10,000 small runs, through the bulk API. Then it serves the
file with ``prefactor serve`` (this checkout's code, and with ``--before-src`` an older
``prefactor_server`` source tree put first on ``PYTHONPATH``) and measures in Debian's
Chromium through Playwright:

* the run pages: time to the first screen, bytes over the wire, DOM nodes, JS heap;
* selecting a deep span (by its URL, and by searching for it on the loaded page);
* the API's latency (``GET /api/v1/ping``) while a viewer loads the 100,000-span run;
* the run list: first page, and every one of the 10,000 runs by following *Next*.

Results go to ``benchmarks/results/viewer.json`` and ``viewer.md``; screenshots to
``artifacts/``. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from prefactor_server.demo.synthetic import make_big_run, make_many_runs
from prefactor_server.testing import LocalServer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ARTIFACTS = ROOT / "artifacts"
TOKEN = "viewer-bench-token-1"
CHROMIUM = "/usr/bin/chromium"
_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-precise-memory-info"]  # fmt: skip


def log(message: str) -> None:
    print(f"[viewer-bench] {message}", file=sys.stderr, flush=True)


def build_data(db: Path, big: list[int], runs: int) -> dict[str, Any]:
    """Write the runs through the bulk API of an in-process server on ``db``."""

    async def main() -> dict[str, Any]:
        server = LocalServer(db, token=TOKEN)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=server.transport, base_url="http://bench", headers=headers
        ) as client:
            made: dict[str, Any] = {"big": {}}
            for spans in big:
                started = time.perf_counter()
                made["big"][str(spans)] = await make_big_run(client, spans=spans, seed=spans)
                log(f"run of {spans} spans written in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            made["runs"] = await make_many_runs(client, runs=runs, seed=1)
            log(f"{runs} runs written in {time.perf_counter() - started:.1f} s")
        await server.aclose()
        return made

    return asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(db: Path, src: Path | None) -> Iterator[str]:
    """``prefactor serve`` on ``db`` in a subprocess (``src`` first on the path if given)."""
    port = _free_port()
    env = {**os.environ, "PREFACTOR_API_TOKEN": TOKEN}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    code = "from prefactor_server.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--db", str(db), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/api/v1/ping", headers={"Authorization": f"Bearer {TOKEN}"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


class Meter:
    """Bytes received (CDP Network events) and memory/DOM metrics of one page."""

    def __init__(self, page: Page) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.bytes = 0
        self.cdp.send("Network.enable")
        self.cdp.send("Performance.enable")
        self.cdp.on("Network.loadingFinished", self._finished)

    def _finished(self, event: dict[str, Any]) -> None:
        self.bytes += int(event.get("encodedDataLength", 0))

    def metrics(self) -> dict[str, float]:
        found = self.cdp.send("Performance.getMetrics")["metrics"]
        return {m["name"]: m["value"] for m in found}


def renderer_rss_mb() -> float:
    """The largest resident size of a Chromium renderer started by this process (the page)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    largest = 0
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            status = (Path("/proc") / str(pid) / "status").read_text()
        except OSError:
            continue
        if b"--type=renderer" in cmdline:
            rss = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "")
            largest = max(largest, int(rss.split()[1]) if rss else 0)
    return round(largest / 1024, 1)


def login(page: Page, url: str) -> None:
    page.goto(url + "/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def ready(page: Page, new_viewer: bool, timeout_ms: float) -> None:
    if new_viewer:
        page.wait_for_selector("#run-view[data-ready]", state="attached", timeout=timeout_ms)
        page.wait_for_function("document.querySelectorAll('#rows .row').length > 0")


def measure_run(page: Page, url: str, run_id: str, new_viewer: bool, shot: str) -> dict[str, Any]:
    """Open a run page cold and measure it; then select a deep span."""
    meter = Meter(page)
    page.context.clear_cookies()
    login(page, url)
    meter.bytes = 0
    started = time.perf_counter()
    page.goto(f"{url}/runs/{run_id}", wait_until="load", timeout=600_000)
    ready(page, new_viewer, 600_000)
    first = time.perf_counter() - started
    if new_viewer:  # the rest of the tree arrives in pages after the first screen
        page.wait_for_selector("#run-view[data-complete]", state="attached", timeout=600_000)
    whole = time.perf_counter() - started
    page.wait_for_timeout(300)  # let late requests finish before counting bytes
    data = meter.metrics()
    result: dict[str, Any] = {
        "first_screen_s": round(first, 3),
        "whole_tree_s": round(whole, 3),
        "bytes": meter.bytes,
        "dom_nodes": page.evaluate("document.getElementsByTagName('*').length"),
        "js_heap_mb": round(data.get("JSHeapUsedSize", 0) / 2**20, 1),
        "renderer_rss_mb": renderer_rss_mb(),
    }
    page.screenshot(path=str(ARTIFACTS / shot))
    started = time.perf_counter()
    page.reload(wait_until="load", timeout=600_000)  # a second viewer: the tree is cached
    ready(page, new_viewer, 600_000)
    result["first_screen_again_s"] = round(time.perf_counter() - started, 3)
    if new_viewer:
        page.wait_for_selector("#run-view[data-complete]", state="attached", timeout=600_000)
    spans = int(run_id.split("-")[2])
    deep = f"{run_id}-s{spans - 1}"
    if new_viewer:
        started = time.perf_counter()
        page.fill("#tree-search", deep)
        page.wait_for_function(
            "document.getElementById('tree-status').textContent.includes('matching')"
        )
        page.press("#tree-search", "Enter")
        page.wait_for_selector(f"#detail :text('{deep}')")
        result["select_deep_loaded_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        page.goto(f"{url}/runs/{run_id}?span={deep}")
        page.wait_for_selector(f"#detail :text('{deep}')", timeout=600_000)
        result["open_deep_by_url_s"] = round(time.perf_counter() - started, 3)
    meter.cdp.detach()
    return result


def api_latency_during(page: Page, url: str, run_id: str, new_viewer: bool) -> dict[str, Any]:
    """Ping the API every 20 ms while a viewer loads ``run_id``; the pings' latencies."""
    latencies: list[float] = []
    stop = threading.Event()

    def pinger() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get(url + "/api/v1/ping")
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)

    thread = threading.Thread(target=pinger)
    thread.start()
    try:
        page.goto(f"{url}/runs/{run_id}", wait_until="load", timeout=600_000)
        ready(page, new_viewer, 600_000)
        if new_viewer:
            page.wait_for_selector("#run-view[data-complete]", state="attached", timeout=600_000)
    finally:
        stop.set()
        thread.join()
    return {
        "pings": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "max_ms": round(max(latencies), 1),
    }


def measure_list(page: Page, url: str, runs: list[str], new_viewer: bool) -> dict[str, Any]:
    """The run list: the first page in the browser; then every run by following Next."""
    meter = Meter(page)
    meter.bytes = 0
    started = time.perf_counter()
    page.goto(url + "/", wait_until="load")
    result: dict[str, Any] = {
        "first_page_s": round(time.perf_counter() - started, 3),
        "first_page_bytes": meter.bytes,
        "first_page_rows": page.locator("tr[data-run]").count(),
    }
    page.screenshot(
        path=str(ARTIFACTS / ("viewer-runs-10k.png" if new_viewer else "before-runs.png"))
    )
    meter.cdp.detach()
    wanted = set(runs)
    seen: set[str] = set()
    target: str | None = (
        "/?agent=synthetic-many" if new_viewer else "/?agent=synthetic-many&status="
    )
    times: list[float] = []
    with httpx.Client(base_url=url, cookies={"prefactor_token": TOKEN}) as client:
        while target is not None:
            started = time.perf_counter()
            html = client.get(target).text
            times.append(time.perf_counter() - started)
            seen.update(re.findall(r'data-run="([^"]+)"', html))
            found = re.search(r'<a rel="next" href="([^"]+)"', html)
            target = found.group(1).replace("&amp;", "&") if found else None
    result.update(
        {
            "pages_followed": len(times),
            "page_p50_ms": round(statistics.median(times) * 1000, 1),
            "page_max_ms": round(max(times) * 1000, 1),
            "reachable_runs": len(seen & wanted),
            "of_runs": len(wanted),
        }
    )
    return result


def measure(url: str, data: dict[str, Any], new_viewer: bool, skip_big: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = "viewer" if new_viewer else "before"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            for spans, run_id in data["big"].items():
                if skip_big and int(spans) > 10_000:
                    out[f"run_{spans}"] = {"skipped": "the old page does not finish in time"}
                    continue
                log(f"{prefix}: run of {spans} spans")
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                page.set_default_timeout(600_000)
                out[f"run_{spans}"] = measure_run(
                    page, url, run_id, new_viewer, f"{prefix}-run-{spans}.png"
                )
                log(f"{prefix}: {out[f'run_{spans}']}")
                out[f"api_while_loading_{spans}"] = api_latency_during(
                    page, url, run_id, new_viewer
                )
                context.close()
            log(f"{prefix}: run list")
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            login(page, url)
            out["run_list"] = measure_list(page, url, data["runs"], new_viewer)
            context.close()
        finally:
            browser.close()
    return out


def report(results: dict[str, Any]) -> str:
    rows: list[str] = []
    after, before = results["after"], results.get("before", {})

    def cell(side: dict[str, Any], key: str, field: str, unit: str = "") -> str:
        value = side.get(key, {}).get(field)
        if value is None:
            return "–"
        if field == "bytes" or field.endswith("_bytes"):
            return f"{value / 2**20:.2f} MB" if value >= 2**20 else f"{value / 1024:.0f} KB"
        return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"

    def row(name: str, key: str, field: str, unit: str = "") -> None:
        rows.append(
            f"| {name} | {cell(before, key, field, unit)} | {cell(after, key, field, unit)} |"
        )

    for key, label in (("run_10000", "10,000-span run"), ("run_100000", "100,000-span run")):
        for field, name, unit in (
            ("first_screen_s", "first screen", " s"),
            ("whole_tree_s", "whole tree loaded", " s"),
            ("first_screen_again_s", "first screen, viewed again", " s"),
            ("bytes", "transferred", ""),
            ("dom_nodes", "DOM nodes", ""),
            ("js_heap_mb", "JS heap", " MB"),
            ("renderer_rss_mb", "page's renderer memory (RSS)", " MB"),
            ("select_deep_loaded_s", "find + select the deepest span", " s"),
            ("open_deep_by_url_s", "open the deepest span by URL", " s"),
        ):
            row(f"{label}: {name}", key, field, unit)
    for key in [k for k in after if k.startswith("api_while_loading")]:
        spans = f"{int(key.rsplit('_', 1)[1]):,}"
        row(f"API ping p50 while the {spans}-span run loads", key, "p50_ms", " ms")
        row(f"API ping max while the {spans}-span run loads", key, "max_ms", " ms")
    for field, name, unit in (
        ("first_page_s", "run list: first page", " s"),
        ("first_page_bytes", "run list: first page transferred", ""),
        ("page_p50_ms", "run list: a page (p50, following Next)", " ms"),
        ("reachable_runs", "run list: runs reachable of 10,000", ""),
    ):
        row(name, "run_list", field, unit)
    return "\n".join(["| measure | before | after |", "|---|---|---|", *rows])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000/5,000 spans, 500 runs")
    parser.add_argument("--before-src", type=Path, help="an older prefactor-server src dir")
    parser.add_argument("--db", type=Path, help="reuse (or create) this database file")
    parser.add_argument(
        "--reuse-before", action="store_true", help="keep the 'before' numbers of the last run"
    )
    args = parser.parse_args(argv)
    big, runs = ([1000, 5000], 500) if args.quick else ([10_000, 100_000], 10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "viewer.db"
        meta = db.with_suffix(".json")
        if meta.exists():
            data = json.loads(meta.read_text())
        else:
            data = build_data(db, big, runs)
            meta.write_text(json.dumps(data))
        results: dict[str, Any] = {"spans": big, "runs": runs}
        with serve(db, None) as url:
            results["after"] = measure(url, data, True, skip_big=False)
        name = "viewer-quick" if args.quick else "viewer"
        if args.reuse_before and (RESULTS / f"{name}.json").exists():
            last = json.loads((RESULTS / f"{name}.json").read_text())
            results["before"] = last["before"]
        elif args.before_src is not None:
            with serve(db, args.before_src) as url:
                results["before"] = measure(url, data, False, skip_big=True)
    results["load_average"] = os.getloadavg()
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
