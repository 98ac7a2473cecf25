"""@trace and the sync client encode payloads like hand-written spans, against a real
uvicorn server on 127.0.0.1: odd values, unencodable objects, the masking hook, the size
budgets, and a long stream's items bounded by the span's budget."""

from __future__ import annotations

import asyncio
import dataclasses
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pydantic

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SyncPrefactorCoreClient, trace
from prefactor_core._payload import MARKER_KEY
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION
from .test_sync_client import config_for, spans

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
IDENT = uuid.UUID("12345678-1234-5678-1234-567812345678")
SECRET = "sk-live-0123456789"


class Query(pydantic.BaseModel):
    text: str
    at: datetime


@dataclasses.dataclass
class Point:
    x: int
    y: Decimal


class Opaque:
    """An object JSON has no encoding for (no dataclass, no model, no __json__)."""


@trace("trace:convert")
def convert(when: datetime, ident: uuid.UUID, query: Query, point: Point) -> Query:
    return Query(text=query.text.upper(), at=when + timedelta(days=1))


@trace("trace:convert_async")
async def convert_async(ident: uuid.UUID, gap: timedelta) -> Point:
    await asyncio.sleep(0)
    return Point(x=1, y=Decimal("2.50"))


@trace("trace:opaque")
def opaque(thing: Opaque, label: str) -> Opaque:
    return thing


@trace("trace:login")
def login(user: str, api_key: str) -> dict[str, Any]:
    return {"user": user, "api_key": api_key, "session": f"session-of-{api_key}"}


@trace("trace:read")
def read(document: str) -> int:
    return len(document)


@trace("trace:stream")
def stream(n: int, width: int) -> Iterator[str]:
    for i in range(n):
        yield f"{i:08d}" + "x" * width  # a fresh string per item


@trace("trace:astream", reduce="".join)
async def astream(n: int) -> AsyncIterator[str]:
    for i in range(n):
        await asyncio.sleep(0)
        yield f"<{i}>"


def configured(server: LocalServer, **fields: Any) -> PrefactorCoreConfig:
    """The sync tests' config (a real server on 127.0.0.1) with payload settings."""
    base = config_for(server)
    return PrefactorCoreConfig(
        http_config=base.http_config,
        schema_registry=base.schema_registry,
        close_timeout=base.close_timeout,
        **fields,
    )


def only(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [row] = [r for r in rows if r["schema_name"] == name]
    return row


def mask_secrets(data: Any) -> Any:
    """Replace every ``api_key`` value and every string holding the secret, at any depth."""
    if isinstance(data, dict):
        return {k: "***" if k == "api_key" else mask_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v) for v in data]
    if isinstance(data, str) and SECRET in data:
        return data.replace(SECRET, "***")
    return data


def test_odd_values_in_traced_arguments_and_returns_are_stored_encoded(
    live: LocalServer,
) -> None:
    """datetime, UUID, pydantic and dataclass arguments and returns of sync and async
    decorated functions are stored as their JSON forms; the functions return unchanged."""
    query = Query(text="hi", at=WHEN)
    with SyncPrefactorCoreClient(config_for(live)) as client:
        with client.create_agent_instance(agent_id="odd", agent_version=AGENT_VERSION) as run:
            run.start()
            returned = convert(WHEN, IDENT, query, Point(3, Decimal("0.1")))
            assert returned == Query(text="HI", at=WHEN + timedelta(days=1))
            assert asyncio.run(convert_async(IDENT, timedelta(minutes=90))) == Point(
                1, Decimal("2.50")
            )
        assert client.flush(30)
        stats = client.statistics()
    rows = spans(live, run.id)
    sync_row = only(rows, "trace:convert")
    assert sync_row["status"] == "complete"
    assert sync_row["payload"] == {
        "when": "2026-03-04T05:06:07+00:00",  # orjson's form; pydantic's ends in Z
        "ident": str(IDENT),
        "query": {"text": "hi", "at": "2026-03-04T05:06:07Z"},
        "point": {"x": 3, "y": "0.1"},
    }
    assert sync_row["result_payload"] == {"output": {"text": "HI", "at": "2026-03-05T05:06:07Z"}}
    async_row = only(rows, "trace:convert_async")
    assert async_row["payload"] == {"ident": str(IDENT), "gap": "PT1H30M"}
    assert async_row["result_payload"] == {"output": {"x": 1, "y": "2.50"}}
    assert stats.unencodable == 0


