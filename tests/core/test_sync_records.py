"""Spans recorded off the engine's loop (the sync client's callers, worker threads of the
async client) hand the engine their record instead of a create operation (the engine
builds the create when it takes the record), and every operation is still accounted
for: stored, queued or dropped and counted, never twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from prefactor_core import (
    DeliveryStatistics,
    PrefactorCoreConfig,
    QueueConfig,
    SyncPrefactorCoreClient,
    trace,
)
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, make_registry
from .test_sync_client import TOKEN, config_for, free_port, spans


def down_config(**queue: Any) -> PrefactorCoreConfig:
    """Nothing listens at the API's address: whatever is recorded stays queued."""
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=f"http://127.0.0.1:{free_port()}", api_token=TOKEN),
        queue_config=QueueConfig(**queue),
        schema_registry=make_registry(),
        startup_timeout=0.05,
        close_timeout=0.0,
    )


def settle(client: SyncPrefactorCoreClient) -> None:
    """Wait until what the caller emitted has entered the engine's queue."""
    engine = client._require_engine()
    entry = engine.client._entry
    assert entry is not None
    engine.call(entry.settle(), 10.0)


def counters(client: SyncPrefactorCoreClient) -> DeliveryStatistics:
    """The client's counters, read on the engine's loop between two of its steps (read
    from the caller's thread they can catch an operation midway between the queue and
    the lanes, which the engine moves in turns)."""
    engine = client._require_engine()

    async def read() -> DeliveryStatistics:
        return engine.client.statistics()

    return engine.call(read(), 10.0)


def record(client: SyncPrefactorCoreClient, n: int) -> None:
    run = client.create_agent_instance(agent_id="sync-records", agent_version=AGENT_VERSION)
    run.start()
    for i in range(n):
        with run.span("agent:step") as span:
            span.start({"i": i})
            span.complete({"ok": i})


def test_sync_spans_reach_the_queue_as_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefactor_core import _open_spans, _span_taking

    taken: list[bool] = []

    def spy(span: _open_spans.OpenSpan, folded: bool) -> Any:
        taken.append(folded)
        return real(span, folded)

    # What makes a taken record's operation, one at a time (``take``) or many (``take_many``).
    real = _span_taking._taken
    monkeypatch.setattr(_span_taking, "_taken", spy)
    with SyncPrefactorCoreClient(down_config()) as client:
        record(client, 50)
        settle(client)
        stats = counters(client)
        # The register and the instance start, then 50 spans of two operations each.
        assert stats.queued == 2 + 100
        assert stats.dropped == 0
    # Each span's create was taken as its record; its finish came as an operation (a
    # record waiting in the thread-safe entry is not folded into).
    assert taken == [False] * 50


@pytest.mark.parametrize("max_queue_size", [1, 10, 25])
def test_a_full_queue_drops_and_counts_every_operation_of_sync_spans(max_queue_size: int) -> None:
    """Records dropped at the entry (its buffer full) or at the queue (full) count as the
    operations they stand for: queued + dropped is exactly what was recorded."""
    with SyncPrefactorCoreClient(down_config(max_queue_size=max_queue_size)) as client:
        record(client, 40)
        settle(client)
        stats = counters(client)
        assert stats.queued + stats.dropped == 2 + 80
        assert stats.dropped > 0


def test_sync_spans_recorded_as_records_are_stored_exactly(live: LocalServer) -> None:
    with SyncPrefactorCoreClient(config_for(live)) as client:
        run = client.create_agent_instance(agent_id="sync-records", agent_version=AGENT_VERSION)
        run.start()
        with run.span("agent:step") as outer:
            outer.start({"n": 0})
            for i in range(30):
                with run.span("agent:tool") as inner:
                    inner.start({"i": i})
                    if i % 3 == 0:
                        inner.fail({"error": i})
                    else:
                        inner.complete({"ok": i})
            outer.complete({"done": True})
        run.finish()
        assert client.flush(30)
        assert client.statistics().dropped == 0
    rows = spans(live, run.id)
    assert len(rows) == 31
    [top] = [r for r in rows if r["schema_name"] == "agent:step"]
    assert top["payload"] == {"n": 0}
    assert top["result_payload"] == {"done": True}
    for row in rows:
        if row is top:
            continue
        i = row["payload"]["i"]
        assert row["parent_span_id"] == top["id"]
        assert row["status"] == ("failed" if i % 3 == 0 else "complete")
        assert row["result_payload"] == ({"error": i} if i % 3 == 0 else {"ok": i})
        assert row["started_at"]
        assert row["finished_at"]


async def test_spans_from_worker_threads_of_the_async_client_are_stored(
    live: LocalServer,
) -> None:
    from prefactor_core import PrefactorCoreClient

    async with asyncio.timeout(60):
        async with PrefactorCoreClient(config_for(live)) as client:
            run = await client.create_agent_instance(
                agent_id="thread-records", agent_version=AGENT_VERSION
            )
            await run.start()
            async with run.span("agent:step") as outer:
                await outer.start({"n": 0})

                done = await asyncio.gather(*(asyncio.to_thread(work, i) for i in range(20)))
                assert done == list(range(20))
                await outer.complete({"done": True})
            await run.finish()
            assert await client.flush(30)
            assert client.statistics().dropped == 0
    rows = spans(live, run.id)
    [top] = [r for r in rows if r["schema_name"] == "agent:step"]
    tools = [r for r in rows if r["schema_name"] == "agent:tool"]
    assert sorted(r["payload"]["i"] for r in tools) == list(range(20))
    assert {r["status"] for r in tools} == {"complete"}
    assert {r["parent_span_id"] for r in tools} == {top["id"]}
    assert sorted(r["result_payload"]["output"] for r in tools) == list(range(20))


@trace("agent:tool")
def work(i: int) -> int:
    """A traced function that asyncio.to_thread runs on a worker thread."""
    return i
