"""Errors raised as the published SDK raises them, for code that catches or matches them.

``error_messages.py`` makes a set of bad calls and prints each error's type, its classes
and its message. It runs with the published packages (``.venv-published``) and with
ours: each of our errors must be an instance of the published error's class, and its
message must contain the published message (ours may add detail after it), so
``pytest.raises(..., match=...)`` and ``except`` clauses written for the published SDK
keep working.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.published

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_PYTHON = ROOT / ".venv-published" / "bin" / "python"
SCRIPT = Path(__file__).with_name("error_messages.py")


def _errors(python: Path | str) -> dict[str, Any]:
    result = subprocess.run(
        [str(python), str(SCRIPT)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    errors: dict[str, Any] = json.loads(result.stdout)
    return errors


def test_errors_match_the_published_ones() -> None:
    """Same class (or a subclass), and the published message inside ours."""
    if not PUBLISHED_PYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "run scripts/published-venv first (.venv-published is missing)"
        )
    published, ours = _errors(PUBLISHED_PYTHON), _errors(sys.executable)
    assert all(error is not None for error in published.values())
    mismatches = []
    for case, expected in published.items():
        got = ours[case]
        if got is None or expected["type"] not in got["types"]:
            mismatches.append(f"{case}: raised {got}, published {expected}")
        elif not re.search(re.escape(expected["message"]), got["message"]):
            mismatches.append(f"{case}: {got['message']!r} lacks {expected['message']!r}")
    assert mismatches == []
