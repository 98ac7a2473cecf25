"""Several ``prefactor serve`` processes on one PostgreSQL database, one killed mid-run.

Two server processes share the test's PostgreSQL database. Clients of both SDKs (ours
in this process, the published 0.5.3 from ``.venv-published`` in subprocesses) are spread
across them; once every client is under way, one server is SIGKILLed and restarted on
the same port. At the end every span a client was told is stored is stored exactly once,
and every instance is ``complete``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from prefactor_core import PrefactorCoreClient

from .support import TOKEN, AgentRun, ServerProcess, client_config, run_agent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.published,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"

# The published SDK's agent: RUNS instances of SPANS spans each, then prints what it made.
PUBLISHED_AGENT = r"""
import asyncio, json, sys

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_http.config import HttpClientConfig


async def main(api_url, token, runs, spans):
    registry = SchemaRegistry()
    registry.register_type("agent:step", params_schema={"type": "object"}, title="Step")
    http = HttpClientConfig(
        api_url=api_url, api_token=token, max_retries=10, initial_retry_delay=0.2,
        max_retry_delay=2.0,
    )
    client = PrefactorCoreClient(PrefactorCoreConfig(http_config=http, schema_registry=registry))
    await client.initialize()
    made = []
    for run in range(runs):
        instance = await client.create_agent_instance(
            agent_id="published-agent", agent_version={"name": "P", "external_identifier": "v1"}
        )
        await instance.start()
        ids = []
        for i in range(spans):
            async with instance.span("agent:step") as span:
                await span.start({"run": run, "i": i})
                await span.complete({"ok": True})
            ids.append(span.id)
        await instance.finish()
        made.append({"instance": instance.id, "spans": ids})
        if run == 0:
            print(json.dumps({"started": True}), flush=True)
    await client.close()
    print(json.dumps({"made": made}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def _published(url: str, runs: int, spans: int, started: asyncio.Event) -> Any:
    process = await asyncio.create_subprocess_exec(
        str(PUBLISHED_PYTHON),
        "-c",
        PUBLISHED_AGENT,
        url,
        TOKEN,
        str(runs),
        str(spans),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    result: Any = None
    async for line in process.stdout:
        message = json.loads(line)
        if message.get("started"):
            started.set()
        result = message.get("made", result)
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    return result


async def test_two_processes_one_killed(postgres_url: str, tmp_path: Path) -> None:
    """Every acknowledged span stored once, every instance complete, across a SIGKILL."""
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )
    servers = [ServerProcess(postgres_url, tmp_path / f"server-{n}.log") for n in range(2)]
    try:
        # Both start at once: the migrations and the local account are made once.
        for server in servers:
            server.spawn()
        await asyncio.gather(*(asyncio.to_thread(server.wait_ready) for server in servers))

        ours = [AgentRun() for _ in servers]
        clients = [PrefactorCoreClient(client_config(server.url)) for server in servers]
        for client in clients:
            await client.initialize()
        never = asyncio.Event()
        published_started = [asyncio.Event() for _ in servers]
        published = [
            asyncio.create_task(_published(server.url, 4, 15, started))
            for server, started in zip(servers, published_started, strict=True)
        ]
        agents = [
            asyncio.create_task(
                run_agent(
                    client, run, instances=3, tasks_per_instance=2, stop=never,
                    max_iterations=25, pace=0.01,
                )
            )
            for client, run in zip(clients, ours, strict=True)
        ]  # fmt: skip
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in published_started)), 120)
        with psycopg.connect(postgres_url) as conn:
            at_kill = conn.execute("SELECT count(*) FROM agent_spans").fetchone()
        servers[0].kill()
        await servers[0].astart()
        await asyncio.wait_for(asyncio.gather(*agents), 200)
        for client in clients:
            await client.close()
        made = await asyncio.wait_for(asyncio.gather(*published), 200)
    finally:
        for server in servers:
            server.stop()
    assert servers[0].starts == 2

    expected_spans = [span for run in ours for span in run.span_ids]
    expected_instances = [instance for run in ours for instance in run.instance_ids]
    for result in made:
        for run in result:
            expected_instances.append(run["instance"])
            expected_spans.extend(run["spans"])
    assert [run.errors for run in ours] == [[], []]

    with psycopg.connect(postgres_url) as conn:
        stored = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM agent_spans WHERE agent_instance_id = ANY(%s)",
                (expected_instances,),
            )
        ]
        statuses = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT id, status FROM agent_instances WHERE id = ANY(%s)",
                (expected_instances,),
            ).fetchall()
        )
        accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()
    duplicates = [span for span, count in Counter(stored).items() if count > 1]
    assert duplicates == []
    assert sorted(stored) == sorted(expected_spans)
    assert len(expected_spans) == 2 * 3 * 2 * 25 * 3 + 2 * 4 * 15
    assert statuses == dict.fromkeys(expected_instances, "complete")
    assert at_kill is not None
    assert at_kill[0] < len(expected_spans)  # the kill came while spans were still arriving
    assert accounts == (1,)
    print(f"{len(stored)} spans in {len(expected_instances)} instances", file=sys.stderr)
