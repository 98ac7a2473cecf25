"""The I/O-free half of the SDK's clients, shared by both faces (as httpx's ``BaseClient``
sits under ``Client`` and ``AsyncClient``).

``BaseClient`` holds what ``PrefactorCoreClient`` and ``SyncPrefactorCoreClient`` have in
common and can decide without a loop, a thread or the network: the configuration, the
``X-Prefactor-SDK`` header, the lifecycle state, the published SDK's positional order of
``create_agent_instance``, the checks of an instance's arguments and the schema version a
run registers with. Fork detection lives here too: a client made before ``os.fork()``
belongs to the parent process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx

from prefactor_core._engine.ids import check_client_id
from prefactor_core._traced_types import declared as declared_span_types
from prefactor_core._traced_types import register_declared
from prefactor_core._version import __version__
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.exceptions import ClientNotInitializedError
from prefactor_core.runtime import build_runtime_environment
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_http.models.types import InstancePurpose

__all__ = ["BaseClient", "InstancePurpose", "InstanceRequest", "fork_generation", "forked_error"]

_CORE_SDK_ENTRY = f"prefactor-core@{__version__}"

# Bumped in a forked child: a client made before the fork must not be used after it,
# since its queue, tasks, threads and connections belong to the parent.
_fork_generation = [0]
os.register_at_fork(after_in_child=lambda: _fork_generation.__setitem__(0, _fork_generation[0] + 1))


def fork_generation() -> int:
    """How many times this process's ancestry forked since the SDK was imported."""
    return _fork_generation[0]


def forked_error() -> ClientNotInitializedError:
    """The error of a client used in a process forked after it was made."""
    return ClientNotInitializedError(
        "this client was created before os.fork(); create a new client in the child process"
    )


@dataclass(frozen=True, slots=True)
class InstanceRequest:
    """The arguments of one ``create_agent_instance`` call (see its docstring)."""

    agent_id: str | None
    agent_version: dict[str, Any] | None
    agent_schema_version: dict[str, Any] | None
    instance_id: str | None = None
    external_schema_version_id: str | None = None
    environment_id: str | None = None
    purpose: InstancePurpose | None = None
    external_identifier: str | None = None


class BaseClient:
    """The configuration, header, state and instance arguments of a client.

    Args:
        config: The client's configuration.
        sdk_header_entry: An adapter's ``name@version`` entry for the ``X-Prefactor-SDK``
            header.
        transport: An httpx transport for the API.

    Raises:
        TypeError: If ``config`` is not a ``PrefactorCoreConfig``.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        sdk_header_entry: str | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        if not isinstance(config, PrefactorCoreConfig):
            raise TypeError(f"config must be a PrefactorCoreConfig, got {type(config).__name__}")
        self._config = config
        self._sdk_header_entry = sdk_header_entry
        self._transport = transport
        self._state: Literal["new", "open", "closed"] = "new"
        self._generation = _fork_generation[0]
        self._traced_registry: SchemaRegistry | None = None

    @property
    def config(self) -> PrefactorCoreConfig:
        """The client's configuration."""
        return self._config

    def __repr__(self) -> str:
        url = self._config.http_config.api_url
        return f"<{type(self).__name__} {self._state} api_url={url!r}>"

    def _sdk_header(self) -> str:
        entry = (self._sdk_header_entry or "").strip()
        return f"{entry} {_CORE_SDK_ENTRY}" if entry else _CORE_SDK_ENTRY

    @staticmethod
    def _instance_request(
        agent_id: str | None,
        agent_version: dict[str, Any] | None,
        agent_schema_version: dict[str, Any] | None,
        **rest: Any,
    ) -> InstanceRequest:
        """The arguments of a ``create_agent_instance`` call, in the documented order.

        The published 0.5.x SDK takes ``(agent_version, agent_schema_version, agent_id,
        ...)``; the documented order has ``agent_id`` first. A dict in first place can
        only mean the published order, so it is accepted.
        """
        first: object = agent_id
        if isinstance(first, dict):
            agent_id, agent_version, agent_schema_version = (
                cast("str | None", agent_schema_version),
                first,
                agent_version,
            )
        return InstanceRequest(agent_id, agent_version, agent_schema_version, **rest)

    def _agent_version(
        self, agent_version: dict[str, Any] | None, instance_id: str | None
    ) -> dict[str, Any]:
        """Check an instance's version and id; return the version to register.

        Raises:
            ValueError: If ``agent_version`` is missing or ``instance_id`` malformed.
            TypeError: If ``agent_version`` is not a dict.
        """
        if agent_version is None:
            raise ValueError("agent_version is required (e.g. {'name': 'My Agent'})")
        if not isinstance(agent_version, dict):
            raise TypeError(f"agent_version must be a dict, got {type(agent_version).__name__}")
        if instance_id is not None:
            check_client_id(instance_id, "instance_id")
        version = dict(agent_version)
        version.setdefault("runtime_environment", build_runtime_environment(self._sdk_header_entry))
        return version

    def _schema_version(
        self,
        agent_id: str | None,
        given: dict[str, Any] | None,
        external_id: str | None,
    ) -> dict[str, Any]:
        """The schema version a run registers with: the given one, else the registry's.

        Raises:
            TypeError: If ``given`` is not a dict.
            ValueError: If none is given and there is no registry (nor ``@trace`` types).
        """
        if given is not None:
            if not isinstance(given, dict):
                raise TypeError(f"agent_schema_version must be a dict, got {type(given).__name__}")
            return given
        registry = self._config.schema_registry
        if registry is None and declared_span_types():
            # Only @trace span types: a registry of their permissive schemas.
            registry = self._traced_registry = self._traced_registry or SchemaRegistry()
        if registry is None:
            raise ValueError(
                "no agent_schema_version was given and no schema_registry is configured"
            )
        register_declared(registry)
        identifier = external_id or f"auto-{agent_id or 'deployment'}-{registry.fingerprint()}"
        version: dict[str, Any] = registry.to_agent_schema_version(identifier)
        return version
