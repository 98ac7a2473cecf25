"""A token revoked mid-run: the failure is latched, raised where the seeds say, and counted."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import Any

import pytest

from prefactor_core import PrefactorCoreClient, PrefactorTelemetryFailureError
from prefactor_http.exceptions import PrefactorApiError

from .support import (
    AGENT_VERSION,
    PREFACTOR,
    ServerProcess,
    client_config,
    query,
)

pytestmark = pytest.mark.slow


def _revoke_all_tokens(server: ServerProcess) -> None:
    """``prefactor token revoke`` every active token of the running server's database."""
    rows = query(server.db_path, "SELECT id FROM tokens WHERE revoked_at IS NULL")
    assert rows, "no token to revoke"
    for (token_id,) in rows:
        subprocess.run(
            [str(PREFACTOR), "token", "revoke", token_id, "--db", str(server.db_path)],
            check=True,
            capture_output=True,
            timeout=30,
        )


async def _spans(instance: object, n: int, made: list[str]) -> None:
    for i in range(n):
        async with instance.span("agent:step") as span:  # type: ignore[attr-defined]
            made.append(span.id)
            await span.start({"i": i})
            await span.complete({"ok": True})


async def _revoked_run(
    server: ServerProcess, *, spans_before: int, spans_after: int
) -> tuple[PrefactorCoreClient, Any, list[str]]:
    """Record spans, flush, revoke the token, record more spans (not flushed)."""
    await server.astart()
    client = PrefactorCoreClient(client_config(server.url))
    await client.initialize()
    instance = await client.create_agent_instance(agent_id="revoked", agent_version=AGENT_VERSION)
    await instance.start()
    before: list[str] = []
    await _spans(instance, spans_before, before)
    assert await client.flush(30)
    assert client.statistics().dropped == 0
    await asyncio.to_thread(_revoke_all_tokens, server)
    after: list[str] = []
    await _spans(instance, spans_after, after)  # nothing raised into the agent yet
    return client, instance, before


async def _close_quietly(client: PrefactorCoreClient) -> None:
    with contextlib.suppress(PrefactorTelemetryFailureError):
        await client.close()


@pytest.mark.timeout(120)
async def test_revoked_token_latches_the_failure_at_the_next_span(
    server_process: ServerProcess,
) -> None:
    client, instance, before = await _revoked_run(server_process, spans_before=300, spans_after=100)
    try:
        sent_before = client.statistics().sent
        # The first delivery after the revocation gets 401 and latches the failure;
        # flush() returns once the engine has dropped what was queued.
        assert await client.flush(30)
        stats = client.statistics()
        assert stats.dropped > 0, stats
        assert stats.sent == sent_before  # nothing was delivered after the revocation

        with pytest.raises(PrefactorTelemetryFailureError) as raised:
            instance.span("agent:step")
        error = raised.value
        assert isinstance(error.cause, PrefactorApiError)
        assert error.cause.status_code == 401
        assert error.dropped_operations > 0
        assert "dropped operations" in str(error)
        # Latched: every later call that would queue work raises it too.
        with pytest.raises(PrefactorTelemetryFailureError):
            await client.create_agent_instance(agent_id="revoked", agent_version=AGENT_VERSION)
        with pytest.raises(PrefactorTelemetryFailureError):
            client.span(instance.id, "agent:step")
        # Seen already: close() does not raise it again.
        await client.close()
    finally:
        await _close_quietly(client)
    stored = {
        row[0]
        for row in query(
            server_process.db_path,
            "SELECT id FROM agent_spans WHERE agent_instance_id = ?",
            (instance.id,),
        )
    }
    assert stored == set(before)


@pytest.mark.timeout(120)
async def test_unseen_failure_is_raised_by_close(server_process: ServerProcess) -> None:
    client, instance, _ = await _revoked_run(server_process, spans_before=10, spans_after=50)
    try:
        await instance.finish()
        with pytest.raises(PrefactorTelemetryFailureError) as raised:
            await client.close()
        assert raised.value.dropped_operations > 0
        assert client.statistics().dropped > 0
    finally:
        await _close_quietly(client)


@pytest.mark.timeout(120)
async def test_dropped_counts_every_operation_the_agent_queued(
    server_process: ServerProcess,
) -> None:
    client, _, _ = await _revoked_run(server_process, spans_before=10, spans_after=100)
    try:
        assert await client.flush(30)
        # 100 spans, each a create and a finish: 200 operations were lost.
        assert client.statistics().dropped >= 200, client.statistics()
    finally:
        await _close_quietly(client)


@pytest.mark.timeout(120)
async def test_failure_error_counts_the_failed_batch(server_process: ServerProcess) -> None:
    client, instance, _ = await _revoked_run(server_process, spans_before=10, spans_after=50)
    try:
        await instance.finish()
        with pytest.raises(PrefactorTelemetryFailureError) as raised:
            await client.close()
        # 50 spans (at least one operation each, merged) and the instance finish.
        assert raised.value.dropped_operations >= 51, raised.value
    finally:
        await _close_quietly(client)
