"""A database the SQLite storage creates has 8 KiB pages; one made with another page size
keeps it and goes on storing and reading spans."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from prefactor_server.storage.sqlite.storage import PAGE_SIZE
from prefactor_server.testing import LocalServer

TOKEN = "page-size-token"
SCHEMA = {"external_identifier": "s1", "span_schemas": {"a": {}}}


def _page_size(db_path: Path) -> int:
    with closing(sqlite3.connect(db_path)) as db:
        size: int = db.execute("PRAGMA page_size").fetchone()[0]
    return size


async def _store_and_read(db_path: Path, span_id: str) -> list[str]:
    """Store one span through the API and return the ids of the spans of its instance."""
    server = LocalServer(db_path, token=TOKEN)
    try:
        async with server.client() as client:
            registered = await client.post(
                "/api/v1/agent_instance/register",
                json={
                    "agent_id": "agent-p",
                    "agent_version": {"name": "p", "external_identifier": "v1"},
                    "agent_schema_version": SCHEMA,
                },
            )
            instance = registered.json()["details"]["id"]
            item = {
                "_type": "agent_spans/create",
                "idempotency_key": f"c-{span_id}",
                "id": span_id,
                "agent_instance_id": instance,
                "schema_name": "a",
                "status": "complete",
                "payload": {"text": "x" * 3000},
            }
            stored = await client.post("/api/v1/bulk", json={"items": [item]})
            assert stored.status_code == 200, stored.text
            listed = await client.get("/api/v1/agent_spans", params={"agent_instance_id": instance})
            return [span["id"] for span in listed.json()["summaries"]]
    finally:
        server.close()


@pytest.mark.timeout(60)
async def test_a_new_database_has_the_storage_page_size(tmp_path: Path) -> None:
    db_path = tmp_path / "new.db"
    assert await _store_and_read(db_path, "span-new-1") == ["span-new-1"]
    assert PAGE_SIZE == 8192
    assert _page_size(db_path) == PAGE_SIZE


@pytest.mark.timeout(60)
async def test_an_existing_database_keeps_its_page_size(tmp_path: Path) -> None:
    db_path = tmp_path / "old.db"
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("CREATE TABLE made_before (x INTEGER)")  # the file exists, with 4 KiB pages
    assert await _store_and_read(db_path, "span-old-1") == ["span-old-1"]
    assert _page_size(db_path) == 4096
    # Opened again: the spans are still there and new ones are stored beside them.
    assert await _store_and_read(db_path, "span-old-2") == ["span-old-2"]  # a new instance
    with closing(sqlite3.connect(db_path)) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM agent_spans ORDER BY id")]
    assert ids == ["span-old-1", "span-old-2"]
