"""Tests for prefactor_core.runtime.build_runtime_environment."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import pytest

from prefactor_core import __version__, build_runtime_environment
from prefactor_core import runtime as runtime_module


def test_keys() -> None:
    """The description has exactly the four runtime_environment keys."""
    assert set(build_runtime_environment()) == {"agent_sdk", "os", "prefactor_sdk", "runtime"}


def test_without_upstream_entry_agent_sdk_is_empty() -> None:
    """With no adapter header entry, agent_sdk is an empty list."""
    assert build_runtime_environment()["agent_sdk"] == []
    assert build_runtime_environment(None)["agent_sdk"] == []
    assert build_runtime_environment("")["agent_sdk"] == []


def test_prefactor_sdk_lists_core_and_http_versions() -> None:
    """prefactor_sdk names this core and the installed prefactor-http, in that order."""
    assert build_runtime_environment()["prefactor_sdk"] == [
        f"prefactor-core@{__version__}",
        f"prefactor-http@{metadata.version('prefactor-http')}",
    ]


def test_upstream_entries_are_kept_and_core_is_dropped() -> None:
    """Adapter entries go to agent_sdk; a prefactor-core entry in them is left out."""
    env = build_runtime_environment("prefactor-langchain@0.3.0 prefactor-core@0.5.3")
    assert env["agent_sdk"] == ["prefactor-langchain@0.3.0"]


def test_upstream_entries_split_on_any_whitespace() -> None:
    """Several adapter entries separated by runs of whitespace are all kept, in order."""
    env = build_runtime_environment("  a@1   b@2\tprefactor-core@9 c@3 ")
    assert env["agent_sdk"] == ["a@1", "b@2", "c@3"]


def test_os_and_runtime_describe_this_interpreter() -> None:
    """os is the lower-case system name and runtime is implementation@major.minor."""
    env = build_runtime_environment()
    assert env["os"] == platform.system().lower()
    major, minor, _ = platform.python_version_tuple()
    assert env["runtime"] == f"{platform.python_implementation().lower()}@{major}.{minor}"


def test_result_is_json_serialisable() -> None:
    """The description can be sent as JSON."""
    env = build_runtime_environment("prefactor-livekit@0.1.5")
    assert json.loads(json.dumps(env)) == env


def test_each_call_returns_a_fresh_dict() -> None:
    """Changing one result does not affect the next."""
    first = build_runtime_environment()
    first["agent_sdk"].append("tampered")  # type: ignore[attr-defined]
    assert build_runtime_environment()["agent_sdk"] == []


def test_unknown_http_version_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing prefactor-http distribution is reported as 'unknown', not raised."""

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(runtime_module.metadata, "version", missing)
    assert build_runtime_environment()["prefactor_sdk"][1] == "prefactor-http@unknown"
