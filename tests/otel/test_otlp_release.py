"""An export's decoded spans and rows are freed once its answer is sent: on the event
loop, after the last byte of the answer went out: neither before it is sent nor on the
writer thread. Both ways of storing: through the OTLP journal (SQLite's), where the rows
are made and stored after the answer, and storing before answering (PostgreSQL's)."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send
from tests.otel.support import otlp_protobuf, record_trace

from prefactor_server.api import lean, otlp, otlp_journal
from prefactor_server.domain.otlp_ingest import PreparedTrace
from prefactor_server.storage.sqlite import SqliteStorage
from prefactor_server.testing import LocalServer

TOKEN = "otlp-release-token-1"


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "stored-first"])
@pytest.mark.parametrize("route", ["lean", "fastapi"])
async def test_rows_are_freed_on_the_loop_once_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str, journal: bool
) -> None:
    if route == "fastapi":
        monkeypatch.delitem(lean.ROUTES, ("POST", otlp.PATH))
    monkeypatch.setattr(SqliteStorage, "keeps_otlp_journal", journal)
    freed: list[tuple[str, bool]] = []  # (thread, whether the answer was sent)
    answered = threading.Event()
    prepare = otlp.prepare

    def watched(export: Any) -> list[PreparedTrace]:
        traces = prepare(export)
        for trace in traces:
            weakref.finalize(
                trace, lambda: freed.append((threading.current_thread().name, answered.is_set()))
            )
        return traces

    monkeypatch.setattr(otlp_journal if journal else otlp, "prepare", watched)
    server = LocalServer(tmp_path / "prefactor.db", token=TOKEN)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        await server.app(scope, receive, sending)

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=server.api_url
        ) as client:
            response = await client.post(
                otlp.PATH,
                content=otlp_protobuf(record_trace()),
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/x-protobuf",
                },
            )
            assert response.status_code == 200
            if journal:
                await server.app.state.otlp_journal.caught_up()
            assert freed == [(threading.current_thread().name, True)]
    finally:
        server.close()