def test_an_unencodable_object_becomes_a_marker_naming_its_type(live: LocalServer) -> None:
    """An argument and a return value JSON cannot encode are stored as markers naming
    their type, counted; the function gets and returns the object itself, nothing raises."""
    thing = Opaque()
    with SyncPrefactorCoreClient(config_for(live)) as client:
        with client.create_agent_instance(agent_id="opaque", agent_version=AGENT_VERSION) as run:
            run.start()
            assert opaque(thing, "label") is thing
        assert client.flush(30)
        stats = client.statistics()
    row = only(spans(live, run.id), "trace:opaque")
    name = f"<unencodable: {__name__}.Opaque>"
    assert row["status"] == "complete"
    assert row["payload"] == {"thing": name, "label": "label"}
    assert row["result_payload"] == {"output": name}
    assert stats.unencodable == 2


def test_masking_covers_trace_params_results_and_sync_client_spans(live: LocalServer) -> None:
    """The client's masking hook sees @trace params and results and every payload of
    the sync client's hand-written spans and quality records: the secret is stored nowhere."""
    config = configured(live, mask=mask_secrets)
    with SyncPrefactorCoreClient(config) as client:
        with client.create_agent_instance(agent_id="masked", agent_version=AGENT_VERSION) as run:
            run.start()
            assert login("ann", SECRET)["api_key"] == SECRET  # the function sees the real key
            with run.span("agent:tool") as span:
                span.start({"api_key": SECRET, "q": "hello"})
                span.complete({"echo": f"key={SECRET}"})
            run.record_quality("score", {"note": f"used {SECRET}", "value": 1})
        assert client.flush(30)
        assert client.statistics().mask_errors == 0
    rows = spans(live, run.id)
    traced = only(rows, "trace:login")
    assert traced["payload"] == {"user": "ann", "api_key": "***"}
    assert traced["result_payload"] == {
        "user": "ann",
        "api_key": "***",
        "session": "session-of-***",
    }
    hand = only(rows, "agent:tool")
    assert hand["payload"] == {"api_key": "***", "q": "hello"}
    assert hand["result_payload"] == {"echo": "key=***"}
    headers = {"Authorization": f"Bearer {config.http_config.api_token}"}
    instance = httpx_get(live, f"/api/v1/agent_instance/{run.id}", headers)
    assert SECRET not in orjson.dumps(rows).decode()
    assert SECRET not in instance
    assert "used ***" in instance  # the quality record was stored, masked


def test_a_raising_masking_hook_never_reaches_a_traced_function(live: LocalServer) -> None:
    """A hook that raises turns @trace payloads into mask_failed markers; the function
    runs and returns as usual and the span is stored complete."""

    def broken(data: Any) -> Any:
        if "api_key" in data or "session" in data:
            raise RuntimeError("mask broke")
        return data

    config = configured(live, mask=broken)
    with SyncPrefactorCoreClient(config) as client:
        with client.create_agent_instance(agent_id="broken", agent_version=AGENT_VERSION) as run:
            run.start()
            assert login("bob", SECRET)["user"] == "bob"
        assert client.flush(30)
        assert client.statistics().mask_errors == 2
    row = only(spans(live, run.id), "trace:login")
    failed = {MARKER_KEY: {"replaced": "mask_failed", "error": "RuntimeError"}}
    assert (row["status"], row["payload"], row["result_payload"]) == ("complete", failed, failed)


