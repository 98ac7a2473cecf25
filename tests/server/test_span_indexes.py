"""SQLite indexes spans by instance only (migration 0005 drops the account-wide indexes by
agent, status and schema name that every insert paid for): a database made before keeps
its spans, and the API's span list still filters, counts and pages by those columns."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from prefactor_server.storage.sqlite import migrations
from prefactor_server.storage.sqlite.migrations import MIGRATIONS
from prefactor_server.testing import LocalServer

TOKEN = "span-index-token"
DROPPED = {"agent_spans_agent", "agent_spans_status", "agent_spans_schema"}


def _indexes(db_path: Path) -> set[str]:
    with closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {row[0] for row in rows}


def _register(agent: str) -> dict[str, Any]:
    return {
        "agent_id": agent,
        "agent_version": {"name": agent, "external_identifier": "v1"},
        "agent_schema_version": {"external_identifier": "s1", "span_schemas": {"a": {}, "b": {}}},
    }


async def _send(db_path: Path, items: list[dict[str, Any]] | None) -> list[str]:
    """Open a server on ``db_path`` (applying the migrations it lacks), store ``items`` when
    given (for one instance per agent named in them), and return the ids of the spans
    listed by agent, status and schema name: every page of 7, sorted by id, per column."""
    server = LocalServer(db_path, token=TOKEN)
    seen: list[str] = []
    try:
        async with server.client() as client:
            if items is not None:
                for agent in ("agent-x", "agent-y"):
                    answer = await client.post(
                        "/api/v1/agent_instance/register", json=_register(agent)
                    )
                    instance = answer.json()["details"]["id"]
                    mine = [
                        {**item, "agent_instance_id": instance}
                        for item in items
                        if item["agent"] == agent
                    ]
                    stored = await client.post("/api/v1/bulk", json={"items": mine})
                    assert stored.status_code == 200, stored.text
                    assert all(
                        out["status"] == "success" for out in stored.json()["outputs"].values()
                    )
            first = await client.get("/api/v1/agent_spans/agent-x-00")
            agent_id = first.json()["details"]["agent_id"]
            for column, value in (
                ("agent_id", agent_id),
                ("status", "failed"),
                ("schema_name", "b"),
            ):
                count = None
                for offset in range(0, 28, 7):
                    params = {column: value, "pagination[page_size]": 7,
                              "pagination[offset]": offset}  # fmt: skip
                    listed = (await client.get("/api/v1/agent_spans", params=params)).json()
                    assert count in (None, listed["pagination"]["item_count"])
                    count = listed["pagination"]["item_count"]
                    seen += [span["id"] for span in listed["summaries"]]
                seen.append(f"{column}: {count}")
    finally:
        await server.aclose()
    return seen


async def test_old_database_loses_the_indexes_and_lists_still_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans stored with the old indexes, then the migration: the same lists come back."""
    db_path = tmp_path / "old.sqlite"
    items = [
        {"_type": "agent_spans/create", "idempotency_key": f"key-{agent}-{i:02d}",
         "id": f"{agent}-{i:02d}", "agent": agent, "schema_name": "ab"[i % 2],
         "status": ("complete", "failed", "active")[i % 3], "payload": {"i": i}}
        for agent in ("agent-x", "agent-y")
        for i in range(30)
    ]  # fmt: skip
    assert MIGRATIONS[4].name == "0005_leaner_span_indexes"
    # Written by this code with 0005 held back (the code needs the other migrations).
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS[:4], *MIGRATIONS[5:]))
    before = await _send(db_path, items)
    assert _indexes(db_path) >= DROPPED
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    after = await _send(db_path, None)
    assert not DROPPED & _indexes(db_path)
    assert after == before
    x_failed = sorted(item["id"] for item in items if item["status"] == "failed")
    x_agent = sorted(item["id"] for item in items if item["agent"] == "agent-x")
    b_schema = sorted(item["id"] for item in items if item["schema_name"] == "b")
    assert after == [*x_agent[:28], "agent_id: 30", *x_failed, "status: 20", *b_schema[:28],
                     "schema_name: 30"]  # fmt: skip
