"""The durable spool: an agent process SIGKILLed mid-run loses nothing it had enqueued.

The first process records spans with ``spool_path`` while the server is unreachable (or
reachable through a proxy that loses 60% of answers after the server committed them, so
some of what is on disk is already stored), logs every span id once its context has
exited (its create and finish are enqueued), fsyncs the log, and is SIGKILLed. A second
process opens the same spool against the reachable server, flushes and closes. Every span
the first process had enqueued is then stored exactly once, finished.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from .conftest import Record
from .faultproxy import FaultProxy, FaultRates
from .support import (
    PYTHON,
    TOKEN,
    ServerProcess,
    Tally,
    free_port,
    idempotency_count,
    query,
)

pytestmark = pytest.mark.slow

_COMMON = r"""
import asyncio, json, os, sys

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig, SchemaRegistry
from prefactor_http import HttpClientConfig


def config(api_url, token, spool, close_timeout):
    registry = SchemaRegistry()
    for name in ("agent:step", "agent:tool"):
        registry.register_type(name=name, params_schema={"type": "object"}, title=name)
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(
            api_url=api_url, api_token=token, request_timeout=2.0, connect_timeout=1.0
        ),
        queue_config=QueueConfig(retry_delay_base=0.05, max_retry_delay=1.0),
        schema_registry=registry,
        spool_path=spool,
        startup_timeout=0.2,
        close_timeout=close_timeout,
    )
"""

AGENT = (
    _COMMON
    + r"""
async def main(api_url, token, spool, log_path, ready_after):
    client = PrefactorCoreClient(config(api_url, token, spool, 1.0))
    await client.initialize()
    log = open(log_path, "a")

    def note(line):
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())

    instance = await client.create_agent_instance(
        agent_id="spool-agent", agent_version={"name": "Spool Agent"}
    )
    await instance.start()
    note("instance " + instance.id)
    done = 0

    async def task(t):
        nonlocal done
        for i in range(100_000):
            async with instance.span("agent:step") as step:
                note("entered " + step.id)
                await step.start({"task": t, "i": i})
                await asyncio.sleep(0.005)  # the step's own work: its create goes out alone
                async with instance.span("agent:tool") as tool:
                    note("entered " + tool.id)
                    await tool.start({"tool": "x"})
                    await tool.complete({"ok": True})
                note("enqueued " + tool.id)
                await step.complete({"done": True})
            note("enqueued " + step.id)
            done += 2
            if done >= ready_after and done - 2 < ready_after:
                print("ready", flush=True)
            await asyncio.sleep(0)

    await asyncio.gather(*(task(t) for t in range(4)))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
"""
)

ONE_SPAN = (
    _COMMON
    + r"""
