"""SyncPrefactorCoreClient against a real uvicorn server on 127.0.0.1: threads, @trace,
a running event loop, flush, exit in a subprocess, and fork."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_core import (
    ClientNotInitializedError,
    PrefactorCoreConfig,
    QueueConfig,
    SyncPrefactorCoreClient,
    trace,
)
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, LIVE_TOKEN, make_registry

TOKEN = LIVE_TOKEN


def config_for(server: LocalServer, **queue: Any) -> PrefactorCoreConfig:
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=server.api_url, api_token=TOKEN),
        queue_config=QueueConfig(**queue),
        schema_registry=make_registry(),
        close_timeout=10.0,
    )


def stored(server: LocalServer, path: str, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    query = {**params, "pagination[page_size]": "100"}
    response = httpx.get(f"{server.api_url}{path}", params=query, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def spans(server: LocalServer, instance_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = stored(
        server, "/api/v1/agent_spans", agent_instance_id=instance_id
    )["summaries"]
    return rows


def instance_status(server: LocalServer, instance_id: str) -> str:
    status: str = stored(server, f"/api/v1/agent_instance/{instance_id}")["details"]["status"]
    return status


@trace("agent:tool")
def lookup(key: str) -> str:
    return key.upper()


def test_spans_from_many_threads_are_all_stored(live: LocalServer) -> None:
    """Hand-written spans and @trace calls from eight threads at once all reach the server
    complete, nested under their thread's span."""
    with SyncPrefactorCoreClient(config_for(live)) as client:
        with client.create_agent_instance(agent_id="sync", agent_version=AGENT_VERSION) as run:
            run.start()

            def work(n: int) -> None:
                with run.span("agent:step") as step:
                    step.start({"n": n})
                    for i in range(5):
                        lookup(f"k{n}-{i}")
                    step.complete({"done": n})

            threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert client.flush(30)
    rows = spans(live, run.id)
    steps = [r for r in rows if r["schema_name"] == "agent:step"]
    tools = [r for r in rows if r["schema_name"] == "agent:tool"]
    assert len(steps) == 8
    assert len(tools) == 40
    step_of = {r["payload"]["n"]: r["id"] for r in steps}
    for tool in tools:
        n = int(tool["payload"]["key"][1:].split("-")[0])
        assert tool["parent_span_id"] == step_of[n]
        assert tool["result_payload"] == {"output": tool["payload"]["key"].upper()}
    assert {r["status"] for r in rows} == {"complete"}
    assert instance_status(live, run.id) == "complete"


def test_span_lifecycle_methods(live: LocalServer) -> None:
    """start/set_result/complete, fail, cancel before start, and an exception in the block."""
    with SyncPrefactorCoreClient(config_for(live)) as client:
        run = client.create_agent_instance(agent_id="sync", agent_version=AGENT_VERSION)
        run.start()
        with run.span("agent:llm") as ok:
            ok.start({"model": "m", "prompt": "p"})
            ok.set_result({"response": "r"})
            ok.complete()
        with run.span("agent:tool") as failed:
            failed.start({})
            failed.fail({"error": "nope"})
        with run.span("agent:tool") as cancelled:
            cancelled.cancel()
        with pytest.raises(RuntimeError), run.span("agent:plan") as raised:
            raise RuntimeError("inside")
        run.finish()
    rows = {r["id"]: r for r in spans(live, run.id)}
    assert rows[ok.id]["status"] == "complete"
    assert rows[ok.id]["result_payload"] == {"response": "r"}
    assert rows[failed.id]["status"] == "failed"
    assert rows[cancelled.id]["status"] == "cancelled"
    assert rows[raised.id]["status"] == "failed"
    assert rows[raised.id]["result_payload"]["error"]["type"] == "RuntimeError"
    assert instance_status(live, run.id) == "complete"


async def test_works_inside_a_running_event_loop(live: LocalServer) -> None:
    """Called from a coroutine (the caller's loop is running on this thread), the sync
    client opens, records, flushes and closes without deadlock."""
    # Every wait here is bounded by the client itself (startup, flush, close timeouts).
    await asyncio.sleep(0)
    client = SyncPrefactorCoreClient(config_for(live))
    client.open()
    with client.create_agent_instance(agent_id="in-loop", agent_version=AGENT_VERSION) as run:
        run.start()
        assert lookup("x") == "X"
    assert client.flush(30)
    client.close()
    [row] = spans(live, run.id)
    assert row["status"] == "complete"


