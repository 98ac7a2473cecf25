"""Bulk chosen per action: what the server lists in ``capabilities.bulk_actions`` goes in
bulk requests, any other action one request at a time, and each instance's order is kept.
(Before, one action missing from the list turned bulk off for everything.)"""

from __future__ import annotations

import json

import httpx
import pytest

from prefactor_core._engine.wire import BULK_ACTIONS
from prefactor_core.operations import OperationType
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .dispatcher_fakes import (
    BULK,
    FakeSender,
    Harness,
    create,
    finish,
    quality,
    quiesce,
    register,
    start,
)
from .support import TestTransport, read_one, spans_of

pytestmark = pytest.mark.timeout(30)

QUALITY = BULK_ACTIONS[OperationType.RECORD_QUALITY]
ALL_BUT_QUALITY = [a for a in BULK_ACTIONS.values() if a != QUALITY]


async def test_an_action_the_server_does_not_list_goes_alone_and_keeps_its_place() -> None:
    sender = FakeSender()
    harness = Harness(sender, bulk=None)
    harness.dispatcher.configure(bulk=[*ALL_BUT_QUALITY, "agent_spans/something_new"])
    a_ops = [start("A"), create("A", "a1"), quality("A"), create("A", "a2"), finish("A", "a2")]
    b_ops = [create("B", "b1"), create("B", "b2")]
    harness.put(*a_ops, *b_ops)
    assert await harness.finish() == 0
    assert [(r.path, r.keys) for r in sender.requests] == [
        (BULK, ["A:start", "A:create:a1", "B:create:b1", "B:create:b2"]),
        ("/api/v1/agent_instance/A/record_quality", ["A:quality:score"]),
        (BULK, ["A:create:a2"]),  # merged with its finish: bulk rules still apply
    ]
    assert harness.dispatcher.statistics().sent == len(a_ops) + len(b_ops)


async def test_other_instances_go_on_in_bulk_while_a_single_request_is_in_flight() -> None:
    sender = FakeSender(hold=lambda r: r.path != BULK)
    harness = Harness(sender, bulk=None, num_workers=2)
    harness.dispatcher.configure(bulk=ALL_BUT_QUALITY)
    harness.put(quality("A"), create("A", "a1"), create("B", "b1"))
    await sender.wait_for(2)
    await quiesce()
    assert [(r.path, r.keys) for r in sender.requests] == [
        ("/api/v1/agent_instance/A/record_quality", ["A:quality:score"]),
        (BULK, ["B:create:b1"]),
    ]
    sender.release()
    assert await harness.finish() == 0
    assert sender.batches()[-1] == ["A:create:a1"]


async def test_a_single_request_waits_for_its_instances_bulk_request_in_flight() -> None:
    sender = FakeSender(hold=lambda r: r.path == BULK)
    harness = Harness(sender, bulk=None, num_workers=3)
    harness.dispatcher.configure(bulk=ALL_BUT_QUALITY)
    harness.put(start("A"), quality("A"))
    await sender.wait_for(1)
    harness.put(create("B", "b1"))  # wakes the scheduler while A's start is in flight
    await sender.wait_for(2)
    await quiesce()
    assert sender.batches() == [["A:start"], ["B:create:b1"]]
    sender.release()
    assert await harness.finish() == 0
    assert sender.batches()[-1] == ["A:quality:score"]


@pytest.mark.parametrize("listed", [[], ["agent_spans/something_new"]], ids=["none", "unknown"])
async def test_a_server_listing_none_of_our_actions_gets_single_requests(
    listed: list[str],
) -> None:
    sender = FakeSender()
    harness = Harness(sender, bulk=None)
    harness.dispatcher.configure(bulk=listed)
    harness.put(register("A"), create("A", "a1"))
    await harness.finish()
    assert BULK not in {request.path for request in sender.requests}
    assert sender.delivered() == ["A:register", "A:create:a1"]


class FewerActions(TestTransport):
    """The in-process server, announcing every bulk action but record_quality."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path != "/api/v1/ping":
            return response
        await response.aread()
        data = json.loads(response.content)
        data["capabilities"]["bulk_actions"].remove(QUALITY)
        return httpx.Response(response.status_code, json=data, request=request)


async def test_end_to_end_spans_stay_in_bulk_when_the_server_lacks_one_action(
    make_client: ClientFactory, server: LocalServer
) -> None:
    transport = FewerActions(server.transport)
    client = make_client(transport=transport)
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    span_ids = []
    for n in range(3):
        async with instance.span("agent:step") as span:
            span_ids.append(span.id)
            await span.start({"n": n})
    await instance.record_quality("score", {"value": 1})
    await instance.finish()
    await client.close()
    paths = transport.paths()
    assert "/api/v1/bulk" in paths
    assert f"/api/v1/agent_instance/{instance.id}/record_quality" in paths
    single_spans = [p for p in paths if p.startswith("/api/v1/agent_spans")]
    assert single_spans == []
    assert [row["id"] for row in await spans_of(server, instance.id)] == span_ids
    stats = client.statistics()
    assert (stats.dropped, stats.rejected) == (0, 0)
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert (stored["status"], stored["quality_payloads"]) == ("complete", {"score": {"value": 1}})
