"""POST /v1/traces answers only once an export is committed (its spans, or on SQLite its
body in the OTLP journal), and pushes back with 503 and Retry-After when too many spans
wait to be stored (nothing is dropped). Each test runs with the journal and without it
(storing before answering, as on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from tests.otel.support import otlp_protobuf, record_trace

from prefactor_server.app import create_app
from prefactor_server.settings import Settings
from prefactor_server.storage.base import WriteSession
from prefactor_server.storage.sqlite import SqliteStorage

T = TypeVar("T")
TOKEN = "otel-backpressure-token"


@pytest.fixture(autouse=True, params=[True, False], ids=["journal", "stored-first"])
def journal(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether SQLite keeps the OTLP journal in this test."""
    kept: bool = request.param
    monkeypatch.setattr(SqliteStorage, "keeps_otlp_journal", kept)
    return kept


class GatedStorage(SqliteStorage):
    """SQLite storage whose writes wait at a gate while ``gated`` (a slow disk, on cue)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gated = False
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        if self.gated:
            self.waiting.set()
            await self.gate.wait()
        return await super().write(fn)


async def test_overload_gets_503_with_retry_after_and_loses_nothing(tmp_path: Path) -> None:
    """While one export waits to be stored, another that would pass the pending-span cap
    is refused with 503 and Retry-After; retried later, both are stored."""
    storage = GatedStorage(tmp_path / "prefactor.db")
    settings = Settings(
        db_path=tmp_path / "prefactor.db", api_token=TOKEN, otlp_max_pending_spans=5
    )
    app = create_app(settings, storage=storage)
    first, second = record_trace(), record_trace()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    async with (
        asyncio.timeout(30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as http,
    ):
        storage.gated = True
        waiting = asyncio.create_task(
            http.post("/v1/traces", content=otlp_protobuf(first), headers=headers)
        )
        await storage.waiting.wait()
        assert not waiting.done()  # not answered before it is stored

        refused = await http.post("/v1/traces", content=otlp_protobuf(second), headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["code"] == "overloaded"

        storage.gate.set()
        assert (await waiting).status_code == 200
        retried = await http.post("/v1/traces", content=otlp_protobuf(second), headers=headers)
        assert retried.status_code == 200
        listed = await http.get(
            "/api/v1/agent_spans",
            headers={"Authorization": f"Bearer {TOKEN}"},
            params={"pagination[page_size]": "100"},
        )
    storage.close()
    assert listed.json()["pagination"]["item_count"] == len(first) + len(second)


class FailingOnceStorage(SqliteStorage):
    """SQLite storage whose first write fails (a full disk, once)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failures = 1

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        return await super().write(fn)


async def test_spans_of_a_failed_or_refused_export_stop_counting_as_pending(
    tmp_path: Path, journal: bool
) -> None:
    """An export whose store fails, one that is not OTLP, and one refused with 503 leave
    nothing counted as pending: the next export within the cap is stored, not refused."""
    storage = FailingOnceStorage(tmp_path / "prefactor.db")
    trace = record_trace()
    settings = Settings(
        db_path=tmp_path / "prefactor.db", api_token=TOKEN, otlp_max_pending_spans=len(trace)
    )
    app = create_app(settings, storage=storage)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    async with (
        asyncio.timeout(30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://127.0.0.1",
        ) as http,
    ):
        failed = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=headers)
        assert failed.status_code == 500
        garbage = await http.post("/v1/traces", content=b"\xff not protobuf", headers=headers)
        assert garbage.status_code == 400
        stored = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=headers)
        assert stored.status_code == 200
        if journal:
            await app.state.otlp_journal.caught_up()
        assert app.state.otlp_pending.spans == 0
    storage.close()
