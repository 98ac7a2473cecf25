"""The README's two OpenTelemetry examples run as written (URL and token substituted)
against a real server, and land as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from tests.otel.conftest import Served

from prefactor_core.otel._mapping import agent_id_for_service, instance_id_for_trace
from prefactor_core.otel._outbound import otel_trace_id
from prefactor_server.testing import LocalServer

README = Path(__file__).parents[2] / "README.md"


def readme_python(heading: str) -> str:
    """The first Python code block of a README section."""
    section = README.read_text(encoding="utf-8").split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_otlp_example_with_the_environment_variables(served: Served) -> None:
    """The OTLP example, configured only by OTEL_EXPORTER_OTLP_*, stores one run of the
    service with its LLM span's model and tokens."""
    code = readme_python("OpenTelemetry in: any OTel-instrumented agent")
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": served.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{served.token}",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    agent_id = agent_id_for_service("travel-agent")
    [instance] = served.get("/api/v1/agent_instance", agent_id=agent_id)["summaries"]
    assert instance["status"] == "complete"
    spans = {span["schema_name"]: span for span in served.spans(agent_instance_id=instance["id"])}
    assert spans["llm"]["payload"]["model"] == "gpt-4o"
    assert spans["llm"]["result_payload"]["usage"]["total_tokens"] == 19
    assert spans["llm"]["parent_span_id"] == spans["agent"]["id"]


async def test_span_processor_example(tmp_path: Path) -> None:
    """The PrefactorSpanProcessor example delivers its span as a run of its own."""
    code = readme_python("OpenTelemetry out of the agent: `PrefactorSpanProcessor`")
    async with LocalServer.run(tmp_path / "readme.db", token="readme-token-123") as server:
        namespace: dict[str, Any] = {}
        exec(
            code.replace("http://127.0.0.1:8000", server.api_url).replace(
                "your-token", "readme-token-123"
            ),
            namespace,
        )
        await namespace["main"]()
        async with httpx.AsyncClient(
            base_url=server.api_url, headers={"Authorization": "Bearer readme-token-123"}
        ) as http:
            listed = (await http.get("/api/v1/agent_spans")).json()["summaries"]
    assert [(span["schema_name"], span["payload"]["model"]) for span in listed] == [
        ("llm", "gpt-4o")
    ]


def test_mirror_example_exports_into_an_otlp_endpoint(served: Served) -> None:
    """The OtelSpanMirror example, its exporter pointed at the same server's OTLP
    endpoint: the run is stored twice, once as Prefactor delivered it and once as the OTel
    trace the mirror exported (root span named after the agent, the LLM span under it).
    Its service and agent are its own: the module's server is shared with the OTLP
    example, whatever order the tests run in."""
    code = readme_python("Prefactor spans in your OpenTelemetry backend: `OtelSpanMirror`")
    code = (
        code.replace("http://127.0.0.1:4318", served.url)
        .replace("http://127.0.0.1:8000", served.url)
        .replace("your-token", served.token)
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{served.token}"}
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport asyncio\nasyncio.run(main())\n"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [ours] = served.get("/api/v1/agent_instance", agent_id="weather-agent")["summaries"]
    mirrored = served.instance(instance_id_for_trace(format(otel_trace_id(ours["id"]), "032x")))
    assert mirrored["agent_id"] == agent_id_for_service("weather-agent")
    spans = {
        span["payload"]["name"]: span for span in served.spans(agent_instance_id=mirrored["id"])
    }
    assert set(spans) == {"Weather agent", "agent:llm"}
    assert spans["agent:llm"]["parent_span_id"] == spans["Weather agent"]["id"]
    assert spans["agent:llm"]["payload"]["model"] == "gpt-4o"
    assert spans["agent:llm"]["result_payload"]["usage"]["input_tokens"] == 9
    assert spans["agent:llm"]["payload"]["attributes"]["prefactor.agent_instance_id"] == ours["id"]