def test_flush_timeout_and_closed_client(live: LocalServer) -> None:
    """flush returns True once delivered; a closed client refuses with a clear error."""
    client = SyncPrefactorCoreClient(config_for(live))
    with pytest.raises(ClientNotInitializedError):
        client.create_agent_instance(agent_id="x", agent_version=AGENT_VERSION)
    client.open()
    run = client.create_agent_instance(agent_id="x", agent_version=AGENT_VERSION)
    run.start()
    assert client.flush(30) is True
    assert client.statistics().sent >= 2
    assert instance_status(live, run.id) == "active"
    client.close()
    client.close()
    with pytest.raises(ClientNotInitializedError):
        client.flush()
    assert instance_status(live, run.id) == "failed"  # left open: finished at close


AGENT_SCRIPT = """
import sys
from prefactor_core import PrefactorCoreConfig, SyncPrefactorCoreClient, trace
from prefactor_http import HttpClientConfig

@trace("agent:tool")
def step(i):
    return i * i

config = PrefactorCoreConfig(
    http_config=HttpClientConfig(api_url=sys.argv[1], api_token=sys.argv[2]),
    close_timeout=10.0,
)
client = SyncPrefactorCoreClient(config)
client.open()
run = client.create_agent_instance(agent_id="exit", agent_version={"name": "exit"})
run.start()
for i in range(50):
    step(i)
run.finish()
print(run.id, flush=True)
# No close(), no flush(): the atexit hook delivers.
"""


def test_delivers_at_interpreter_exit(live: LocalServer, tmp_path: Path) -> None:
    """A script that never closes its client still has every span stored at exit."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), live.api_url, TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    instance_id = done.stdout.strip()
    rows = spans(live, instance_id)
    assert sorted(r["payload"]["i"] for r in rows) == list(range(50))
    assert {r["status"] for r in rows} == {"complete"}
    assert instance_status(live, instance_id) == "complete"


CHILD_EXIT_OK = 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_forked_child_gets_a_working_client(live: LocalServer) -> None:
    """After fork the child records through a fresh engine (its runs are stored), and an
    instance opened before the fork refuses with a clear error instead of hanging."""
    client = SyncPrefactorCoreClient(config_for(live))
    client.open()
    parent_run = client.create_agent_instance(agent_id="parent", agent_version=AGENT_VERSION)
    parent_run.start()
    assert client.flush(30)
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python warns that forking a process with threads may deadlock the child; the
        # point of the test is that ours does not.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read)
            try:
                parent_run.span("agent:tool").__enter__().start({})
                message = "no error"
            except ClientNotInitializedError as error:
                message = str(error)
            with client.create_agent_instance(agent_id="child", agent_version=AGENT_VERSION) as run:
                run.start()
                lookup("from-child")
            assert client.flush(30)
            client.close()
            os.write(write, f"{run.id}\n{message}".encode())
            code = CHILD_EXIT_OK
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CHILD_EXIT_OK, output
    child_id, message = output.split("\n", 1)
    assert "fork" in message
    [row] = spans(live, child_id)
    assert row["payload"] == {"key": "from-child"}
    assert instance_status(live, child_id) == "complete"
    with parent_run.span("agent:tool") as span:  # the parent's client still works
        span.start({})
    parent_run.finish()
    client.close()
    assert [r["id"] for r in spans(live, parent_run.id)] == [span.id]


@trace("agent:llm")
async def ask(prompt: str) -> str:
    await asyncio.sleep(0)
    return prompt[::-1]


@trace("agent:retrieval")
async def chunks(n: int) -> Any:
    for i in range(n):
        yield i


def test_async_code_inside_a_sync_instance(live: LocalServer) -> None:
    """asyncio.run inside a sync client's instance: decorated coroutines and async
    generators record into it, nested under the current span."""

    async def agent() -> list[int]:
        assert await ask("abc") == "cba"
        return [i async for i in chunks(3)]

    with SyncPrefactorCoreClient(config_for(live)) as client:
        with client.create_agent_instance(agent_id="mixed", agent_version=AGENT_VERSION) as run:
            run.start()
            with run.span("agent:step") as step:
                step.start({})
                assert asyncio.run(agent()) == [0, 1, 2]
        assert client.flush(30)
    rows = {r["schema_name"]: r for r in spans(live, run.id)}
    assert rows["agent:llm"]["parent_span_id"] == step.id
    assert rows["agent:llm"]["result_payload"] == {"output": "cba"}
    assert rows["agent:retrieval"]["parent_span_id"] == step.id
    assert rows["agent:retrieval"]["result_payload"] == {"output": [0, 1, 2]}


DOWN_SCRIPT = """
import sys
from prefactor_core import PrefactorCoreConfig, SyncPrefactorCoreClient, trace
from prefactor_http import HttpClientConfig

