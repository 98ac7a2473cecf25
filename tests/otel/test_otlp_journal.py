"""SQLite's OTLP journal: an export is answered once its body is committed, its spans are
stored right after; reads wait for them, and what is left in the journal (a stop, a
failed store) is stored at the next start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
from tests.otel.support import otlp_json, otlp_protobuf, record_trace

from prefactor_server.app import create_app
from prefactor_server.domain.accounts import create_account, create_token
from prefactor_server.settings import Settings
from prefactor_server.storage.base import WriteSession
from prefactor_server.storage.journal import Journaled, JournalSession
from prefactor_server.storage.sqlite import SqliteStorage

T = TypeVar("T")
TOKEN = "otel-journal-token-1"
PROTOBUF = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}


class CountingStorage(SqliteStorage):
    """SQLite storage that can hold (``gated``) or fail (``failing``) its writes from the
    ``from_write``-th on (1-based), and counts them."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes = 0
        self.stores: list[int] = []  # the journal ids of the stores, in order
        self.from_write = 0
        self.failing = 0
        self.gate = asyncio.Event()
        self.gated = asyncio.Event()

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        self.writes += 1
        if hasattr(fn, "journal_id"):
            self.stores.append(fn.journal_id)
        if self.from_write and self.writes >= self.from_write:
            if self.failing:
                self.failing -= 1
                raise OSError("disk full")
            if not self.gate.is_set():
                self.gated.set()
                await self.gate.wait()
        return await super().write(fn)


def _journal(storage: SqliteStorage) -> list[Journaled]:
    return storage.write_sync(lambda session: cast(JournalSession, session).journaled(0, 100))


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def _span_count(http: httpx.AsyncClient) -> int:
    response = await http.get("/api/v1/agent_spans", params={"pagination[page_size]": "1"})
    assert response.status_code == 200, response.text
    count: int = response.json()["pagination"]["item_count"]
    return count


def _settings(path: Path) -> Settings:
    return Settings(db_path=path, api_token=TOKEN)


async def test_answered_before_stored_and_a_read_waits_for_the_store(tmp_path: Path) -> None:
    """The answer comes once the export is journaled, while its store is held; a read that
    arrives meanwhile waits, and then sees every span; the journal is empty after."""
    storage = CountingStorage(tmp_path / "prefactor.db")
    app = create_app(_settings(tmp_path / "prefactor.db"), storage=storage)
    journal = app.state.otlp_journal
    trace = record_trace()
    storage.from_write = storage.writes + 2  # the journal write passes, the store waits
    order: list[str] = []
    async with asyncio.timeout(30), _client(app) as http:
        answer = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF)
        assert answer.status_code == 200
        await storage.gated.wait()  # the spans are being stored, not stored yet
        assert [entry.id for entry in _journal(storage)] == [1]
        account = app.state.bootstrap.account.id
        assert journal.behind(account)
        # A health check reads no spans, and another account's reads wait for none of
        # this account's exports: both answer while the store is held.
        assert (await http.get("/api/v1/ping")).status_code == 200
        other = storage.write_sync(
            lambda session: create_token(session, create_account(session, "other"), "t")[1]
        )
        listed = await http.get("/api/v1/agent_spans", headers={"Authorization": f"Bearer {other}"})
        assert listed.status_code == 200
        assert listed.json()["pagination"]["item_count"] == 0

        async def read() -> int:
            count = await _span_count(http)
            order.append("read")
            return count

        reading = asyncio.create_task(read())
        # Yields to the event loop (no timed wait) until the read is parked in the wait.
        while not journal.reads_waiting:  # noqa: ASYNC110
            await asyncio.sleep(0)
        assert not reading.done()
        order.append("released")
        storage.gate.set()
        assert await reading == len(trace)
    assert order == ["released", "read"]
    assert _journal(storage) == []
    assert journal.stored == len(trace)
    assert journal.failures == 0
    assert app.state.otlp_pending.spans == 0
    storage.close()


