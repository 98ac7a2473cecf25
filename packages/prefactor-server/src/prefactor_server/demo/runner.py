"""Running the demo: an embedded server (or a given one), the traced agent, the read-back.

Example::

    async with embedded_server(Path("prefactor-demo.db")) as (api_url, token):
        run = await run_demo(api_url, token, seed=7)
    print(run.instance["status"], len(run.spans))
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_http import HttpClientConfig
from prefactor_server.demo.agent import StepCallback, run_agent
from prefactor_server.demo.schemas import build_registry
from prefactor_server.testing import LocalServer
from prefactor_server.traces.reader import TraceReader, TraceReaderError

__all__ = ["AGENT_ID", "DemoError", "DemoRun", "embedded_server", "new_demo_token", "run_demo"]

AGENT_ID = "demo-research-agent"
"""The agent id the demo's runs belong to (``prefactor traces list --agent``)."""


class DemoError(Exception):
    """The demo could not run or its data did not arrive; ``str(exc)`` is one line."""


@dataclass(frozen=True)
class DemoRun:
    """A finished demo run as read back through the server's read API.

    Attributes:
        instance: The agent instance resource.
        spans: Its span resources.
        answer: The simulated agent's answer.
    """

    instance: dict[str, Any]
    spans: list[dict[str, Any]]
    answer: str

    @property
    def instance_id(self) -> str:
        """The run's id."""
        return str(self.instance["id"])


def new_demo_token() -> str:
    """A fresh token for an embedded server (stored hashed in the demo's database)."""
    return "pf_demo_" + secrets.token_urlsafe(24)


@asynccontextmanager
async def embedded_server(
    db_path: Path | str, *, token: str | None = None
) -> AsyncIterator[tuple[str, str]]:
    """Serve a database file on 127.0.0.1 (a free port) for the block; yield (url, token).

    The token is registered in the file, so ``prefactor serve --db`` on the same file
    accepts it afterwards.
    """
    chosen = token or new_demo_token()
    async with LocalServer.run(db_path, token=chosen) as server:
        yield server.api_url, chosen


async def run_demo(
    api_url: str,
    token: str,
    *,
    seed: int = 7,
    latency_scale: float = 1.0,
    on_step: StepCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DemoRun:
    """Trace one run of the simulated agent into the server, then read it back.

    Args:
        api_url: The server's base URL.
        token: An API token the server accepts.
        seed: Makes the run deterministic (latencies, answers).
        latency_scale: Multiplies the simulated latencies (0: no sleeping).
        on_step: Called after each step (a progress bar).
        transport: An httpx transport for both the SDK and the read-back (tests).

    Raises:
        DemoError: The server is unreachable, rejected the token, or lost data.
    """
    async with TraceReader(api_url, token, transport=transport) as reader:
        try:
            # Check before tracing: the SDK never raises into an agent, so a wrong URL or
            # token would otherwise only show up as an empty run at the end.
            await reader.list_instances(limit=1)
        except TraceReaderError as exc:
            raise DemoError(str(exc)) from None

        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url=api_url, api_token=token, max_retries=1),
            queue_config=QueueConfig(batch_linger=0.02),
            schema_registry=build_registry(),
        )
        async with PrefactorCoreClient(config, transport=transport) as client:
            instance = await client.create_agent_instance(
                agent_id=AGENT_ID,
                agent_version={
                    "name": "Research assistant (demo)",
                    "external_identifier": "demo-1.0",
                    "description": "A simulated agent: seeded canned answers, no model calls.",
                },
                external_identifier=f"demo-seed-{seed}",
            )
            await instance.start()
            result = await run_agent(
                instance, seed=seed, latency_scale=latency_scale, on_step=on_step
            )
            await instance.finish()
            delivered = await client.flush(timeout=30)
            dropped = client.statistics().dropped
        if not delivered or dropped:
            raise DemoError(
                f"the SDK could not deliver the whole run to {api_url} "
                f"({dropped} operations dropped); see the log above"
            )
        try:
            stored = await reader.get_instance(instance.id)
            spans = await reader.list_spans(instance.id)
        except TraceReaderError as exc:
            raise DemoError(f"reading the run back failed: {exc}") from None
    return DemoRun(instance=stored, spans=spans, answer=str(result["answer"]))
