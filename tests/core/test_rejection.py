"""One refused item never takes the run down (issue 10): it is reported, counted, and the
span is re-sent with a marker (or dropped); only 401/403 latch a telemetry failure."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_core import PrefactorCoreClient
from prefactor_core._payload import MARKER_KEY
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import TestTransport, read_one, spans_of


async def _run_with_a_bad_span(
    client: PrefactorCoreClient, bad: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """Nine spans, the second of which is bad; return the instance id and span ids."""
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    ids: dict[str, str] = {}
    async with instance.span("agent:step") as before:
        ids["before"] = before.id
        await before.start({"n": 0})
    async with instance.span(bad.get("schema_name", "agent:llm")) as parent:
        ids["bad"] = parent.id
        await parent.start(bad.get("params", {"model": "m", "prompt": "p"}))
        for n in range(3):
            async with instance.span("agent:tool") as child:
                ids[f"child{n}"] = child.id
                await child.start({"n": n})
                async with instance.span("agent:tool") as grandchild:
                    ids[f"grandchild{n}"] = grandchild.id
                    await grandchild.start({"n": n})
        await parent.complete(bad.get("result", {"response": "r"}))
    async with instance.span("agent:step") as after:
        ids["after"] = after.id
        await after.start({"n": 9})
    await instance.finish()
    return instance.id, ids


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
async def test_params_that_do_not_match_the_schema_are_replaced_by_a_marker(
    make_client: ClientFactory,
    server: LocalServer,
    caplog: pytest.LogCaptureFixture,
    bulk: bool,
) -> None:
    """``{"model": 5}`` where the schema wants a string: the span is stored with a marker
    naming the error, its children and finish arrive, the run completes, nothing raises."""
    caplog.set_level(logging.WARNING, "prefactor_core")
    transport = TestTransport(server.transport, strip_capabilities=not bulk)
    async with make_client(transport=transport) as client:
        instance_id, ids = await _run_with_a_bad_span(client, {"params": {"model": 5}})
        await client.flush()
        stats = client.statistics()
    rows = {row["id"]: row for row in await spans_of(server, instance_id)}
    assert set(rows) == set(ids.values())
    bad = rows[ids["bad"]]
    marker = bad["payload"][MARKER_KEY]
    assert marker["replaced"] == "rejected"
    assert "model" in marker["message"]
    assert bad["status"] == "complete"
    assert bad["result_payload"] == {"response": "r"}
    assert all(row["status"] == "complete" for row in rows.values())
    assert rows[ids["child0"]]["parent_span_id"] == ids["bad"]
    assert stats.rejected == 1
    assert stats.dropped == 0
    instance = await read_one(server, f"/api/v1/agent_instance/{instance_id}")
    assert instance["status"] == "complete"
    [warning] = _warnings(caplog)
    assert "a span create" in warning
    assert "model" in warning


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
async def test_after_a_refused_span_create_is_answered_the_run_goes_on(
    make_client: ClientFactory, server: LocalServer, bulk: bool
) -> None:
    """One span create refused with 422 and its answer processed (flush) before the run
    makes more spans: the later spans do not raise, all are stored, and the run and the
    next run complete (a refusal used to latch telemetry for the whole client)."""
    transport = TestTransport(server.transport, strip_capabilities=not bulk)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:llm") as refused:
            await refused.start({"model": None, "prompt": "p"})  # the schema wants a string
        assert await client.flush()
        assert client.statistics().rejected == 1
        later = []
        for n in range(5):
            async with instance.span("agent:tool") as span:
                later.append(span.id)
                await span.start({"n": n})
                await span.complete({"n": n})
        await instance.finish()
        again = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with again.span("agent:step") as step:
            await step.start({})
        await again.finish()
        assert await client.flush()
        stats = client.statistics()
    rows = {row["id"]: row for row in await spans_of(server, instance.id)}
    assert set(rows) == {refused.id, *later}
    assert rows[refused.id]["payload"][MARKER_KEY]["replaced"] == "rejected"
    assert [rows[i]["result_payload"] for i in later] == [{"n": n} for n in range(5)]
    assert all(row["status"] == "complete" for row in rows.values())
    assert (stats.rejected, stats.dropped) == (1, 0)
    for run in (instance, again):
        assert (await read_one(server, f"/api/v1/agent_instance/{run.id}"))["status"] == "complete"
    assert [row["id"] for row in await spans_of(server, again.id)] == [step.id]


async def test_a_result_that_does_not_match_the_schema_is_replaced_by_a_marker(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A finish with a bad result is re-sent with a marker as its result."""
    async with make_client() as client:
        instance_id, ids = await _run_with_a_bad_span(client, {"result": {"response": 7}})
        await client.flush()
        stats = client.statistics()
    rows = {row["id"]: row for row in await spans_of(server, instance_id)}
    assert set(rows) == set(ids.values())
    bad = rows[ids["bad"]]
    assert bad["status"] == "complete"
    assert bad["payload"] == {"model": "m", "prompt": "p"}
    assert bad["result_payload"][MARKER_KEY]["replaced"] == "rejected"
    assert stats.rejected == 1
    assert stats.dropped == 0


