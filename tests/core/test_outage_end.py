"""The end of an outage (issue 10): ``flush()`` and ``close()`` cut any backoff wait short
and retry at once, then at short intervals until their deadline; the start-up probe's
backoff is capped. Time is the test's: the client's sleep is injected."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_core._engine.retry import URGENT_DELAY
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, make_registry
from .support import CONNECT_ERROR, PASS, TestTransport, spans_of


class ControlledSleep:
    """The client's sleep, held by the test: each wait is recorded and lasts until the
    test ends it (``hold=True``), or ends at once (``hold=False``). Waits no longer than
    ``URGENT_DELAY`` (a flush or close retrying) end at once either way."""

    def __init__(self, *, hold: bool) -> None:
        self.hold = hold
        self.delays: list[float] = []
        self.requested = asyncio.Event()
        self._release = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.requested.set()
        if self.hold and delay > URGENT_DELAY:
            await self._release.wait()
        else:
            await asyncio.sleep(0)


def _client(
    server: LocalServer, transport: TestTransport, sleep: ControlledSleep, **options: Any
) -> PrefactorCoreClient:
    queue = {"retry_delay_base": 1.0, "max_retry_delay": 30.0}
    queue.update({k: options.pop(k) for k in list(options) if k in QueueConfig.model_fields})
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=server.api_url, api_token=server.token),
        queue_config=QueueConfig(**queue),
        schema_registry=make_registry(),
        **options,
    )
    return PrefactorCoreClient(config, transport=transport, sleep=sleep)


def _failing(path: str, times: int) -> Any:
    """A plan that refuses the connection for the first ``times`` requests to ``path``."""
    seen = [0]

    def plan(request: httpx.Request, _index: int) -> str:
        if request.url.path == path and seen[0] < times:
            seen[0] += 1
            return CONNECT_ERROR
        return PASS

    return plan


async def _spans(client: PrefactorCoreClient, n: int) -> tuple[str, list[str]]:
    instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
    await instance.start()
    ids = []
    for i in range(n):
        async with instance.span("agent:step") as step:
            ids.append(step.id)
            await step.start({"i": i})
    await instance.finish()
    return instance.id, ids


async def test_the_start_up_probe_backs_off_at_most_max_probe_delay(server: LocalServer) -> None:
    """With the default 30 s retry cap, the probe of an API that is down still waits at
    most about 2 s between tries (not 1, 2, 4, 8, 16 ... s)."""
    transport = TestTransport(server.transport, plan=_failing("/api/v1/ping", 8))
    sleep = ControlledSleep(hold=False)
    async with _client(server, transport, sleep, startup_timeout=60) as client:
        assert len(sleep.delays) == 8
        assert max(sleep.delays) <= 2.0 * 1.25  # the cap, with jitter
        assert sum(sleep.delays[4:]) <= 4 * 2.5
        instance_id, ids = await _spans(client, 3)
    assert {row["id"] for row in await spans_of(server, instance_id)} == set(ids)


async def test_close_right_after_the_api_came_back_does_not_wait_for_the_probe(
    server: LocalServer,
) -> None:
    """The API was down at start-up and answers again while the probe waits; the agent
    finishes and closes: close() probes at once and delivers everything."""
    transport = TestTransport(server.transport, plan=_failing("/api/v1/ping", 1))
    sleep = ControlledSleep(hold=True)  # the probe's wait would never end by itself
    client = _client(server, transport, sleep, startup_timeout=0, close_timeout=5)
    await client.initialize()
    await sleep.requested.wait()
    instance_id, ids = await _spans(client, 50)
    await client.close()
    stats = client.statistics()
    assert stats.dropped == 0
    assert stats.sent == 2 * 50 + 3  # register, start, 50 creates and finishes, finish
    assert {row["id"] for row in await spans_of(server, instance_id)} == set(ids)


async def test_flush_cuts_a_delivery_backoff_short_and_then_backoff_is_normal_again(
    server: LocalServer,
) -> None:
    """A bulk request failed and delivery waits out a long backoff; the API is back; flush()
    retries at once and returns True. After the flush, a failure backs off normally."""
    transport = TestTransport(server.transport, plan=_failing("/api/v1/bulk", 1))
    sleep = ControlledSleep(hold=True)
    async with _client(
        server, transport, sleep, retry_delay_base=1000.0, max_retry_delay=3000.0
    ) as client:
        instance_id, ids = await _spans(client, 20)
        await sleep.requested.wait()  # delivery failed and is waiting 750-1250 s
        assert sleep.delays[-1] >= 750
        assert await client.flush(timeout=5) is True
        assert {row["id"] for row in await spans_of(server, instance_id)} == set(ids)
        transport.plan = _failing("/api/v1/bulk", 1)
        sleep.requested.clear()
        await _spans(client, 1)
        await sleep.requested.wait()
        assert sleep.delays[-1] >= 750  # urgency ended with the flush
        assert await client.flush(timeout=5) is True
        assert client.statistics().dropped == 0


async def test_flush_retries_at_short_intervals_until_its_deadline(server: LocalServer) -> None:
    """While the API stays down, a flush keeps trying at short intervals and returns
    False at its deadline; nothing is dropped."""
    transport = TestTransport(server.transport, plan=_failing("/api/v1/bulk", 10**9))
    sleep = ControlledSleep(hold=True)
    async with _client(
        server, transport, sleep, retry_delay_base=1000.0, close_timeout=0
    ) as client:
        await _spans(client, 5)
        await sleep.requested.wait()
        before = len(transport.requests)
        assert await client.flush(timeout=0.5) is False
        tries = len(transport.requests) - before
        assert tries >= 3
        assert all(delay <= URGENT_DELAY for delay in sleep.delays[1:])
        assert client.statistics().dropped == 0
