"""Opening our ``SyncPrefactorCoreClient`` from an async agent, for the workloads that set
it beside the async client (the engine on its own thread instead of the agent's loop).

The client is configured exactly as ``_sdk.make_client`` configures the async one (same
span type, schemas and queue settings); opening waits for the engine's thread, so it runs
in a worker thread (``asyncio.to_thread``), as an async agent would call it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _sdk

from prefactor_core import SyncPrefactorCoreClient


def make_client(
    api_url: str, token: str, queue: dict[str, Any] | None = None
) -> SyncPrefactorCoreClient:
    """A sync client with the benchmark's span type registered (not yet open)."""
    config = _sdk.make_client(api_url, token, ours_queue=queue)._config  # never opened
    return SyncPrefactorCoreClient(config)


async def open_instance(client: SyncPrefactorCoreClient, agent_id: str) -> Any:
    """Open the client (off the loop) and start an instance of the benchmark agent."""
    await asyncio.to_thread(client.open)
    instance = client.create_agent_instance(
        agent_id=agent_id,
        agent_version={"name": "Bench Agent", "external_identifier": "bench-v1"},
    )
    instance.start()
    return instance
