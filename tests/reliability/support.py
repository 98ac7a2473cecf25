"""Helpers of the reliability suite: a real ``prefactor serve`` process, an agent workload
that counts what it did, and readers of what the server stored (straight from SQLite)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from prefactor_core import (
    PrefactorCoreClient,
    PrefactorCoreConfig,
    QueueConfig,
    SchemaRegistry,
)
from prefactor_http import HttpClientConfig

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFACTOR = BIN / "prefactor"
PYTHON = BIN / "python"
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"
TOKEN = "reliability-token-0123456789"
AGENT_VERSION = {"name": "Reliability Agent", "external_identifier": "v1"}
SPAN_TYPES = ("agent:step", "agent:llm", "agent:tool")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def registry() -> SchemaRegistry:
    """The span types of the workload."""
    reg = SchemaRegistry()
    for name in SPAN_TYPES:
        reg.register_type(name=name, params_schema={"type": "object"}, title=name)
    return reg


# -- the server as a real process ------------------------------------------------------


class ServerProcess:
    """``prefactor serve`` on 127.0.0.1:``port`` over ``db_path``; restartable on the same
    port and database.

    Args:
        db_path: The SQLite file, or a PostgreSQL URL (a str: a Path would fold its "//").
        port: The port (a free one when None).
        log_path: Where the server's output goes.
    """

    def __init__(self, db_path: Path | str, log_path: Path, port: int | None = None) -> None:
        self.db_path = db_path
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process without waiting for it to listen."""
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {**os.environ, "PREFACTOR_API_TOKEN": TOKEN}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(PREFACTOR),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db_path),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll ``/api/v1/ping`` until the process answers (bounded by ``timeout``)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {TOKEN}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/ping", headers=headers, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not come up in {timeout}s")

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Terminate the process (SIGKILL after 10 s) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# -- what the server stored ------------------------------------------------------------


def _connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)


def stored_spans(db_path: Path, instance_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(id, status) of every span row stored for the instances."""
    ids = list(instance_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    with closing(_connect(db_path)) as db:
        rows = db.execute(
            f"SELECT id, status FROM agent_spans WHERE agent_instance_id IN ({marks})", ids
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def idempotency_count(db_path: Path, action: str) -> int:
    """How many idempotency keys the server stored for ``action``: its rows, and for span
    creates the spans that stand for their key (``keyed_create``, see
    ``storage/sqlite/idempotency.py``)."""
    with closing(_connect(db_path)) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM idempotency WHERE action = ?", (action,)
        ).fetchone()
        if action == "agent_spans/create":
            (keyed,) = db.execute(
                "SELECT COUNT(*) FROM agent_spans WHERE keyed_create = 1"
            ).fetchone()
            count += keyed
    return int(count)


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query on the server's database."""
    with closing(_connect(db_path)) as db:
        return list(db.execute(sql, params).fetchall())


@dataclass
class Tally:
    """One row of the reliability table."""

    scenario: str
    sent: int
    stored: int
    duplicates: int
    agent_errors: int
    unfinished: int = 0
    dropped: int = 0
    notes: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.sent == self.stored
            and self.duplicates == 0
            and self.agent_errors == 0
            and self.unfinished == 0
            and self.dropped == 0
        )


def tally(
    scenario: str,
    db_path: Path,
    run: AgentRun,
    *,
    dropped: int = 0,
    notes: str = "",
) -> Tally:
    """Compare what the agent opened with what the server stored.

    Duplicates are rows beyond one per id, plus stored spans the agent never opened
    (a retry that created a second span under a new id would show up there).
    """
    rows = stored_spans(db_path, run.instance_ids)
    per_id = Counter(span_id for span_id, _ in rows)
    sent = set(run.span_ids)
    extra = sum(1 for span_id in per_id if span_id not in sent)
    duplicates = sum(n - 1 for n in per_id.values()) + extra
    stored = sum(1 for span_id in per_id if span_id in sent)
    unfinished = sum(1 for span_id, status in rows if span_id in sent and status != "complete")
    return Tally(
        scenario,
        len(run.span_ids),
        stored,
        duplicates,
        len(run.errors),
        unfinished=unfinished,
        dropped=dropped,
        notes=notes,
    )


# -- the agent ---------------------------------------------------------------------------


@dataclass
class AgentRun:
    """What the agent did: instances and spans it opened, and errors raised into it."""

    instance_ids: list[str] = field(default_factory=list)
    span_ids: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def client_config(
    api_url: str,
    *,
    spool_path: Path | None = None,
    request_timeout: float = 2.0,
    close_timeout: float = 60.0,
    token: str = TOKEN,
) -> PrefactorCoreConfig:
    """Our SDK with small backoff (configuration, not sleeping) and a short timeout."""
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(
            api_url=api_url,
            api_token=token,
            request_timeout=request_timeout,
            connect_timeout=1.0,
        ),
        queue_config=QueueConfig(retry_delay_base=0.05, max_retry_delay=1.0, batch_size=500),
        schema_registry=registry(),
        close_timeout=close_timeout,
        startup_timeout=0.5,
        spool_path=spool_path,
    )


async def run_agent(
    client: PrefactorCoreClient,
    run: AgentRun,
    *,
    instances: int,
    tasks_per_instance: int,
    stop: asyncio.Event,
    max_iterations: int,
    pace: float = 0.0,
) -> None:
    """Agent work: each task loops (until ``stop`` or ``max_iterations``) over a step span
    holding an LLM span holding a tool span. ``pace`` is the simulated work between steps.

    Every exception raised by the SDK into this code is recorded in ``run.errors``; the
    agent carries on.
    """

    async def one_instance(n: int) -> None:
        try:
            instance = await client.create_agent_instance(
                agent_id="reliability", agent_version=AGENT_VERSION
            )
            run.instance_ids.append(instance.id)
            await instance.start()
        except Exception as error:
            run.errors.append(error)
            return

        async def task(t: int) -> None:
            for i in range(max_iterations):
                if stop.is_set():
                    return
                try:
                    async with instance.span("agent:step") as step:
                        run.span_ids.append(step.id)
                        await step.start({"instance": n, "task": t, "i": i})
                        async with instance.span("agent:llm") as llm:
                            run.span_ids.append(llm.id)
                            await llm.start({"prompt": f"step {i}"})
                            async with instance.span("agent:tool") as tool:
                                run.span_ids.append(tool.id)
                                await tool.start({"tool": "search"})
                                await tool.complete({"hits": i % 7})
                            await llm.complete({"response": "ok"})
                        await step.complete({"done": True})
                except Exception as error:
                    run.errors.append(error)
                await asyncio.sleep(pace)

        await asyncio.gather(*(task(t) for t in range(tasks_per_instance)))
        try:
            await instance.finish()
        except Exception as error:
            run.errors.append(error)

    await asyncio.gather(*(one_instance(n) for n in range(instances)))