@trace("agent:tool")
def step(i):
    return i

config = PrefactorCoreConfig(
    http_config=HttpClientConfig(api_url=sys.argv[1], api_token="t"),
    startup_timeout=0.2,
    close_timeout=0.5,
)
client = SyncPrefactorCoreClient(config)
client.open()
with client.create_agent_instance(agent_id="down", agent_version={"name": "down"}) as run:
    run.start()
    print(step(7), flush=True)
"""


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago) on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_exit_is_not_held_up_by_an_api_that_is_down(tmp_path: Path) -> None:
    """With nothing listening, the agent runs, and the process still exits by itself."""
    script = tmp_path / "agent.py"
    script.write_text(DOWN_SCRIPT)
    closed = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, str(script), closed],
        capture_output=True,
        text=True,
        timeout=60,  # a guard against a hang, not a measurement
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_forked_child_with_a_spool_gets_a_clear_error(live: LocalServer, tmp_path: Path) -> None:
    """A spool belongs to the parent: the child's first call says so instead of hanging."""
    config = config_for(live).model_copy(update={"spool_path": str(tmp_path / "agent.spool")})
    client = SyncPrefactorCoreClient(config)
    client.open()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            try:
                client.create_agent_instance(agent_id="child", agent_version=AGENT_VERSION)
                message = "no error"
            except ClientNotInitializedError as error:
                message = str(error)
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    client.close()
    assert "spool" in message
    assert "fork" in message


class GatedTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the server, each request held until ``gate`` is set (a thread event,
    so the test thread opens it while the engine's loop waits)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.to_thread(self.gate.wait)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_flush_reports_a_timeout_and_then_delivers(live: LocalServer) -> None:
    """While the API does not answer, flush(timeout) returns False (the caller is not held
    beyond it); once it answers, flush() returns True and the run is stored."""
    transport = GatedTransport()
    config = config_for(live).model_copy(update={"startup_timeout": 0.1})
    client = SyncPrefactorCoreClient(config, transport=transport)
    try:
        client.open()  # does not wait past startup_timeout for the held ping
        run = client.create_agent_instance(agent_id="gated", agent_version=AGENT_VERSION)
        run.start()
        assert lookup("held") == "HELD"
        assert client.flush(0.2) is False
        transport.gate.set()
        assert client.flush(30) is True
        run.finish()
        assert client.flush(30) is True
    finally:
        transport.gate.set()
        client.close()
    assert instance_status(live, run.id) == "complete"
    [row] = spans(live, run.id)
    assert row["payload"] == {"key": "held"}


def test_published_argument_order_is_accepted(live: LocalServer) -> None:
    """The sync client shares the async one's reading of the published 0.5 order
    ``(agent_version, agent_schema_version, agent_id)``."""
    schema = {
        "external_identifier": "sync-positional",
        "span_schemas": {"agent:step": {"type": "object"}},
    }
    with SyncPrefactorCoreClient(config_for(live)) as client:
        run = client.create_agent_instance(  # type: ignore[arg-type]
            {"name": "Positional"}, schema, "sync-positional-agent"
        )
        run.start()
        run.finish()
        assert client.flush(10.0)
    stored_instance = stored(live, f"/api/v1/agent_instance/{run.id}")["details"]
    assert stored_instance["agent_id"] == "sync-positional-agent"
    assert stored_instance["status"] == "complete"
