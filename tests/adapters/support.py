"""Running the adapter scenarios on both cores and reading their runs back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"
TOKEN = "adapters-token-0123456789"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def require_published() -> None:
    """Skip (fail in CI) when ``.venv-published`` is missing."""
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )


def run_scenario(script: Path, python: Path | str, *args: str) -> dict[str, Any]:
    """Run ``script`` with ``python`` and return the JSON of its last output line."""
    result = subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"{python} {script.name} {args}:\n{result.stderr[-4000:]}"
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    outcome["stderr"] = result.stderr
    return outcome


def _get(url: str, path: str, **params: str) -> Any:
    response = httpx.get(
        f"{url}/api/v1/{path}", params=params, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def read_run(url: str, instance_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The instance and its spans, through the read API."""
    instance = _get(url, f"agent_instance/{instance_id}")["details"]
    listing = _get(
        url, "agent_spans", agent_instance_id=instance_id, **{"pagination[page_size]": "100"}
    )
    assert listing["pagination"]["next_page_offset"] is None
    return instance, listing["summaries"]


def _stable(value: Any) -> Any:
    """``value`` with the random parts (UUIDs LangChain makes per run) masked."""
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    if isinstance(value, str):
        return _UUID.sub("<uuid>", value)
    return value


def span_view(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a reader of the run sees, without ids and times: type, status, parent's
    type, payloads and summary of each span, in a stable order."""
    by_id = {span["id"]: span for span in spans}
    views = []
    for span in spans:
        parent = by_id.get(span["parent_span_id"] or "")
        views.append(
            {
                "type": span["schema_name"],
                "status": span["status"],
                "parent": parent["schema_name"] if parent else None,
                "payload": _stable(span["payload"]),
                "result": _stable(span["result_payload"]),
                "summary": span["summary"],
            }
        )
    return sorted(views, key=lambda view: json.dumps(view, sort_keys=True))


def instance_view(instance: dict[str, Any]) -> dict[str, Any]:
    """The parts of an instance a reader compares across runs."""
    keys = ("agent_id", "status", "termination_reason", "span_counts", "purpose")
    return {key: instance[key] for key in keys}


def counts(views: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """How many spans of each (type, status)."""
    result: dict[tuple[str, str], int] = {}
    for view in views:
        key = (view["type"], view["status"])
        result[key] = result.get(key, 0) + 1
    return result


OUR_PYTHON = sys.executable