async def test_an_export_left_in_the_journal_is_stored_at_the_next_start(
    tmp_path: Path,
) -> None:
    """An export journaled but never stored (the process stopped) is stored when the
    server starts again, before it answers anything; storing it once more (a second
    start before the entry was removed) stores nothing twice."""
    path = tmp_path / "prefactor.db"
    trace = record_trace()
    first = create_app(_settings(path))
    storage: SqliteStorage = first.state.storage
    account = first.state.bootstrap.account.id

    def keep(body: bytes, media: str) -> Callable[[WriteSession], int]:
        return lambda session: cast(JournalSession, session).journal_export(
            account, media, body, "2026-12-02T00:00:00.000000Z"
        )

    storage.write_sync(keep(otlp_protobuf(trace), "application/x-protobuf"))
    storage.write_sync(keep(otlp_json(trace), "application/json"))  # the same spans again
    storage.close()

    second = create_app(_settings(path))
    restarted: SqliteStorage = second.state.storage
    assert _journal(restarted) == []
    async with asyncio.timeout(30), _client(second) as http:
        assert not second.state.otlp_journal.behind(second.state.bootstrap.account.id)
        assert await _span_count(http) == len(trace)
        instances = (await http.get("/api/v1/agent_instance")).json()["summaries"]
    assert len(instances) == 1
    assert instances[0]["status"] == "complete"
    restarted.close()


async def test_a_store_that_fails_once_is_tried_again_and_reads_wait_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store of an answered export fails once (a full disk that clears): it is
    logged and tried again, and a read that waits for it sees every span."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    journal = app.state.otlp_journal
    journal.retry_delays = (0.0,)
    trace = record_trace()
    storage.from_write, storage.failing = storage.writes + 2, 1
    storage.gate.set()
    async with asyncio.timeout(30), _client(app) as http:
        with caplog.at_level(logging.WARNING, logger="prefactor_server.api.otlp_journal"):
            answer = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF)
            assert answer.status_code == 200
            assert await _span_count(http) == len(trace)
        assert journal.retries == 1
        assert journal.failures == 0
        assert "disk full" in caplog.text
    assert _journal(storage) == []
    assert app.state.otlp_pending.spans == 0
    storage.close()


async def test_a_store_that_keeps_failing_is_logged_counted_and_stored_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every attempt at storing an answered export fails: it is given up (logged and
    counted), its spans stop counting as pending, the entry stays in the journal, and
    the next start stores it."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    journal = app.state.otlp_journal
    journal.retry_delays = (0.0, 0.0)
    trace = record_trace()
    storage.from_write, storage.failing = storage.writes + 2, 3
    async with asyncio.timeout(30), _client(app) as http:
        with caplog.at_level(logging.ERROR, logger="prefactor_server.api.otlp_journal"):
            answer = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF)
            assert answer.status_code == 200
            await journal.caught_up()
        assert journal.retries == 2
        assert journal.failures == 1
        assert journal.stored == 0
        assert app.state.otlp_pending.spans == 0
        assert "could not be stored" in caplog.text
        assert await _span_count(http) == 0
    assert len(_journal(storage)) == 1
    storage.close()

    again = create_app(_settings(path))
    async with asyncio.timeout(30), _client(again) as http:
        assert await _span_count(http) == len(trace)
    assert _journal(again.state.storage) == []
    again.state.storage.close()


async def test_a_journal_row_that_cannot_be_decoded_is_dropped_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row that can never be stored (its body is not an export, or its account is
    gone) is logged and removed at start; the rows after it are stored, and the server
    starts."""
    path = tmp_path / "prefactor.db"
    trace = record_trace()
    first = create_app(_settings(path))
    storage: SqliteStorage = first.state.storage
    account = first.state.bootstrap.account.id
    rows = [
        (account, "application/x-protobuf", b"\xff not protobuf"),
        (account, "application/json", b'{"resourceSpans": 5}'),
        ("no-such-account", "application/x-protobuf", otlp_protobuf(trace)),
        (account, "application/x-protobuf", otlp_protobuf(trace)),
    ]
    for owner, media, body in rows:
        storage.write_sync(
            lambda session, o=owner, m=media, b=body: cast(JournalSession, session).journal_export(
                o, m, b, "2026-12-02T00:00:00.000000Z"
            )
        )
    storage.close()
    with caplog.at_level(logging.ERROR, logger="prefactor_server.api.otlp_journal"):
        second = create_app(_settings(path))
    assert caplog.text.count("dropped from the journal") == 3
    assert "no-such-account" in caplog.text
    async with asyncio.timeout(30), _client(second) as http:
        assert await _span_count(http) == len(trace)
    assert _journal(second.state.storage) == []
    second.state.storage.close()


async def test_a_failed_journal_write_answers_an_error_and_keeps_nothing(
    tmp_path: Path,
) -> None:
    """When the journal write itself fails the exporter gets an error (it retries), and
    nothing is journaled or counted as pending."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    storage.from_write, storage.failing = storage.writes + 1, 1
    async with (
        asyncio.timeout(30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://127.0.0.1",
        ) as http,
    ):
        answer = await http.post(
            "/v1/traces", content=otlp_protobuf(record_trace()), headers=PROTOBUF
        )
        assert answer.status_code == 500
    assert _journal(storage) == []
    assert app.state.otlp_pending.spans == 0
    assert not app.state.otlp_journal.behind(app.state.bootstrap.account.id)
    storage.close()


