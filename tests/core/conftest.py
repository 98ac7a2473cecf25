"""Fixtures for prefactor_core: a real server in-process and clients wired to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig, SchemaRegistry
from prefactor_core._engine import pacing
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .support import TestTransport

AGENT_VERSION = {"name": "Test Agent", "external_identifier": "v1"}
LIVE_TOKEN = "sync-client-token"


def make_registry(*, strict: bool = False) -> SchemaRegistry:
    """A registry with the span types the tests use."""
    registry = SchemaRegistry(strict=strict)
    registry.register_type(
        name="agent:llm",
        params_schema={
            "type": "object",
            "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
        },
        result_schema={"type": "object", "properties": {"response": {"type": "string"}}},
        title="LLM Call",
        template="{{model}}: {{prompt}} → {{response}}",
    )
    for name in ("agent:tool", "agent:retrieval", "agent:plan", "agent:step"):
        registry.register_type(name=name, params_schema={"type": "object"}, title=name)
    return registry


@pytest.fixture(name="turn_budget", params=["default budget", "a turn after every piece"])
def fixture_turn_budget(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with the engine's time budget per turn on the event loop, and with
    none: a turn after every piece of work, where a broken hand-over between the
    engine's tasks (order, counts, flush) would show."""
    if request.param != "default budget":
        monkeypatch.setattr(pacing, "TURN_BUDGET", 0.0)
        monkeypatch.setattr(pacing, "TURN_MAX", 0.0)


@pytest.fixture(name="server")
async def fixture_server(tmp_path: Path) -> AsyncIterator[LocalServer]:
    """The real server on a SQLite file, reached in-process."""
    server = LocalServer(tmp_path / "prefactor.db", token="core-test-token")
    yield server
    await server.aclose()


ClientFactory = Callable[..., PrefactorCoreClient]


@pytest.fixture(name="make_client")
def fixture_make_client(server: LocalServer) -> ClientFactory:
    """Build a client wired to the in-process server through a TestTransport.

    Keyword arguments: ``transport`` (a TestTransport to use), ``registry``, and any
    QueueConfig / PrefactorCoreConfig fields. Retry delays default to milliseconds so
    that fault tests run quickly (the backoff itself is what is being exercised).
    """

    def make(**options: Any) -> PrefactorCoreClient:
        transport = options.pop("transport", None) or TestTransport(server.transport)
        registry = options.pop("registry", make_registry())
        queue_fields = {
            "retry_delay_base": 0.001,
            "max_retry_delay": 0.01,
        }
        for name in list(options):
            if name in QueueConfig.model_fields:
                queue_fields[name] = options.pop(name)
        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(
                api_url=server.api_url, api_token=options.pop("token", server.token)
            ),
            queue_config=QueueConfig(**queue_fields),
            schema_registry=registry,
            **options,
        )
        client = PrefactorCoreClient(config, transport=transport)
        client.test_transport = transport  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture(name="live")
def fixture_live(tmp_path: Path) -> Iterator[LocalServer]:
    """The real server with uvicorn on 127.0.0.1 (its own thread and loop)."""
    runner = asyncio.Runner()
    manager = LocalServer.run(tmp_path / "sync.db", token=LIVE_TOKEN)
    server = runner.run(manager.__aenter__())
    try:
        yield server
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()
