"""``client.agent_instances``: register, start, finish, get, record_quality (spec 2.2–2.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from prefactor_http._resources._parsing import dump_model_or_dict, parse_model
from prefactor_http._types import JSONObject, Requester
from prefactor_http._validation import (
    FINISH_STATUSES,
    INSTANCE_PURPOSES,
    check_choice,
    check_idempotency_key,
    check_path_id,
    isoformat,
)
from prefactor_http.models.agent_instance import AgentInstance
from prefactor_http.models.base import ApiResponse
from prefactor_http.models.types import FinishStatus, InstancePurpose

__all__ = ["AgentInstanceClient"]

_Envelope = ApiResponse[AgentInstance]
_BASE = "/api/v1/agent_instance"


class AgentInstanceClient:
    """Agent-instance endpoints, reached as ``client.agent_instances``.

    Every method returns the instance from the response and takes a keyword-only
    ``retry`` (``False`` makes exactly one attempt). Idempotency keys go in the body.

    Example:
        >>> instance = await client.agent_instances.register(  # doctest: +SKIP
        ...     agent_version={"name": "bot"}, agent_schema_version={}, agent_id="agt_1")
        >>> await client.agent_instances.start(instance.id)  # doctest: +SKIP
        >>> await client.agent_instances.finish(instance.id, status="complete")  # doctest: +SKIP
    """

    def __init__(self, http_client: Requester) -> None:
        self._requester = http_client

    async def _call(
        self, method: str, path: str, body: JSONObject | None, operation: str, retry: bool
    ) -> AgentInstance:
        response = await self._requester.request(method, path, json_data=body, retry=retry)
        envelope = parse_model(_Envelope, response, operation=operation, method=method, path=path)
        return envelope.details

    async def register(
        self,
        agent_version: dict[str, Any] | BaseModel,
        agent_schema_version: dict[str, Any] | BaseModel,
        agent_id: str | None = None,
        environment_id: str | None = None,
        id: str | None = None,
        idempotency_key: str | None = None,
        update_current_version: bool = True,
        purpose: InstancePurpose | None = None,
        external_identifier: str | None = None,
        *,
        retry: bool = True,
    ) -> AgentInstance:
        """Register a new agent instance: ``POST /api/v1/agent_instance/register``.

        Args:
            agent_version: The version object (a dict, sent as given, or an
                ``AgentVersionForRegister``).
            agent_schema_version: The schema-version object (a dict or an
                ``AgentSchemaVersionForRegister``).
            agent_id: The agent; omit with a deployment-scoped token.
            environment_id: The environment; needed with an account-scoped token.
            id: An instance id chosen by the client.
            idempotency_key: At most 64 characters, sent in the body.
            update_current_version: Move the deployment's pinned version to this one.
            purpose: ``"live"``, ``"smoke_test"`` or ``"eval"``; the API assumes live.
            external_identifier: The instance's id in another system.
            retry: Retry transient failures.

        Returns:
            The new instance.

        Raises:
            ValueError: For a bad idempotency key or purpose (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        body: JSONObject = {
            "agent_version": dump_model_or_dict(agent_version),
            "agent_schema_version": dump_model_or_dict(agent_schema_version),
            "update_current_version": update_current_version,
        }
        if agent_id is not None:
            body["agent_id"] = agent_id
        if environment_id is not None:
            body["environment_id"] = environment_id
        if id is not None:
            body["id"] = id
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        if purpose is not None:
            body["purpose"] = check_choice("purpose", purpose, INSTANCE_PURPOSES)
        if external_identifier is not None:
            body["external_identifier"] = external_identifier
        return await self._call(
            "POST", f"{_BASE}/register", body, "agent_instances.register", retry
        )

    async def start(
        self,
        agent_instance_id: str,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
        *,
        retry: bool = True,
    ) -> AgentInstance:
        """Mark an instance as started: ``POST /api/v1/agent_instance/{id}/start``.

        The body always has ``timestamp`` (null lets the server use its clock).

        Args:
            agent_instance_id: The instance.
            timestamp: When it started; must be timezone-aware.
            idempotency_key: At most 64 characters.
            retry: Retry transient failures.

        Returns:
            The updated instance.

        Raises:
            ValueError: For a bad id, naive timestamp or bad key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_instance_id", agent_instance_id)
        body: JSONObject = {
            "timestamp": None if timestamp is None else isoformat("timestamp", timestamp)
        }
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        return await self._call(
            "POST", f"{_BASE}/{agent_instance_id}/start", body, "agent_instances.start", retry
        )

    async def finish(
        self,
        agent_instance_id: str,
        status: FinishStatus | None = None,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
        *,
        retry: bool = True,
    ) -> AgentInstance:
        """Mark an instance as finished: ``POST /api/v1/agent_instance/{id}/finish``.

        Only the given fields are sent, so the body may be ``{}``.

        Args:
            agent_instance_id: The instance.
            status: ``"complete"``, ``"failed"`` or ``"cancelled"``.
            timestamp: When it finished; must be timezone-aware.
            idempotency_key: At most 64 characters.
            retry: Retry transient failures.

        Returns:
            The updated instance.

        Raises:
            ValueError: For a bad id, status, timestamp or key (nothing is sent).
            PrefactorConflictError: When the instance is already terminal (e.g. terminated).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_instance_id", agent_instance_id)
        body: JSONObject = {}
        if status is not None:
            body["status"] = check_choice("status", status, FINISH_STATUSES)
        if timestamp is not None:
            body["timestamp"] = isoformat("timestamp", timestamp)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        return await self._call(
            "POST", f"{_BASE}/{agent_instance_id}/finish", body, "agent_instances.finish", retry
        )

    async def get(self, agent_instance_id: str, *, retry: bool = True) -> AgentInstance:
        """Fetch an instance: ``GET /api/v1/agent_instance/{id}``.

        Args:
            agent_instance_id: The instance.
            retry: Retry transient failures.

        Returns:
            The instance, including ``status`` and ``termination_reason``.

        Raises:
            ValueError: For a bad id (nothing is sent).
            PrefactorNotFoundError: When there is no such instance.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_instance_id", agent_instance_id)
        return await self._call(
            "GET", f"{_BASE}/{agent_instance_id}", None, "agent_instances.get", retry
        )

    async def record_quality(
        self,
        agent_instance_id: str,
        name: str,
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        *,
        retry: bool = True,
    ) -> AgentInstance:
        """Set or clear one quality entry: ``POST …/{id}/record_quality``.

        ``name`` and ``payload`` are always sent; ``payload=None`` removes the entry.

        Args:
            agent_instance_id: The instance.
            name: A quality schema name of the instance's schema version.
            payload: The quality payload, or None to remove it.
            idempotency_key: At most 64 characters.
            retry: Retry transient failures.

        Returns:
            The updated instance.

        Raises:
            ValueError: For a bad id or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_instance_id", agent_instance_id)
        body: JSONObject = {"name": name, "payload": payload}
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        return await self._call(
            "POST",
            f"{_BASE}/{agent_instance_id}/record_quality",
            body,
            "agent_instances.record_quality",
            retry,
        )
