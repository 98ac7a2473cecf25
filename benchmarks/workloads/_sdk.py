"""Opening a client of whichever prefactor-core this interpreter has (ours or published).

Both expose the same API (PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry,
``instance.span()``), so the workloads are written once. ``baseline`` is the same loop
with no SDK: no-op objects with the same shape.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import _wl


class NoopSpan:
    """A span that does nothing: what the loop costs without an SDK."""

    async def __aenter__(self) -> NoopSpan:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def start(self, payload: dict[str, Any] | None = None) -> None:
        return None

    async def complete(self, result: dict[str, Any] | None = None) -> None:
        return None


class NoopInstance:
    """An instance whose spans do nothing."""

    def span(self, schema_name: str) -> NoopSpan:
        return NoopSpan()

    async def finish(self) -> None:
        return None


def version() -> str:
    """The prefactor-core version of this interpreter."""
    return importlib.metadata.version("prefactor-core")


def make_client(
    api_url: str, token: str, ours_queue: dict[str, Any] | None = None, queue: Any = None
) -> Any:
    """A client with the benchmark's span type registered (not yet initialised).

    ``queue``: a queue of our SDK's to use instead of the one the client would make.
    """
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
    from prefactor_core.schema_registry import SchemaRegistry
    from prefactor_http.config import HttpClientConfig

    registry = SchemaRegistry()
    registry.register_type(
        _wl.SPAN_TYPE,
        params_schema=_wl.PARAMS_SCHEMA,
        result_schema=_wl.RESULT_SCHEMA,
        title="LLM call",
    )
    extra: dict[str, Any] = {}
    if ours_queue is not None and not version().startswith("0.5."):
        from prefactor_core import QueueConfig

        extra["queue_config"] = QueueConfig(**ours_queue)
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token),
        schema_registry=registry,
        **extra,
    )
    return (
        PrefactorCoreClient(config) if queue is None else PrefactorCoreClient(config, queue=queue)
    )


async def open_instance(client: Any, agent_id: str) -> Any:
    """Register and start an instance of the benchmark agent."""
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id=agent_id,
        agent_version={"name": "Bench Agent", "external_identifier": "bench-v1"},
    )
    await instance.start()
    return instance
