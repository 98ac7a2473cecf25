"""Load: many concurrent clients, the published SDK and ours, against one server process.

Each client is its own process running the same agent script (the public API is the
same) for a bounded time with concurrent tasks and nested spans, then closes. Every span
a client had acknowledged must be stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Record
from .support import PUBLISHED_PYTHON, PYTHON, TOKEN, ServerProcess, Tally, query

pytestmark = [pytest.mark.slow, pytest.mark.published]

SECONDS = 6.0
OURS = 3
PUBLISHED = 2

SCRIPT = r"""
import asyncio, json, sys, time

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_http.config import HttpClientConfig


async def main(api_url, token, seconds, name):
    ours = name.startswith("ours")
    registry = SchemaRegistry()
    registry.register_type("agent:step", params_schema={"type": "object"}, title="Step")
    registry.register_type("agent:tool", params_schema={"type": "object"}, title="Tool")
    extra = {"close_timeout": 120.0} if ours else {}  # drain everything at close
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token),
        schema_registry=registry,
        **extra,
    )
    client = PrefactorCoreClient(config)
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id="load-" + name, agent_version={"name": "Load " + name}
    )
    await instance.start()
    acknowledged, errors = [], []
    deadline = time.monotonic() + seconds

    async def task(t):
        for i in range(1_000_000):
            if time.monotonic() > deadline:
                return
            try:
                async with instance.span("agent:step") as step:
                    await step.start({"t": t, "i": i})
                    async with instance.span("agent:tool") as tool:
                        await tool.start({"tool": "x"})
                        await tool.complete({"ok": True})
                    await step.complete({"done": True})
                acknowledged.extend([step.id, tool.id])
            except Exception as error:
                errors.append(repr(error))
            await asyncio.sleep(0.005)  # the agent's own work between steps

    await asyncio.gather(*(task(t) for t in range(5)))
    await instance.finish()
    await client.close()
    # Ours: what close() could not deliver is counted as dropped, so not acknowledged.
    stats = client.statistics()._asdict() if ours else {"dropped": 0}
    print(json.dumps({"instance": instance.id, "ids": acknowledged, "errors": errors,
                      "dropped": stats["dropped"]}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
"""


@pytest.mark.timeout(180)
async def test_many_clients_ours_and_published(
    tmp_path: Path, server_process: ServerProcess, record: Record
) -> None:
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )
    await server_process.astart()
    script = tmp_path / "load_agent.py"
    script.write_text(SCRIPT)

    async def client(python: Path, name: str) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            str(python),
            str(script),
            server_process.url,
            TOKEN,
            str(SECONDS),
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 150)
        assert process.returncode == 0, f"{name}: {err.decode()[-3000:]}"
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        result["name"] = name
        return result

    results = await asyncio.gather(
        *(client(PYTHON, f"ours-{n}") for n in range(OURS)),
        *(client(PUBLISHED_PYTHON, f"published-{n}") for n in range(PUBLISHED)),
    )
    for sdk in ("ours", "published"):
        mine = [r for r in results if r["name"].startswith(sdk)]
        sent = duplicates = stored_count = errors = dropped = 0
        for result in mine:
            rows = query(
                server_process.db_path,
                "SELECT id FROM agent_spans WHERE agent_instance_id = ?",
                (result["instance"],),
            )
            stored = [row[0] for row in rows]
            ids = set(result["ids"])
            sent += len(ids)
            stored_count += len(ids & set(stored))
            duplicates += len(stored) - len(set(stored)) + len(result["ids"]) - len(ids)
            errors += len(result["errors"])
            dropped += result["dropped"]
        row = Tally(
            f"load: {len(mine)} {sdk} clients, {SECONDS:.0f} s",
            sent,
            stored_count,
            duplicates,
            errors,
            dropped=dropped,
            notes=f"{sent / SECONDS:.0f} spans/s acknowledged",
        )
        record(row)
        assert sent > 0
        assert row.stored == row.sent, row
        assert row.duplicates == 0, row
        assert row.agent_errors == 0, row
        assert row.dropped == 0, row
