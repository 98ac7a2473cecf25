"""What the platform's operators do, for the adapter scenarios: terminate a run.

Imported by the scenario scripts, which run under both our interpreter and
``.venv-published`` (so it uses only httpx and the public SDK surface).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def terminate_and_wait(
    api_url: str,
    token: str,
    client: Any,
    instance: Any,
    reason: str,
    probe: tuple[str, dict[str, Any], dict[str, Any]],
) -> str | None:
    """Terminate ``instance`` through the API, then wait until ``client``'s termination
    monitor fires; return the reason it reports.

    ``probe`` (span type, params, result) is a span sent after the terminate: its
    response carries the ``control`` field that tells the SDK, on either core.
    """
    # An operator can only terminate a run the platform has seen. Our core registers in
    # the background, so let it deliver what it queued first; the published core's
    # register was a request the agent awaited (it has no flush).
    flush = getattr(client, "flush", None)
    if flush is not None:
        assert await flush(timeout=30), "the run was not delivered before the terminate"
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{api_url}/api/v1/agent_instance/{instance.id}/terminate",
            json={"reason": reason},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
    schema_name, params, result = probe
    async with instance.span(schema_name) as span:
        await span.start(params)
        await span.complete(result)
    monitor = client._termination_monitor
    await asyncio.wait_for(monitor.get_termination_event().wait(), 30)
    reason_seen: str | None = monitor.termination_reason
    return reason_seen
