"""Replay the recorded published-SDK session (wire spec Appendix C) against the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

RECORDING = Path("/work/shared/spec/published-sdk-0.5.3-requests.jsonl")
INSTANCE = "00e7e7fd-1a68-4102-9116-9d6884bf9729"
# The recorded server's span ids, in the order the spans were created.
SPANS = [
    "96ab5807-14b2-425e-afe6-0a95ce565cf8",
    "c62e2601-4335-4cc7-8334-f3fea79b740f",
    "c8f11898-0bd1-461f-9797-d716af8ec006",
    "399205f8-4faa-46ef-b9f9-a66dc1b9c855",
]


@pytest.fixture(name="recording")
def fixture_recording() -> list[dict[str, Any]]:
    """The recorded requests, one dict per line."""
    if not RECORDING.exists():
        pytest.skip(f"{RECORDING} is not available here")
    return [json.loads(line) for line in RECORDING.read_text().splitlines() if line.strip()]


async def test_recorded_session_is_accepted(
    client: httpx.AsyncClient, recording: list[dict[str, Any]]
) -> None:
    """Every recorded request succeeds, even the instance finish before the last span finish."""
    lines = recording
    ids: dict[str, str] = {}
    created = 0
    for line in lines:
        raw = json.dumps({"path": line["path"], "body": line["body"]})
        for recorded, ours in ids.items():
            raw = raw.replace(recorded, ours)
        request = json.loads(raw)
        response = await client.request(line["method"], request["path"], json=request["body"])
        assert response.status_code < 300, (line["path"], response.text)
        if line["path"].endswith("/register"):
            ids[INSTANCE] = response.json()["details"]["id"]
        elif line["path"] == "/api/v1/agent_spans":
            ids[SPANS[created]] = response.json()["details"]["id"]
            created += 1
    instance = (await client.get(f"/api/v1/agent_instance/{ids[INSTANCE]}")).json()["details"]
    assert instance["status"] == "complete"
    counts = instance["span_counts"]
    assert (counts["total"], counts["finished"], counts["pending"]) == (4, 4, 0)
    assert (counts["complete"], counts["failed"], counts["cancelled"]) == (2, 1, 1)
    llm = (await client.get(f"/api/v1/agent_spans/{ids[SPANS[0]]}")).json()["details"]
    assert llm["summary"] == "gpt-4: Hello → Hi"