def test_a_masking_hook_returning_no_dict_is_its_failure_not_the_agents(
    live: LocalServer,
) -> None:
    """A hook that returns None (a forgotten ``return``) for some payloads: those become
    mask_failed markers, counted, for hand-written spans and @trace alike; no TypeError
    reaches the agent, whose own payloads were dicts."""

    def forgetful(data: Any) -> Any:
        if "api_key" in data:
            data["api_key"] = "***"  # edits in place, forgets to return
            return None
        return data

    config = configured(live, mask=forgetful)
    with SyncPrefactorCoreClient(config) as client:
        with client.create_agent_instance(agent_id="forgot", agent_version=AGENT_VERSION) as run:
            run.start()
            with run.span("agent:tool") as span:
                span.start({"api_key": SECRET})
                span.complete({"ok": True})
            assert login("cy", SECRET)["user"] == "cy"
        assert client.flush(30)
        assert client.statistics().mask_errors == 3
    rows = spans(live, run.id)
    failed = {MARKER_KEY: {"replaced": "mask_failed", "error": "TypeError"}}
    hand, traced = only(rows, "agent:tool"), only(rows, "trace:login")
    assert (hand["payload"], hand["result_payload"]) == (failed, {"ok": True})
    assert (traced["payload"], traced["result_payload"]) == (failed, failed)
    assert {hand["status"], traced["status"]} == {"complete"}
    assert SECRET not in orjson.dumps(rows).decode()


def test_a_huge_traced_argument_is_cut_to_the_field_budget(live: LocalServer) -> None:
    """A 2 MB argument is stored cut to max_field_bytes with a note of what was cut; the
    function gets it whole and the run completes."""
    document = "d" * 2_000_000
    config = configured(live, max_field_bytes=4096, max_span_bytes=65536)
    with SyncPrefactorCoreClient(config) as client:
        with client.create_agent_instance(agent_id="huge", agent_version=AGENT_VERSION) as run:
            run.start()
            assert read(document) == 2_000_000
        assert client.flush(30)
        assert client.statistics().truncated == 1
    row = only(spans(live, run.id), "trace:read")
    stored = row["payload"]["document"]
    assert stored.startswith("dddd")
    assert stored.endswith(f"<truncated {2_000_000 - len(stored.split('…')[0])} of 2000000 bytes>")
    assert len(stored.encode()) <= 4096
    assert row["result_payload"] == {"output": 2_000_000}
    assert row["status"] == "complete"


def test_a_long_streams_items_are_kept_only_within_the_span_budget(live: LocalServer) -> None:
    """A generator yielding 50 MB keeps a prefix of its items within max_span_bytes (its
    memory stays bounded while it runs) and its result says how many were left out."""
    n, width = 25_000, 2_000
    budget = 64 * 1024
    config = configured(live, max_field_bytes=budget, max_span_bytes=budget)
    with SyncPrefactorCoreClient(config) as client:
        with client.create_agent_instance(agent_id="stream", agent_version=AGENT_VERSION) as run:
            run.start()
            tracemalloc.start()
            try:
                consumed = sum(1 for _ in stream(n, width))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert consumed == n
        assert client.flush(30)
        assert client.statistics().truncated == 1
    # Kept, all 25,000 items would take 50 MB; the cut keeps the stream to its budget.
    assert peak < 4_000_000
    row = only(spans(live, run.id), "trace:stream")
    items = row["result_payload"]["output"]
    cut = row["result_payload"][MARKER_KEY]
    assert items == [f"{i:08d}" + "x" * width for i in range(len(items))]  # a prefix
    assert 0 < len(items) < n
    assert cut["replaced"] == "items_cut"
    assert (cut["kept"], cut["dropped"]) == (len(items), n - len(items))
    assert len(orjson.dumps(row["payload"])) + len(orjson.dumps(row["result_payload"])) <= budget


async def test_an_async_streams_reduced_prefix_is_stored_with_the_cut(live: LocalServer) -> None:
    """With ``reduce``, the reduced prefix of the items that fit is the output (the async
    client over HTTP, an async generator)."""
    budget = 4096
    config = configured(live, max_field_bytes=budget, max_span_bytes=budget)
    async with asyncio.timeout(60):
        async with PrefactorCoreClient(config) as client:
            instance = await client.create_agent_instance(
                agent_id="astream", agent_version=AGENT_VERSION
            )
            async with instance:
                await instance.start()
                assert len([x async for x in astream(2000)]) == 2000
            assert await client.flush(30)
    row = only(spans(live, instance.id), "trace:astream")
    output = row["result_payload"]["output"]
    cut = row["result_payload"][MARKER_KEY]
    assert output == "".join(f"<{i}>" for i in range(cut["kept"]))
    assert cut["kept"] + cut["dropped"] == 2000
    assert cut["dropped"] > 0


def httpx_get(server: LocalServer, path: str, headers: dict[str, str]) -> str:
    response = httpx.get(f"{server.api_url}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.text
