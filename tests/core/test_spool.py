"""The spool: operations survive the process, and are delivered once by the next one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from prefactor_core import Operation, OperationType, SpoolLockedError, SpoolQueue
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import LOSE_RESPONSE, PASS, TestTransport, spans_of


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM operations").fetchone()[0])


async def test_operations_are_written_then_removed_once_delivered(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """Queued operations are on disk until the server acknowledges them."""
    spool = tmp_path / "spool.db"
    gate = asyncio.Event()
    client = make_client(spool_path=spool, startup_timeout=0.0)
    client.test_transport.gate = gate  # type: ignore[attr-defined]
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    async with instance.span("agent:step") as span:
        await span.start({"n": 1})
    assert _rows(spool) == 3  # register, span create, span finish
    gate.set()
    assert await client.flush(timeout=10)
    assert _rows(spool) == 0
    await client.close()


async def test_a_new_process_delivers_what_the_last_one_left(
    make_client: ClientFactory, server: LocalServer, tmp_path: Path
) -> None:
    """What a client could not deliver is delivered, exactly once, by the next client."""
    spool = tmp_path / "spool.db"
    never = asyncio.Event()
    first = make_client(spool_path=spool, startup_timeout=0.0, close_timeout=0.1)
    first.test_transport.gate = never  # type: ignore[attr-defined]
    await first.initialize()
    instance = await first.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    ids = []
    for n in range(50):
        async with instance.span("agent:step") as span:
            await span.start({"n": n})
        ids.append(span.id)
    await instance.finish()
    await first.close()
    assert _rows(spool) == 1 + 1 + 100 + 1
    assert first.statistics().dropped == 0  # kept in the spool, not dropped

    second = make_client(spool_path=spool)
    async with second:
        assert await second.flush(timeout=10)
    assert _rows(spool) == 0
    stored = [row["id"] for row in await spans_of(server, instance.id)]
    assert sorted(stored) == sorted(ids)


async def test_lost_acknowledgements_do_not_duplicate(
    make_client: ClientFactory, server: LocalServer, tmp_path: Path
) -> None:
    """Operations the server stored but never acknowledged are replayed, not stored twice."""
    spool = tmp_path / "spool.db"

    def plan(request: httpx.Request, _index: int) -> str:
        return LOSE_RESPONSE if request.url.path == "/api/v1/bulk" else PASS

    transport = TestTransport(server.transport, plan=plan)
    first = make_client(transport=transport, spool_path=spool, close_timeout=0.2)
    await first.initialize()
    instance = await first.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    ids = []
    for n in range(10):
        async with instance.span("agent:step") as span:
            await span.start({"n": n})
        ids.append(span.id)
    async with asyncio.timeout(10):  # stored, though never acknowledged
        while True:
            transport.answered.clear()
            if len(await spans_of(server, instance.id)) == 10:
                break
            await transport.answered.wait()
    await first.close()
    assert _rows(spool) > 0

    async with make_client(spool_path=spool) as second:
        assert await second.flush(timeout=10)
    assert _rows(spool) == 0
    stored = [row["id"] for row in await spans_of(server, instance.id)]
    assert sorted(stored) == sorted(ids)


def test_a_spool_cannot_be_opened_twice(tmp_path: Path) -> None:
    """A second open of a live spool fails at once instead of sharing it."""
    first = SpoolQueue(tmp_path / "spool.db")
    with pytest.raises(SpoolLockedError):
        SpoolQueue(tmp_path / "spool.db")
    first.dispose()
    SpoolQueue(tmp_path / "spool.db").dispose()


async def test_operations_round_trip_through_the_file(tmp_path: Path) -> None:
    """An operation read back from the spool equals the one queued."""
    op = Operation(
        OperationType.CREATE_SPAN,
        {"instance_id": "i", "span_id": "s", "payload_json": '{"a":1}', "started_at": 1.5},
        1767225600.25,
        "c-s",
        {"no_merge": True},
    )
    queue = SpoolQueue(tmp_path / "spool.db")
    await queue.put(op)
    queue.dispose()
    reopened = SpoolQueue(tmp_path / "spool.db")
    assert reopened.recovered == 1
    recovered = await reopened.get()
    assert recovered == op.replace(metadata={**op.metadata, "recovered": True})
    reopened.ack([op])
    assert reopened.pending() == 0
    reopened.dispose()


async def test_operations_without_a_key_are_refused(tmp_path: Path) -> None:
    """The spool needs an idempotency key to recognise an operation later."""
    queue = SpoolQueue(tmp_path / "spool.db")
    with pytest.raises(ValueError, match="idempotency key"):
        await queue.put(Operation(OperationType.START_AGENT_INSTANCE, {"instance_id": "i"}, 1.0))
    assert queue.size() == 0
    queue.dispose()