async def test_exports_are_stored_in_the_order_they_were_answered(tmp_path: Path) -> None:
    """Exports answered while the first one's store is held are stored after it, in
    order: the journal empties front first."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    traces = [record_trace() for _ in range(3)]
    storage.from_write = storage.writes + 2  # the first store waits; journal writes too
    async with asyncio.timeout(30), _client(app) as http:
        first = await http.post("/v1/traces", content=otlp_protobuf(traces[0]), headers=PROTOBUF)
        assert first.status_code == 200
        await storage.gated.wait()
        later = [
            asyncio.create_task(
                http.post("/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF)
            )
            for trace in traces[1:]
        ]
        storage.gate.set()
        assert [(await task).status_code for task in later] == [200, 200]
        assert await _span_count(http) == sum(len(trace) for trace in traces)
    assert storage.stores == [1, 2, 3]
    assert _journal(storage) == []
    storage.close()


async def test_an_export_whose_event_loop_stopped_mid_store_is_stored_by_the_next(
    tmp_path: Path,
) -> None:
    """The event loop that answered an export stops while its spans are being stored (a
    server thread shut down, an embedder's loop closed): the export stays queued, and
    waiting for it on another loop stores it there."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    journal = app.state.otlp_journal
    account = app.state.bootstrap.account.id
    trace = record_trace()
    storage.from_write = storage.writes + 2  # the journal write passes, the store waits

    def answer_then_stop() -> None:
        async def main() -> None:
            async with _client(app) as http:
                answer = await http.post(
                    "/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF
                )
                assert answer.status_code == 200
                await storage.gated.wait()

        asyncio.run(main())  # ends its loop: the store in progress is cancelled

    async with asyncio.timeout(30):
        await asyncio.to_thread(answer_then_stop)
        assert journal.behind(account)
        assert len(_journal(storage)) == 1
        storage.gate.set()
        await journal.caught_up()
        async with _client(app) as http:
            assert await _span_count(http) == len(trace)
    assert _journal(storage) == []
    assert app.state.otlp_pending.spans == 0
    storage.close()


async def test_a_read_on_another_event_loop_is_woken_when_the_export_is_stored(
    tmp_path: Path,
) -> None:
    """A read served by another event loop (an embedder's thread) waits for an export
    this loop answered, and is woken when this loop stores it."""
    path = tmp_path / "prefactor.db"
    storage = CountingStorage(path)
    app = create_app(_settings(path), storage=storage)
    journal = app.state.otlp_journal
    trace = record_trace()
    storage.from_write = storage.writes + 2  # the journal write passes, the store waits

    def read_elsewhere() -> int:
        async def main() -> int:
            async with _client(app) as http:
                return await _span_count(http)

        return asyncio.run(main())

    async with asyncio.timeout(30), _client(app) as http:
        answer = await http.post("/v1/traces", content=otlp_protobuf(trace), headers=PROTOBUF)
        assert answer.status_code == 200
        await storage.gated.wait()
        reading = asyncio.ensure_future(asyncio.to_thread(read_elsewhere))
        # Yields to the event loop (no timed wait) until the other loop's read is parked.
        while not journal.reads_waiting:  # noqa: ASYNC110
            await asyncio.sleep(0)
        storage.gate.set()
        assert await reading == len(trace)
    storage.close()
