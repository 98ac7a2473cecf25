"""The prefactor-core README's @trace and sync-client examples run as written (against a
real server on 127.0.0.1, in a fresh interpreter) and the server stores the whole tree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefactor_server.testing import LocalServer

from .test_sync_client import TOKEN, spans, stored

README = Path(__file__).parents[2] / "packages" / "prefactor-core" / "README.md"


def example(heading: str) -> str:
    """The first python block under ``heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, heading
    return match.group(1)


def run_example(code: str, server: LocalServer) -> str:
    code = code.replace("http://127.0.0.1:8000", server.api_url).replace("your-token", TOKEN)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def instances_of(server: LocalServer, agent_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = stored(server, "/api/v1/agent_instance", agent_id=agent_id)[
        "summaries"
    ]
    return rows


def test_trace_example(live: LocalServer) -> None:
    """The @trace example prints its answer and stores answer → (search, stream) spans."""
    output = run_example(example("## Tracing functions: `@trace`"), live)
    assert output.strip() == "It is 42."
    [instance] = instances_of(live, "my-agent")
    rows = {row["schema_name"]: row for row in spans(live, instance["id"])}
    assert set(rows) == {"__main__:answer", "agent:tool", "agent:llm"}
    root = rows["__main__:answer"]
    assert root["parent_span_id"] is None
    assert root["payload"] == {"question": "What is the answer?"}
    assert root["result_payload"] == {"output": "It is 42."}
    assert rows["agent:tool"]["parent_span_id"] == root["id"]
    assert rows["agent:tool"]["payload"] == {"query": "What is the answer?", "limit": 3}
    assert rows["agent:llm"]["parent_span_id"] == root["id"]
    assert rows["agent:llm"]["result_payload"] == {"output": "It is 42."}
    assert {row["status"] for row in rows.values()} == {"complete"}


def test_sync_client_example(live: LocalServer) -> None:
    """The sync-client example stores plan → lookup and a complete run."""
    run_example(example("## Synchronous code: `SyncPrefactorCoreClient`"), live)
    [instance] = instances_of(live, "weather")
    assert instance["status"] == "complete"
    rows = {row["schema_name"]: row for row in spans(live, instance["id"])}
    assert rows["agent:plan"]["result_payload"] == {"answer": 21}
    assert rows["agent:tool"]["parent_span_id"] == rows["agent:plan"]["id"]
    assert rows["agent:tool"]["result_payload"] == {"city": "Paris", "temperature": 21}


def test_thread_pool_example(live: LocalServer) -> None:
    """The thread-pool example stores both fetches under the crawl."""
    output = run_example(example("## Threads and thread pools"), live)
    assert output.strip() == "34"
    [instance] = instances_of(live, "crawler")
    rows = spans(live, instance["id"])
    [crawl] = [r for r in rows if r["schema_name"] == "agent:plan"]
    fetches = [r for r in rows if r["schema_name"] == "agent:tool"]
    assert sorted(r["payload"]["url"] for r in fetches) == [
        "https://a.example",
        "https://b.example",
    ]
    assert {r["parent_span_id"] for r in fetches} == {crawl["id"]}
    assert crawl["result_payload"] == {"output": 34}


def test_async_agent_with_the_sync_client_example(live: LocalServer) -> None:
    """The async agent using SyncPrefactorCoreClient stores its three spans and a complete
    run."""
    run_example(example("## An async agent: which client?"), live)
    [instance] = instances_of(live, "busy-loop")
    assert instance["status"] == "complete"
    rows = sorted(spans(live, instance["id"]), key=lambda row: row["payload"]["prompt"])
    assert [row["payload"] for row in rows] == [{"prompt": f"question {i}"} for i in range(3)]
    assert [row["result_payload"] for row in rows] == [
        {"response": f"answer {i}"} for i in range(3)
    ]
    assert {row["status"] for row in rows} == {"complete"}
