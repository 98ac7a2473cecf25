"""Behaviour that code written for the published prefactor-core 0.5.3 / prefactor-http
0.4.3 relies on, beyond names and signatures (those are in tests/compat)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from prefactor_core import (
    AgentInstanceHandle,
    Operation,
    OperationType,
    PrefactorCoreClient,
    Queue,
    QueueClosedError,
    SchemaRegistry,
    TerminationMonitor,
    warn_missing_adaptor_config,
)
from prefactor_core.managers import AgentInstanceManager
from prefactor_http import HttpClientConfig, PrefactorHttpClient
from prefactor_http.endpoints.agent import AgentClient, AgentForCreate
from prefactor_http.endpoints.agent_instance import AgentInstanceClient
from prefactor_http.endpoints.agent_span import AgentSpanClient
from prefactor_http.endpoints.bulk import BulkClient
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorHttpError,
    PrefactorRetryExhaustedError,
)
from prefactor_http.retry import RetryHandler
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import TestTransport, spans_of

pytestmark = pytest.mark.timeout(30)


class ListQueue(Queue[Operation]):
    """A custom queue written against the published base class: ``closed`` is a property."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[Operation | None] = asyncio.Queue()
        self._closed = False

    async def put(self, item: Operation) -> None:
        if self._closed:
            raise QueueClosedError("closed")
        self._items.put_nowait(item)

    async def get(self) -> Operation:
        if self._closed and self._items.empty():
            raise QueueClosedError("closed")
        item = await self._items.get()
        if item is None:
            raise QueueClosedError("closed")
        return item

    def size(self) -> int:
        return self._items.qsize()

    async def close(self, num_waiters: int = 1) -> None:
        self._closed = True
        for _ in range(num_waiters):
            self._items.put_nowait(None)

    @property
    def closed(self) -> bool:
        return self._closed


async def test_queue_closed_is_a_property(make_client: ClientFactory) -> None:
    """``if queue.closed:`` reads the state (a method would always be truthy)."""
    from prefactor_core import InMemoryQueue

    queue: InMemoryQueue[int] = InMemoryQueue()
    assert not queue.closed
    await queue.close()
    assert queue.closed