async def main(api_url, token, spool):
    client = PrefactorCoreClient(config(api_url, token, spool, 1.0))
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id="spool-agent", agent_version={"name": "Spool Agent"}
    )
    await instance.start()
    async with instance.span("agent:step") as step:
        await step.start({"i": 1})
        print(json.dumps({"instance": instance.id, "span": step.id}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the test says when to go on
        await step.complete({"done": True})
    print("enqueued", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # SIGKILLed while waiting here


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""
)

RECOVER = (
    _COMMON
    + r"""
async def main(api_url, token, spool):
    client = PrefactorCoreClient(config(api_url, token, spool, 60.0))
    await client.initialize()
    flushed = await client.flush(60)
    await client.close()
    print(json.dumps({"flushed": flushed, "stats": client.statistics()._asdict()}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""
)


_WRITES = ("/api/v1/bulk", "/api/v1/agent_spans", "/api/v1/agent_instance")


def _read_log(path: Path) -> tuple[list[str], set[str], set[str]]:
    instances: list[str] = []
    entered: set[str] = set()
    enqueued: set[str] = set()
    text = path.read_text()
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # torn by the kill
        kind, _, value = line.strip().partition(" ")
        if kind == "instance":
            instances.append(value)
        elif kind == "entered":
            entered.add(value)
        elif kind == "enqueued":
            enqueued.add(value)
    return instances, entered, enqueued


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "mode",
    [
        "unreachable",
        "lossy",
    ],
)
async def test_sigkilled_agent_loses_nothing_it_enqueued(
    mode: str, tmp_path: Path, server_process: ServerProcess, record: Record
) -> None:
    spool = tmp_path / "agent.spool"
    log = tmp_path / "agent.log"
    agent_py = tmp_path / "agent.py"
    recover_py = tmp_path / "recover.py"
    agent_py.write_text(AGENT)
    recover_py.write_text(RECOVER)
    await server_process.astart()

    async with FaultProxy(server_process.url, seed=11) as proxy:
        if mode == "unreachable":
            api_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        else:
            # Committed but unanswered, and slow: part of the spool is stored already.
            proxy.set_faults(FaultRates(rates={"lose_response": 0.6, "slow": 0.2}))
            api_url = proxy.url
        agent = await asyncio.create_subprocess_exec(
            str(PYTHON),
            str(agent_py),
            api_url,
            TOKEN,
            str(spool),
            str(log),
            "1500",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert agent.stdout is not None
        assert agent.stderr is not None
        try:
            line = await asyncio.wait_for(agent.stdout.readline(), 60)
        except TimeoutError:
            agent.kill()
            await agent.wait()
            pytest.fail("the agent never got going")
        if line.strip() != b"ready":
            await agent.wait()
            pytest.fail(f"agent failed: {(await agent.stderr.read()).decode()[-3000:]}")
        agent.send_signal(signal.SIGKILL)
        assert await agent.wait() == -signal.SIGKILL
        lost_before_kill = proxy.counts["lose_response"]

    instances, entered, enqueued = _read_log(log)
    assert len(instances) == 1
    assert len(enqueued) >= 1500
    if mode == "unreachable":
        assert query(server_process.db_path, "SELECT COUNT(*) FROM agent_spans") == [(0,)]
    else:
        assert lost_before_kill > 0

    recover = await asyncio.create_subprocess_exec(
        str(PYTHON),
        str(recover_py),
        server_process.url,
        TOKEN,
        str(spool),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(recover.communicate(), 120)
    assert recover.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])

    rows = query(
        server_process.db_path,
        "SELECT id, status FROM agent_spans WHERE agent_instance_id = ?",
        (instances[0],),
    )
    stored = dict(rows)
    extra = sum(1 for span_id in stored if span_id not in entered)
    row = Tally(
        f"spool, SIGKILL ({mode})",
        len(enqueued),
        sum(1 for span_id in enqueued if span_id in stored),
        len(rows) - len(stored) + extra,
        0 if result["flushed"] else 1,
        unfinished=sum(1 for span_id in enqueued if stored.get(span_id, "complete") != "complete"),
        dropped=result["stats"]["dropped"],
        notes=f"{len(entered) - len(enqueued)} in flight at the kill",
    )
    record(row)
    print(json.dumps(result), file=sys.stderr)
    assert result["flushed"], result
    assert row.stored == row.sent, f"{row.sent - row.stored} enqueued spans were lost"
    assert row.duplicates == 0
    assert row.unfinished == 0
    assert row.dropped == 0
    # The instance the first process registered and started is there, active.
    assert query(
        server_process.db_path, "SELECT status FROM agent_instances WHERE id = ?", (instances[0],)
    ) == [("active",)]
    # One create key per stored span: replays of committed creates were recognised.
    assert idempotency_count(server_process.db_path, "agent_spans/create") == len(rows)


@pytest.mark.timeout(120)
async def test_spooled_finish_of_a_create_the_server_already_stored(
    tmp_path: Path, server_process: ServerProcess
) -> None:
    """Deterministic: the create is stored (its answer lost), then the API fails, the finish
    is spooled, SIGKILL; the recovering process must still deliver the finish."""
    spool = tmp_path / "agent.spool"
    one_py = tmp_path / "one.py"
    recover_py = tmp_path / "recover.py"
    one_py.write_text(ONE_SPAN)
    recover_py.write_text(RECOVER)
    await server_process.astart()
    async with FaultProxy(server_process.url, seed=5) as proxy:
        # The server stores every write and answers none (ping still answers).
        proxy.set_faults(FaultRates(rates={"lose_response": 1.0}, paths=_WRITES))
        agent = await asyncio.create_subprocess_exec(
            str(PYTHON),
            str(one_py),
            proxy.url,
            TOKEN,
            str(spool),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert agent.stdin is not None
        assert agent.stdout is not None
        try:
            started = json.loads(await asyncio.wait_for(agent.stdout.readline(), 30))
            # Wait (bounded) for the server to have stored the create.
            for _ in range(600):
                rows = query(
                    server_process.db_path,
                    "SELECT status FROM agent_spans WHERE id = ?",
                    (started["span"],),
                )
                if rows:
                    break
                await asyncio.sleep(0.05)
            assert rows == [("active",)]
            # From now on no write reaches the server.
            proxy.set_faults(FaultRates(rates={"status_503": 1.0}, paths=_WRITES))
            agent.stdin.write(b"go\n")
            await agent.stdin.drain()
            assert (await asyncio.wait_for(agent.stdout.readline(), 30)).strip() == b"enqueued"
        finally:
            agent.send_signal(signal.SIGKILL)
            await agent.wait()
    recover = await asyncio.create_subprocess_exec(
        str(PYTHON),
        str(recover_py),
        server_process.url,
        TOKEN,
        str(spool),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(recover.communicate(), 90)
    assert recover.returncode == 0, err.decode()[-3000:]
    assert json.loads(out.decode().strip().splitlines()[-1])["flushed"]
    rows = query(
        server_process.db_path, "SELECT status FROM agent_spans WHERE id = ?", (started["span"],)
    )
    assert rows == [("complete",)], "the spooled finish never reached the server"