async def test_an_unknown_span_type_is_dropped_and_the_rest_of_the_run_arrives(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in the span type: that span cannot be stored, but its children are (marked
    as orphans by the server), every later span is, and the instance finishes."""
    caplog.set_level(logging.WARNING, "prefactor_core")
    async with make_client() as client:
        instance_id, ids = await _run_with_a_bad_span(client, {"schema_name": "agent:lmm"})
        await client.flush()
        stats = client.statistics()
        # The client still works: a new run after the refusal is delivered in full.
        again = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with again.span("agent:step") as step:
            await step.start({})
        await again.finish()
    rows = {row["id"]: row for row in await spans_of(server, instance_id)}
    assert set(rows) == set(ids.values()) - {ids["bad"]}
    assert all(row["status"] == "complete" for row in rows.values())
    assert stats.rejected == 1  # the finish of the lost span is dropped, not sent to 404
    assert stats.dropped == 2
    instance = await read_one(server, f"/api/v1/agent_instance/{instance_id}")
    assert instance["status"] == "complete"
    assert [row["id"] for row in await spans_of(server, again.id)] == [step.id]
    assert any("unknown_span_type" in w for w in _warnings(caplog))


async def test_a_413_splits_and_cuts_instead_of_latching(
    make_client: ClientFactory, tmp_path: Any
) -> None:
    """When the API's limit is below the SDK's budget (a 413 comes back anyway), the batch
    is split and the oversized span is re-sent with a marker; the run goes on."""
    server = LocalServer(tmp_path / "small.db", token="small-token", max_body_bytes=64 * 1024)
    try:
        transport = TestTransport(server.transport)
        async with make_client(transport=transport, token=server.token) as client:
            instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
            await instance.start()
            ids = []
            for n in range(20):
                async with instance.span("agent:tool") as span:
                    ids.append(span.id)
                    await span.start({"doc": "x" * (200 * 1024 if n == 5 else 10)})
            await instance.finish()
            await client.flush()
            stats = client.statistics()
        rows = {row["id"]: row for row in await spans_of(server, instance.id)}
        assert set(rows) == set(ids)
        assert rows[ids[5]]["payload"][MARKER_KEY]["status"] == 413
        assert all(row["status"] == "complete" for row in rows.values())
        assert stats.dropped == 0
        assert (await read_one(server, f"/api/v1/agent_instance/{instance.id}"))[
            "status"
        ] == "complete"
    finally:
        await server.aclose()


async def test_a_refused_register_drops_that_instance_only(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """An instance the server will not register loses its own operations, counted as
    dropped; the client goes on delivering other instances."""
    async with make_client() as client:
        bad = await client.create_agent_instance(
            agent_id="a",
            agent_version=AGENT_VERSION,
            agent_schema_version={"external_identifier": "x", "span_schemas": "not an object"},
        )
        await bad.start()
        async with bad.span("agent:step") as lost:
            await lost.start({})
        await bad.finish()
        good = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with good.span("agent:step") as kept:
            await kept.start({})
        await good.finish()
        await client.flush()
        stats = client.statistics()
    assert [row["id"] for row in await spans_of(server, good.id)] == [kept.id]
    assert stats.rejected == 1
    assert stats.dropped == 5  # register, start, create + finish of the span, finish


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
async def test_the_finish_of_a_span_refused_for_good_is_dropped_not_sent(
    make_client: ClientFactory, server: LocalServer, bulk: bool
) -> None:
    """A span create that cannot be stored and whose finish comes much later: the finish
    is dropped by the SDK instead of being refused again by the server (404)."""
    transport = TestTransport(server.transport, strip_capabilities=not bulk)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        span_id = await instance.create_span("agent:typo", payload={"x": 1})
        await client.flush()
        await instance.finish_span(span_id, {"done": True})
        await instance.finish()
        await client.flush()
        stats = client.statistics()
    finishes = [f for a, f in transport.writes() if a == "agent_spans/finish"]
    assert finishes == []
    assert stats.rejected == 1
    assert stats.dropped == 2
    assert (await read_one(server, f"/api/v1/agent_instance/{instance.id}"))["status"] == "complete"


async def test_a_spool_forgets_what_the_server_refused_for_good(
    make_client: ClientFactory, server: LocalServer, tmp_path: Path
) -> None:
    """Operations dropped after a refusal leave the spool: the next process does not send
    them again only to have them refused again."""
    spool = tmp_path / "spool.db"
    async with make_client(spool_path=spool) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:typo") as span:
            await span.start({})
        await instance.finish()
        await client.flush()
        assert client.statistics().rejected == 1
    transport = TestTransport(server.transport)
    async with make_client(spool_path=spool, transport=transport) as again:
        await again.flush()
    assert transport.writes() == []


class _NoPing(TestTransport):
    """An API without ``/api/v1/ping`` (it answers 404 there)."""

    __test__ = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ping":
            body = {"status": "error", "code": "not_found", "message": "Not found"}
            return httpx.Response(404, json=body, request=request)
        return await super().handle_async_request(request)


async def test_an_api_without_ping_is_used_one_request_at_a_time(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A 404 on the start-up probe does not make delivery impossible: no latch, the SDK
    sends one request per operation."""
    transport = _NoPing(server.transport)
    async with make_client(transport=transport) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:step") as span:
            await span.start({})
        await instance.finish()
        await client.flush()
    assert [row["id"] for row in await spans_of(server, instance.id)] == [span.id]
    assert "/api/v1/bulk" not in transport.paths()
