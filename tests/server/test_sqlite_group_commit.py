"""SQLite's writer runs the writes queued behind a running one in one transaction (group
commit): each write is still atomic on its own, answered with its own result or error,
and a buffered span insert that collides re-runs only its own write."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from prefactor_server.storage.base import IdTaken, Record, WriteSession
from prefactor_server.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.timeout(60)


def _environment(name: str) -> Record:
    return {"account_id": "acc", "id": name, "name": name, "inserted_at": "2026-01-01T00:00:00Z"}


def _span(span_id: str, payload: dict[str, Any]) -> Record:
    return {
        "account_id": "acc", "id": span_id, "agent_instance_id": "inst", "agent_id": "agent",
        "parent_span_id": None, "orphaned": False, "schema_name": "step", "schema_title": "step",
        "status": "complete", "payload": payload, "result_payload": None, "summary": None,
        "started_at": None, "finished_at": None, "inserted_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


async def test_queued_writes_commit_together_each_atomic(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "group.db")
    try:
        await storage.write(lambda s: s.insert_span(_span("taken", {"v": 1})))
        entered, gate = threading.Event(), threading.Event()

        def blocker(session: WriteSession) -> str:
            entered.set()
            gate.wait(30)
            session.insert_environment(_environment("first"))
            return "first"

        def failing(session: WriteSession) -> str:
            session.insert_environment(_environment("failed"))
            raise ValueError("this write fails")

        def colliding(session: WriteSession) -> str:
            session.insert_span(_span("new-one", {"v": 2}))  # buffered, then undone
            session.insert_span(_span("taken", {"v": 3}))  # collides when flushed
            return "never"

        def good(name: str) -> Any:
            def write(session: WriteSession) -> str:
                session.insert_environment(_environment(name))
                session.insert_span(_span(f"span-{name}", {"n": name}))
                return name

            return write

        first = asyncio.ensure_future(storage.write(blocker))
        await asyncio.to_thread(entered.wait, 30)
        # Queued while the first runs (submitted here, synchronously): one group behind it.
        queued = [
            asyncio.wrap_future(storage._submit_write(fn))
            for fn in (good("second"), failing, colliding, good("third"))
        ]
        gate.set()
        assert await first == "first"
        results = await asyncio.gather(*queued, return_exceptions=True)
        assert results[0] == "second"
        assert isinstance(results[1], ValueError)
        assert isinstance(results[2], IdTaken)
        assert results[3] == "third"

        def read(session: Any) -> tuple[list[str], list[str], Any]:
            names = ["first", "second", "failed", "third"]
            environments = [n for n in names if session.get_environment("acc", n) is not None]
            spans = ["taken", "new-one", "span-second", "span-third"]
            found = [n for n in spans if session.get_span("acc", n) is not None]
            return environments, found, session.get_span("acc", "taken")["payload"]

        environments, spans, payload = await storage.read(read)
        assert environments == ["first", "second", "third"]
        assert spans == ["taken", "span-second", "span-third"]
        assert payload == {"v": 1}
    finally:
        storage.close()
