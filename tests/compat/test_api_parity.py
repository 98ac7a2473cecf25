"""API parity with the published prefactor-core 0.5.3 / prefactor-http 0.4.3, by introspection.

``api_surface.py`` describes every public module of the installed packages (names,
kinds, signatures, dataclass and model fields, exception bases). It runs once in
``.venv-published`` and once here; every way ours falls short of the published API is a
failure, unless ALLOWED below says why ours is a strict superset there.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .parity import differences

pytestmark = pytest.mark.published

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"
SURFACE = Path(__file__).with_name("api_surface.py")

# Difference (fnmatch pattern) -> why ours is a strict superset there.
ALLOWED: dict[str, str] = {
    "*:Operation(): default of 'metadata' is None, published '<_HAS_DEFAULT_FACTORY_CLASS>'": (
        "Operation(...) without metadata gives {} in both; ours also takes metadata=None "
        "(also {}). dataclasses.fields(Operation) shows the same default factory."
    ),
    "*:BulkOutput.validate_status: missing": (
        "ours checks status with a Literal type inside pydantic-core (cheap on large bulk "
        "responses); the same values are accepted and rejected at model_validate."
    ),
}
if sys.version_info < (3, 12):
    ALLOWED[
        "*:PrefactorCoreClient.create_agent_instance: is a function, published a coroutine function"
    ] = (
        "Python 3.11 cannot mark a function as a coroutine function "
        "(inspect.markcoroutinefunction is 3.12+, where ours is marked). The result is a "
        "collections.abc.Coroutine (await, asyncio.create_task and gather work) that is "
        "also an async context manager."
    )


def _surface(python: Path | str) -> dict[str, Any]:
    result = subprocess.run(
        [str(python), str(SURFACE)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    described: dict[str, Any] = json.loads(result.stdout)
    return described


@pytest.fixture(scope="module", name="surfaces")
def fixture_surfaces() -> tuple[dict[str, Any], dict[str, Any]]:
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )
    return _surface(PUBLISHED_PYTHON), _surface(sys.executable)


def test_every_published_name_exists_with_the_same_shape(
    surfaces: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Every published module, name, kind, signature, field and base is there in ours."""
    published, ours = surfaces
    left = [d for d in differences(published, ours) if not _allowed(d)]
    assert left == [], "\n".join(left)


def test_every_allowlist_entry_is_still_needed(
    surfaces: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The allowlist stays short: an entry that matches no difference any more fails."""
    found = differences(*surfaces)
    stale = [p for p in ALLOWED if not any(fnmatch.fnmatchcase(d, p) for d in found)]
    assert stale == []


def test_the_comparison_sees_a_missing_name_and_a_changed_kind(
    surfaces: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The comparison itself fails on what it must catch (so a pass means something)."""
    published, ours = surfaces
    broken = json.loads(json.dumps(ours))
    del broken["prefactor_core"]["warn_missing_adaptor_config"]
    queue = broken["prefactor_core.queue.base"]["Queue"]["members"]
    queue["closed"] = {
        "kind": "function",
        "signature": [["self", "POSITIONAL_OR_KEYWORD", "<required>"]],
    }
    register = broken["prefactor_core.managers"]["AgentInstanceManager"]["members"]["register"]
    register["signature"][1], register["signature"][3] = (
        register["signature"][3],
        register["signature"][1],
    )
    found = differences(published, broken)
    assert "prefactor_core:warn_missing_adaptor_config: missing" in found
    assert "prefactor_core.queue.base:Queue.closed: is a function, published a property" in found
    assert any(d.startswith("prefactor_core.managers:AgentInstanceManager.register") for d in found)


def _allowed(difference: str) -> bool:
    return any(fnmatch.fnmatchcase(difference, pattern) for pattern in ALLOWED)
