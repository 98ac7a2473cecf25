"""SQLite indexes spans by instance only (migration 0005 drops the account-wide indexes by
agent, status and schema name that every insert paid for): a database made before keeps
its spans, and the API's span list still filters, counts and pages by those columns."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_server.storage.sqlite import SqliteStorage, migrations
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


async def _store(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    """Store ``items`` in bulk, for one instance per agent named in them."""
    for agent in ("agent-x", "agent-y"):
        answer = await client.post("/api/v1/agent_instance/register", json=_register(agent))
        instance = answer.json()["details"]["id"]
        mine = [{**item, "agent_instance_id": instance} for item in items if item["agent"] == agent]
        stored = await client.post("/api/v1/bulk", json={"items": mine})
        assert stored.status_code == 200, stored.text
        assert all(out["status"] == "success" for out in stored.json()["outputs"].values())


async def _send(db_path: Path, items: list[dict[str, Any]] | None) -> list[str]:
    """Open a server on ``db_path`` (applying the migrations it lacks), store ``items`` when
    given (for one instance per agent named in them), and return the ids of the spans
    listed by agent, status and schema name: every page of 7, sorted by id, per column."""
    server = LocalServer(db_path, token=TOKEN)
    seen: list[str] = []
    try:
        async with server.client() as client:
            if items is not None:
                await _store(client, items)
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


async def _counts(db_path: Path, items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Open a server on ``db_path``, store ``items`` when given (instance per agent), and
    return per instance its answer's span counts and its spans listed by instance."""
    server = LocalServer(db_path, token=TOKEN)
    seen: dict[str, Any] = {}
    try:
        async with server.client() as client:
            if items is not None:
                await _store(client, items)
            instances = (await client.get("/api/v1/agent_instance")).json()["summaries"]
            for instance in instances:
                iid = instance["id"]
                details = (await client.get(f"/api/v1/agent_instance/{iid}")).json()["details"]
                params = {"agent_instance_id": iid, "pagination[page_size]": 100}
                listed = (await client.get("/api/v1/agent_spans", params=params)).json()
                ids = [span["id"] for span in listed["summaries"]]
                seen[ids[0].rsplit("-", 1)[0]] = (details["span_counts"], ids)
    finally:
        await server.aclose()
    return seen


async def test_one_index_by_instance_counts_and_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0007 folds the two span indexes by instance into one that holds the
    status: a database made before counts its runs' spans by status and lists them as
    before, and so does one made after."""
    db_path = tmp_path / "old.sqlite"
    items = [
        {"_type": "agent_spans/create", "idempotency_key": f"key-{agent}-{i:02d}",
         "id": f"{agent}-{i:02d}", "agent": agent, "schema_name": "ab"[i % 2],
         "status": ("complete", "failed", "active", "failed")[i % 4], "payload": {"i": i}}
        for agent, count in (("agent-x", 30), ("agent-y", 7))
        for i in range(count)
    ]  # fmt: skip
    assert MIGRATIONS[6].name == "0007_one_span_index_by_instance"
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:6])
    # (A database from before 0007 has no OTLP journal either: migration 0008 makes it.)
    monkeypatch.setattr(SqliteStorage, "keeps_otlp_journal", False)
    before = await _counts(db_path, items)
    monkeypatch.undo()
    assert "agent_spans_instance_status" in _indexes(db_path)
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    after = await _counts(db_path, None)
    assert "agent_spans_instance_status" not in _indexes(db_path)
    with closing(sqlite3.connect(db_path)) as db:
        columns = [row[2] for row in db.execute("PRAGMA index_info(agent_spans_instance)")]
    assert columns == ["account_id", "agent_instance_id", "id", "status"]
    expected = {
        agent: {status: sum(1 for item in items if item["agent"] == agent
                            and item["status"] == status)
                for status in ("pending", "active", "complete", "failed", "cancelled")}
        for agent in ("agent-x", "agent-y")
    }  # fmt: skip
    for counts in expected.values():
        counts.update(finished=counts["complete"] + counts["failed"], total=sum(counts.values()))
    assert expected["agent-x"] == {"pending": 0, "active": 7, "complete": 8, "failed": 15,
                                   "cancelled": 0, "finished": 23, "total": 30}  # fmt: skip
    fresh = await _counts(tmp_path / "new.sqlite", items)
    for found in (before, after, fresh):
        assert {agent: counts for agent, (counts, _) in found.items()} == expected
        assert {agent: ids for agent, (_, ids) in found.items()} == {
            agent: sorted(item["id"] for item in items if item["agent"] == agent)
            for agent in ("agent-x", "agent-y")
        }
