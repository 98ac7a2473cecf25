"""The published prefactor-core 0.5.3 / prefactor-http 0.4.3 against a real ``prefactor serve``.

The published packages live in ``.venv-published`` (made by ``scripts/published-venv``).
A script there runs a full lifecycle; the test terminates the instance halfway through,
the script waits until the published SDK has seen ``control``, and the test reads
everything back through the read API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_server.testing import serve_process

pytestmark = [pytest.mark.published, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"
PREFACTOR = Path(sys.executable).parent / "prefactor"
TOKEN = "compat-token-0123456789"

SCRIPT = r"""
import asyncio, json, sys

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_http.config import HttpClientConfig


def say(**message):
    print(json.dumps(message), flush=True)


async def main(api_url, token):
    registry = SchemaRegistry()
    registry.register_type(
        "agent:llm",
        params_schema={"type": "object", "properties": {"model": {"type": "string"},
                       "prompt": {"type": "string"}}, "required": ["model", "prompt"]},
        result_schema={"type": "object", "properties": {"response": {"type": "string"}}},
        title="LLM Call",
        template="{{model}}: {{prompt}} -> {{response}}",
    )
    registry.register_type("agent:retrieval", params_schema={"type": "object"}, title="Retrieval")
    registry.register_quality_schema(
        "accuracy", {"type": "object", "properties": {"score": {"type": "number"}}},
        template="Score {{score}}",
    )
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token), schema_registry=registry
    )
    client = PrefactorCoreClient(config)
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id="compat-agent", agent_version={"name": "Compat Agent", "external_identifier": "v1"}
    )
    await instance.start()
    async with instance.span("agent:llm") as llm:
        await llm.start({"model": "gpt-4", "prompt": "Hello"})
        async with instance.span("agent:retrieval") as retrieval:
            await retrieval.start({"query": "q"})
            await retrieval.complete({"documents": [], "count": 0})
        await llm.complete({"response": "Hi"})
    async with instance.span("agent:llm") as failing:
        await failing.start({"model": "gpt-4", "prompt": "again"})
        await failing.fail({"error": "rate limited"})
    async with instance.span("agent:retrieval") as unstarted:
        await unstarted.cancel()
    await instance.record_quality("accuracy", {"score": 0.9})
    say(instance_id=instance.id, llm=llm.id, retrieval=retrieval.id, failed=failing.id)

    # The test terminates the instance now, then tells us to go on.
    await asyncio.to_thread(sys.stdin.readline)
    monitor = client._termination_monitor
    async with instance.span("agent:retrieval") as late:
        await late.start({"query": "after terminate"})
        await late.complete({"documents": []})
    # The queued finish's response carries control; the SDK's monitor fires on it.
    await asyncio.wait_for(monitor.get_termination_event().wait(), 30)
    reason = monitor.termination_reason
    await instance.finish()  # 409 from the server; the published SDK treats it as success
    await client.close()
    say(terminated=True, reason=reason, late=late.id)


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture(name="served")
def fixture_served(database: str | Path) -> Iterator[str]:
    """A real ``prefactor serve`` subprocess on 127.0.0.1 (each backend); yields its URL."""
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )
    with serve_process(database, token=TOKEN) as url:
        yield url


def _get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{url}/api/v1/{path}", params=params, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_published_sdk_full_lifecycle(served: str, tmp_path: Path) -> None:
    """The published SDK runs a lifecycle, sees termination via control, and reads back right."""
    script = tmp_path / "lifecycle.py"
    script.write_text(SCRIPT)
    sdk = subprocess.Popen(
        [str(PUBLISHED_PYTHON), str(script), served, TOKEN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sdk.stdout is not None
        assert sdk.stdin is not None
        first_line = sdk.stdout.readline()
        if not first_line:
            pytest.fail(f"published SDK script failed: {sdk.communicate(timeout=10)[1]}")
        ids = json.loads(first_line)
        instance_id = ids["instance_id"]
        terminated = httpx.post(
            f"{served}/api/v1/agent_instance/{instance_id}/terminate",
            json={"reason": "compat test stop"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert terminated.status_code == 200, terminated.text
        sdk.stdin.write("go\n")
        sdk.stdin.flush()
        out, err = sdk.communicate(timeout=90)
        assert sdk.returncode == 0, err
        final = json.loads(out.strip().splitlines()[-1])
    finally:
        if sdk.poll() is None:
            sdk.kill()
            sdk.communicate()
    assert final["terminated"] is True
    assert final["reason"] == "compat test stop"

    instance = _get(served, f"agent_instance/{instance_id}")["details"]
    assert instance["status"] == "terminated"
    assert instance["termination_reason"] == "compat test stop"
    assert instance["agent_id"] == "compat-agent"
    assert instance["quality_payloads"] == {"accuracy": {"score": 0.9}}
    assert instance["quality_summaries"] == {"accuracy": "Score 0.9"}

    listing = _get(served, "agent_spans", agent_instance_id=instance_id, sorting="id")
    spans = {span["id"]: span for span in listing["summaries"]}
    assert len(spans) == 5
    llm = spans[ids["llm"]]
    assert llm["status"] == "complete"
    assert llm["schema_title"] == "LLM Call"
    assert llm["summary"] == "gpt-4: Hello -> Hi"
    retrieval = spans[ids["retrieval"]]
    assert retrieval["parent_span_id"] == ids["llm"]
    assert retrieval["status"] == "complete"
    assert retrieval["result_payload"] == {"documents": [], "count": 0}
    assert spans[ids["failed"]]["status"] == "failed"
    assert spans[ids["failed"]]["result_payload"] == {"error": "rate limited"}
    # The published SpanContext keeps its temporary id after cancel-before-start, so the
    # cancelled span is found by status rather than by the id the script saw.
    cancelled = [span for span in spans.values() if span["status"] == "cancelled"]
    assert len(cancelled) == 1
    assert cancelled[0]["schema_name"] == "agent:retrieval"
    assert cancelled[0]["started_at"] is None
    assert spans[final["late"]]["status"] == "complete"
    assert instance["span_counts"]["total"] == 5
    agents = _get(served, "agent")["summaries"]
    assert [agent["id"] for agent in agents] == ["compat-agent"]
