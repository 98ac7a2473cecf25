"""Fixtures for the browser tests: a real server with a demo run, and headless Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from prefactor_server.demo import DemoRun, run_demo
from prefactor_server.demo.synthetic import make_big_run, make_many_runs
from prefactor_server.testing import LocalServer

playwright_sync = pytest.importorskip("playwright.sync_api")

TOKEN = "viewer-test-token-123"
CHROMIUM = "/usr/bin/chromium"
# Screenshots the browser tests take (git-ignored; the committed ones in artifacts/ are
# made by benchmarks/viewer.py and are never overwritten by a test run).
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "browser-tests"
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


T = TypeVar("T")


class LoopThread:
    """An event loop in its own thread: Playwright's sync API keeps a loop running in the
    test's thread, so the server's async setup and teardown run over here instead."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="viewer-tests-loop")
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass(frozen=True)
class Served:
    """A running server (viewer at ``url``) and the demo run recorded in it."""

    url: str
    token: str
    run: DemoRun
    loop: LoopThread

    def client(self) -> httpx.AsyncClient:
        """An API client of the account (use inside :meth:`call`)."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, trust_env=False
        )

    def call(self, work: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` with an API client on the server's loop thread and return its result."""

        async def main() -> T:
            async with self.client() as client:
                return await work(client)

        return self.loop.call(main())


@pytest.fixture(name="served", scope="module")
def fixture_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Serve a fresh database with uvicorn on 127.0.0.1 and record one demo run in it.

    A small latency scale gives the timeline bars real widths in a fraction of a second.
    """
    db_path = tmp_path_factory.mktemp("viewer") / "viewer.db"
    loop = LoopThread()
    context = LocalServer.run(db_path, token=TOKEN)
    try:
        server = loop.call(context.__aenter__())
        try:
            run = loop.call(run_demo(server.api_url, TOKEN, seed=7, latency_scale=0.15))
            yield Served(server.api_url, TOKEN, run, loop)
        finally:
            loop.call(context.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(name="browser", scope="module")
def fixture_browser() -> Iterator[playwright_sync.Browser]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        # In CI a missing browser is a broken setup, not a reason to skip.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "chromium is not installed (.ci/system-deps installs it)"
        )
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="page")
def fixture_page(browser: playwright_sync.Browser) -> Iterator[playwright_sync.Page]:
    """A fresh page (own cookies) that fails the test on any request off 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    off_host: list[str] = []
    context.on(
        "request",
        lambda request: (
            None if request.url.startswith("http://127.0.0.1:") else off_host.append(request.url)
        ),
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
    assert off_host == [], f"the viewer fetched from elsewhere: {off_host}"


@pytest.fixture(name="artifacts")
def fixture_artifacts() -> Path:
    """The directory CI keeps as artifacts (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(name="big_run", scope="module")
def fixture_big_run(served: Served) -> str:
    """A finished run of 3,000 nested spans (some failed, some LLM calls) in the server."""
    return served.call(lambda client: make_big_run(client, spans=3000, seed=3, payload_bytes=256))


@pytest.fixture(name="many_runs", scope="module")
def fixture_many_runs(served: Served) -> list[str]:
    """130 small runs of one agent (``synthetic-many``), oldest first."""
    return served.call(lambda client: make_many_runs(client, runs=130, seed=5))
