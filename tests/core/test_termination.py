"""Termination end to end: the platform terminates an instance, the SDK learns it (from
a span response's ``control`` field, or by polling), the termination monitor fires, and
the next span of that run raises ``PrefactorTerminatedError``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from prefactor_core import PrefactorTerminatedError, TerminationMonitor
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import read_one, spans_of

pytestmark = pytest.mark.timeout(30)


async def _terminate(server: LocalServer, instance_id: str, reason: str) -> None:
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        response = await http.post(
            f"/api/v1/agent_instance/{instance_id}/terminate",
            json={"reason": reason},
            headers={"Authorization": f"Bearer {server.token}"},
        )
    assert response.status_code == 200, response.text


def _monitor(client: object) -> TerminationMonitor:
    monitor = client._termination_monitor  # type: ignore[attr-defined]
    assert isinstance(monitor, TerminationMonitor)
    return monitor


async def test_control_field_fires_the_monitor_and_stops_new_spans(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Span traffic after a terminate brings ``control``; the event is set with the
    reason, new spans of the run raise, and the run still finishes cleanly."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        await instance.start()
        assert await client.flush(10)
        monitor = _monitor(client)
        fired: list[bool] = []
        monitor.subscribe(lambda: fired.append(True))
        await _terminate(server, instance.id, "runaway loop")

        async with instance.span("agent:tool") as late:
            await late.start({"step": 1})
            await late.complete({"ok": True})
        assert await client.flush(10)

        assert monitor.get_termination_event().is_set()
        assert monitor.termination_reason == "runaway loop"
        assert fired == [True]
        assert instance.termination_reason == "runaway loop"
        with pytest.raises(PrefactorTerminatedError) as caught:
            instance.span("agent:tool")
        assert caught.value.reason == "runaway loop"
        assert "runaway loop" in str(caught.value)
        with pytest.raises(PrefactorTerminatedError):
            await instance.create_span("agent:tool")
        await instance.finish()  # 409 from the server: taken as done, not a failure
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert stored["status"] == "terminated"
    assert stored["termination_reason"] == "runaway loop"


async def test_poll_finds_a_termination_without_span_traffic(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A run that sends nothing learns of its termination from the status poll."""
    async with make_client(termination_poll_interval=0.05) as client:
        instance = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        await instance.start()
        assert await client.flush(10)
        await _terminate(server, instance.id, "ops stop")
        event = _monitor(client).get_termination_event()
        await asyncio.wait_for(event.wait(), 10)
        assert _monitor(client).termination_reason == "ops stop"
        with pytest.raises(PrefactorTerminatedError, match="ops stop"):
            instance.span("agent:tool")
        await instance.finish()


async def test_finishing_a_run_resets_the_monitor_for_the_next(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """After ``finish()`` the monitor has a fresh event, and a late ``control`` for the
    old run does not fire it; the next run's spans work."""
    async with make_client() as client:
        first = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        await first.start()
        assert await client.flush(10)
        await _terminate(server, first.id, "first run stopped")
        async with first.span("agent:tool") as span:
            await span.complete({})
        assert await client.flush(10)
        old_event = _monitor(client).get_termination_event()
        assert old_event.is_set()
        await first.finish()

        second = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        monitor = _monitor(client)
        assert monitor.get_termination_event() is not old_event
        assert not monitor.get_termination_event().is_set()
        assert monitor.termination_reason is None
        client._on_control(first.id, "late echo of the first run")
        assert not monitor.get_termination_event().is_set()
        await second.start()
        async with second.span("agent:tool") as span:
            await span.complete({"ok": True})
        await second.finish()
        assert await client.flush(10)
    stored = await read_one(server, f"/api/v1/agent_instance/{second.id}")
    assert stored["status"] == "complete"


async def test_a_terminated_run_does_not_stop_another(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Termination is per instance: another open run of the same client goes on."""
    async with make_client() as client:
        doomed = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        other = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        await doomed.start()
        await other.start()
        assert await client.flush(10)
        await _terminate(server, doomed.id, "only this one")
        async with doomed.span("agent:tool") as span:
            await span.complete({})
        assert await client.flush(10)
        with pytest.raises(PrefactorTerminatedError):
            doomed.span("agent:tool")
        assert doomed.termination_reason == "only this one"
        assert other.termination_reason is None
        # The monitor follows the newest run (``other``), as the published one does.
        assert not _monitor(client).get_termination_event().is_set()
        async with other.span("agent:tool") as span:
            await span.complete({"ok": True})
        await doomed.finish()
        await other.finish()
    stored = await read_one(server, f"/api/v1/agent_instance/{other.id}")
    assert stored["status"] == "complete"


async def test_monitor_fires_once_and_not_after_destroy() -> None:
    """The monitor's own rules: one firing per run; nothing after ``destroy``."""

    async def never(_: str) -> object:
        raise AssertionError("no poll expected")

    monitor = TerminationMonitor(never, poll_interval=3600)
    monitor.sync("run-1")
    calls: list[int] = []
    unsubscribe = monitor.subscribe(lambda: calls.append(1))
    monitor.detect_termination("first")
    monitor.detect_termination("second")
    assert monitor.termination_reason == "first"
    assert calls == [1]
    unsubscribe()
    monitor.reset()
    monitor.detect_termination("between runs")  # fenced until the next sync
    assert not monitor.get_termination_event().is_set()
    monitor.sync("run-2")
    monitor.destroy()
    monitor.detect_termination("after destroy")
    assert not monitor.get_termination_event().is_set()


async def test_a_client_driven_by_an_adapter_leaves_stopping_to_it(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """With an adapter's SDK entry, the monitor fires but new spans are still recorded:
    the adapter stops the agent at its next hook and records the work done before."""
    client = make_client()
    client._set_sdk_header_entry("prefactor-langchain@0.3.0")
    async with client:
        instance = await client.create_agent_instance(agent_id="agent", agent_version=AGENT_VERSION)
        await instance.start()
        assert await client.flush(10)
        await _terminate(server, instance.id, "adapter decides")
        async with instance.span("agent:tool") as first:
            await first.complete({"step": 1})
        assert await client.flush(10)
        assert _monitor(client).get_termination_event().is_set()
        async with instance.span("agent:tool") as after:  # no PrefactorTerminatedError
            await after.complete({"step": 2})
        await instance.finish()
    spans = await spans_of(server, instance.id)
    assert sorted(span["result_payload"]["step"] for span in spans) == [1, 2]
