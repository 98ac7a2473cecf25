"""The runtime description sent with an agent version."""

from __future__ import annotations

import platform
from importlib import metadata

from prefactor_core._version import __version__

__all__ = ["build_runtime_environment"]


def _http_version() -> str:
    try:
        return metadata.version("prefactor-http")
    except metadata.PackageNotFoundError:  # pragma: no cover - a broken install
        return "unknown"


def build_runtime_environment(sdk_header_entry: str | None = None) -> dict[str, object]:
    """Describe the SDK and runtime for ``agent_version.runtime_environment``.

    Args:
        sdk_header_entry: The upstream adapter's ``name@version`` entries, if any
            (for example ``prefactor-langchain@0.3.0``); a ``prefactor-core`` entry in
            it is left out, since ``prefactor_sdk`` reports that.

    Returns:
        ``{"agent_sdk": [...], "os": ..., "prefactor_sdk": [...], "runtime": ...}``.
    """
    agent_sdk = [
        entry
        for entry in (sdk_header_entry or "").split()
        if not entry.startswith("prefactor-core@")
    ]
    implementation = platform.python_implementation().lower()
    major, minor, _ = platform.python_version_tuple()
    return {
        "agent_sdk": agent_sdk,
        "os": platform.system().lower(),
        "prefactor_sdk": [f"prefactor-core@{__version__}", f"prefactor-http@{_http_version()}"],
        "runtime": f"{implementation}@{major}.{minor}",
    }
