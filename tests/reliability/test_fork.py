"""A client used in a child after ``os.fork()`` refuses clearly and leaves the parent alone.

The fork happens in a separate agent process (a script), never in the test runner: the
child tries the client the parent made, reports what it got through a pipe and leaves
with ``os._exit``; the parent goes on recording spans, and everything it recorded, before
and after the fork, must be stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from .conftest import Record
from .support import PYTHON, TOKEN, ServerProcess, Tally, query

pytestmark = pytest.mark.slow

SCRIPT = r"""
import asyncio, json, os, sys

from prefactor_core import (
    ClientNotInitializedError, PrefactorCoreClient, PrefactorCoreConfig, QueueConfig,
    SchemaRegistry,
)
from prefactor_http import HttpClientConfig


def drive(coro):
    # Run a coroutine in the forked child without touching the parent's event loop:
    # it must raise (or finish) without ever suspending.
    try:
        coro.send(None)
    except StopIteration:
        return "returned"
    except BaseException as error:
        return f"{type(error).__name__}: {error}"
    coro.close()
    return "suspended (would have used the parent's event loop)"


async def main(api_url, token):
    registry = SchemaRegistry()
    registry.register_type(name="agent:step", params_schema={"type": "object"}, title="Step")
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token),
        queue_config=QueueConfig(retry_delay_base=0.05, max_retry_delay=1.0),
        schema_registry=registry,
    )
    client = PrefactorCoreClient(config)
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id="fork-agent", agent_version={"name": "Fork Agent"}
    )
    await instance.start()
    ids = []

    async def spans(n, tag):
        async def one(t):
            for i in range(n):
                async with instance.span("agent:step") as span:
                    ids.append(span.id)
                    await span.start({"tag": tag, "t": t, "i": i})
                    await span.complete({"ok": True})
        await asyncio.gather(*(one(t) for t in range(5)))

    await spans(100, "before")  # 500 spans, some still queued at the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        outcome = {}
        context = client.span(instance.id, "agent:step")

        async def use_span():
            async with context as span:
                await span.start({"tag": "child"})
                await span.complete({"ok": True})

        outcome["span"] = drive(use_span())
        outcome["create_span"] = drive(client.create_span(instance.id, "agent:step"))
        outcome["instance_span"] = drive(instance.create_span("agent:step"))
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        child = json.loads(pipe.read() or b"{}")
    await spans(100, "after")
    await instance.finish()
    await client.close()
    stats = client.statistics()._asdict()
    print(json.dumps({"instance": instance.id, "ids": ids, "child": child,
                      "child_status": status, "stats": stats}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.timeout(120)
async def test_client_refuses_in_a_forked_child(
    tmp_path: Path, server_process: ServerProcess, record: Record
) -> None:
    await server_process.astart()
    script = tmp_path / "fork_agent.py"
    script.write_text(SCRIPT)
    process = await asyncio.create_subprocess_exec(
        str(PYTHON),
        str(script),
        server_process.url,
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])

    assert result["child_status"] == 0
    for call, outcome in result["child"].items():
        assert outcome.startswith("ClientNotInitializedError"), (call, outcome)
        assert "os.fork()" in outcome, (call, outcome)

    rows = query(
        server_process.db_path,
        "SELECT id, status, payload FROM agent_spans WHERE agent_instance_id = ?",
        (result["instance"],),
    )
    ids = result["ids"]
    stored = {row[0] for row in rows}
    row = Tally(
        "parent of a fork",
        len(ids),
        len(stored & set(ids)),
        len(rows) - len(stored & set(ids)),
        0,
        unfinished=sum(1 for r in rows if r[1] != "complete"),
        dropped=result["stats"]["dropped"],
        notes="child refused: " + ", ".join(sorted(result["child"])),
    )
    record(row)
    assert len(ids) == 1000
    assert row.stored == row.sent
    assert row.duplicates == 0  # nothing of the child's reached the server
    assert not any('"child"' in r[2] for r in rows)
    assert row.unfinished == 0
    assert row.dropped == 0