async def test_custom_queue_written_for_the_published_base_class(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A queue with a ``closed`` property carries a run to the server and closes cleanly."""
    client = make_client()
    client = PrefactorCoreClient(client.config, ListQueue(), transport=client.test_transport)  # type: ignore[attr-defined]
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
    await instance.start()
    async with instance.span("agent:llm") as span:
        await span.start({"model": "m", "prompt": "p"})
        await span.complete({"response": "r"})
    await instance.finish()
    await client.close()
    spans = await spans_of(server, instance.id)
    assert [s["status"] for s in spans] == ["complete"]


async def test_create_agent_instance_result_is_a_coroutine(make_client: ClientFactory) -> None:
    """``asyncio.create_task`` and ``gather`` take it, as with the published coroutine method."""
    async with make_client() as client:
        task = asyncio.create_task(
            client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        )
        first = await task
        second, third = await asyncio.gather(
            client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION),
            client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION),
        )
        assert all(isinstance(h, AgentInstanceHandle) for h in (first, second, third))
        assert len({first.id, second.id, third.id}) == 3
        for handle in (first, second, third):
            await handle.finish()


def test_operation_is_a_frozen_dataclass() -> None:
    """``dataclasses.replace``, ``asdict`` and ``fields`` work; assignment raises."""
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    op = Operation(OperationType.CREATE_SPAN, {"span_id": "s"}, stamp, "key-00000001")
    assert dataclasses.is_dataclass(op)
    assert [f.name for f in dataclasses.fields(op)] == [
        "type",
        "payload",
        "timestamp",
        "idempotency_key",
        "metadata",
    ]
    changed = dataclasses.replace(op, idempotency_key="key-00000002")
    assert changed.idempotency_key == "key-00000002"
    assert changed.payload == op.payload
    assert changed.timestamp == stamp
    assert dataclasses.asdict(op) == {
        "type": OperationType.CREATE_SPAN,
        "payload": {"span_id": "s"},
        "timestamp": stamp,
        "idempotency_key": "key-00000001",
        "metadata": {},
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.payload = {}  # type: ignore[misc]


@pytest.mark.parametrize("order", ["published", "seed"])
async def test_register_takes_either_positional_order(order: str) -> None:
    """``register(agent_version, schema, agent_id)`` (0.5.3) and the seed's
    ``register(agent_id, agent_version, schema)`` queue the same registration."""
    queued: list[Operation] = []

    async def enqueue(op: Operation) -> None:
        queued.append(op)

    manager = AgentInstanceManager(None, enqueue)
    schema = {"external_identifier": "s1", "span_type_schemas": []}
    if order == "published":
        instance_id = await manager.register(AGENT_VERSION, schema, "agent-1", "run-1")
    else:
        instance_id = await manager.register("agent-1", AGENT_VERSION, schema, "run-1")  # type: ignore[arg-type]
    assert instance_id == "run-1"
    body = queued[0].payload["body"]
    assert body["agent_id"] == "agent-1"
    assert body["agent_version"] == AGENT_VERSION
    assert body["agent_schema_version"] == schema


def test_endpoint_clients_take_http_client_keyword() -> None:
    """``AgentClient(http_client=...)`` and friends, as published."""
    http = PrefactorHttpClient(HttpClientConfig(api_url="http://127.0.0.1:1", api_token="t"))
    for cls in (AgentClient, AgentInstanceClient, AgentSpanClient, BulkClient):
        assert isinstance(cls(http_client=http), cls)
    assert http.agents is http.agents  # one resource client per HTTP client
    assert AgentForCreate.__name__ == "AgentForCreate"  # re-exported where published


def _fast_config(max_retries: int) -> HttpClientConfig:
    return HttpClientConfig(
        api_url="http://127.0.0.1:1",
        api_token="t",
        max_retries=max_retries,
        initial_retry_delay=0.001,
        max_retry_delay=0.002,
    )


async def test_retry_handler_retries_what_is_retryable() -> None:
    """It retries until success, re-raises what is not retryable, and gives up with
    ``PrefactorRetryExhaustedError`` carrying the last error."""
    calls: list[int] = []

    async def flaky(value: int, *, fail_times: int) -> int:
        calls.append(value)
        if len(calls) <= fail_times:
            raise OSError(f"attempt {len(calls)}")
        return value * 2

    handler = RetryHandler(_fast_config(3))
    assert await handler.execute(flaky, lambda e: isinstance(e, OSError), 21, fail_times=2) == 42
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(OSError, match="attempt 1"):
        await handler.execute(flaky, lambda e: False, 1, fail_times=5)
    assert len(calls) == 1

    calls.clear()
    with pytest.raises(PrefactorRetryExhaustedError) as caught:
        await handler.execute(flaky, lambda e: True, 1, fail_times=10)
    assert len(calls) == 4
    assert str(caught.value.last_error) == "attempt 4"

    calls.clear()
    with pytest.raises(OSError, match="attempt 1"):
        await RetryHandler(_fast_config(0)).execute(flaky, lambda e: True, 1, fail_times=10)


def test_http_errors_take_positional_arguments_like_exception() -> None:
    """``PrefactorHttpError("a", "b")`` works and keeps its args, as ``Exception`` does."""
    error = PrefactorHttpError("a", "b", 1)
    assert error.args == ("a", "b", 1)
    assert PrefactorHttpError("just a message").message == "just a message"
    assert str(PrefactorApiError("bad", "invalid", 400)).startswith("bad")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("initial_retry_delay", "initial_retry_delay must be positive"),
        ("max_retry_delay", "max_retry_delay must be positive"),
        ("request_timeout", "request_timeout must be positive"),
    ],
)
def test_config_errors_are_worded_as_published(field: str, message: str) -> None:
    """User code matching the published validation messages keeps matching."""
    with pytest.raises(ValueError, match=message):
        HttpClientConfig(api_url="http://127.0.0.1:1", api_token="t", **{field: 0})


async def test_private_names_the_published_adapters_use(make_client: ClientFactory) -> None:
    """``_initialized``, ``_termination_monitor``, ``_sdk_header_entry``,
    ``_set_sdk_header_entry``, a settable ``_config.schema_registry`` and
    ``AgentInstanceHandle._client``."""
    client = make_client()
    assert client._initialized is False
    assert client._termination_monitor is None
    registry = SchemaRegistry()
    registry.register_type("custom:step", params_schema={"type": "object"})
    client._config.schema_registry = registry
    client._set_sdk_header_entry("prefactor-langchain@0.3.0")
    assert client._sdk_header_entry == "prefactor-langchain@0.3.0"
    await client.initialize()
    try:
        assert client._initialized is True
        assert isinstance(client._termination_monitor, TerminationMonitor)
        assert client._http is not None
        assert client._http.sdk_header.startswith("prefactor-langchain@0.3.0 prefactor-core@")
        instance = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        assert instance._client is client
        async with instance.span("custom:step") as span:  # from the replaced registry
            await span.complete({})
        await instance.finish()
    finally:
        await client.close()
    assert client._initialized is False
    assert client._termination_monitor is None


def test_warn_missing_adaptor_config_names_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    """The adapters' warning names the instance and the call to use instead."""
    with caplog.at_level(logging.WARNING, logger="prefactor_core"):
        warn_missing_adaptor_config("run-1", "middleware", "PrefactorMiddleware.create_client(c)")
    assert "run-1" in caplog.text
    assert "PrefactorMiddleware.create_client(c)" in caplog.text


def test_agent_instance_model_has_purpose_and_quality_payloads() -> None:
    """The 0.5.3 fields, positional as published (``purpose`` right after ``status``)."""
    from prefactor_core import AgentInstance

    instance = AgentInstance("run-1", "agent", "active", "eval")
    assert instance.purpose == "eval"
    assert instance.quality_payloads is None
    payloads: dict[str, Any] = {"accuracy": {"score": 1}}
    assert AgentInstance("r", "a", quality_payloads=payloads).quality_payloads == payloads


async def test_readme_flush_makes_the_instance_readable_at_once(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The README's compatibility example: registration is queued, and after
    ``await client.flush()`` the instance is on the server."""
    gate = asyncio.Event()
    transport = TestTransport(server.transport, gate=gate)
    async with make_client(transport=transport, startup_timeout=0.0) as client:
        instance = await client.create_agent_instance(
            agent_id="my-agent", agent_version={"name": "My Agent", "external_identifier": "v1"}
        )
        assert await _stored_status(server, instance.id) is None  # not sent yet
        gate.set()
        await client.flush()
        assert await _stored_status(server, instance.id) == "pending"
        await instance.finish()


async def _stored_status(server: LocalServer, instance_id: str) -> str | None:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        response = await http.get(f"/api/v1/agent_instance/{instance_id}", headers=headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    status: str = response.json()["details"]["status"]
    return status
