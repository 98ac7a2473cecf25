"""``client.agents``: create, get, update, list, show, retire, reinstate, delete (spec 2.10)."""

from __future__ import annotations

from prefactor_http._resources._parsing import parse_model
from prefactor_http._types import JSONObject, Requester
from prefactor_http._validation import check_idempotency_key, check_path_id
from prefactor_http.models.agent import Agent, AgentForCreate, AgentForUpdate, AgentSummary
from prefactor_http.models.base import ApiResponse, ListResponse

__all__ = ["AgentClient"]

_Envelope = ApiResponse[Agent]
_ListEnvelope = ListResponse[AgentSummary]
_BASE = "/api/v1/agent"


def _key_body(idempotency_key: str | None) -> JSONObject | None:
    # retire/reinstate/delete send {"idempotency_key": ...} or no body at all.
    if idempotency_key is None:
        return None
    check_idempotency_key(idempotency_key)
    return {"idempotency_key": idempotency_key}


class AgentClient:
    """Agent endpoints, reached as ``client.agents``.

    Create and update send ``{"details": {...}, "idempotency_key"?}`` with null fields
    left out (so a field cannot be cleared through this client).

    Example:
        >>> agent = await client.agents.create(  # doctest: +SKIP
        ...     AgentForCreate(name="Support", external_identifier="support"))
        >>> await client.agents.show(external_identifier="support")  # doctest: +SKIP
    """

    def __init__(self, http_client: Requester) -> None:
        self._requester = http_client

    async def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        body: JSONObject | None = None,
        params: dict[str, str | int] | None = None,
        retry: bool,
    ) -> Agent:
        response = await self._requester.request(
            method, path, params=params, json_data=body, retry=retry
        )
        envelope = parse_model(_Envelope, response, operation=operation, method=method, path=path)
        return envelope.details

    async def create(
        self, details: AgentForCreate, idempotency_key: str | None = None, *, retry: bool = True
    ) -> Agent:
        """Create an agent: ``POST /api/v1/agent``.

        Args:
            details: The new agent's fields.
            idempotency_key: At most 64 characters, sent beside ``details``.
            retry: Retry transient failures.

        Returns:
            The created agent.

        Raises:
            ValueError: For a bad idempotency key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        body: JSONObject = {"details": details.model_dump(mode="json", exclude_none=True)}
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        return await self._call("POST", _BASE, "agents.create", body=body, retry=retry)

    async def get(self, agent_id: str, *, retry: bool = True) -> Agent:
        """Fetch an agent: ``GET /api/v1/agent/{agent_id}``.

        Raises:
            ValueError: For a bad id (nothing is sent).
            PrefactorNotFoundError: When there is no such agent.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_id", agent_id)
        return await self._call("GET", f"{_BASE}/{agent_id}", "agents.get", retry=retry)

    async def update(
        self,
        agent_id: str,
        details: AgentForUpdate,
        idempotency_key: str | None = None,
        *,
        retry: bool = True,
    ) -> Agent:
        """Change an agent: ``PUT /api/v1/agent/{agent_id}``.

        Args:
            agent_id: The agent.
            details: The fields to change; null fields are left as they are.
            idempotency_key: At most 64 characters, sent beside ``details``.
            retry: Retry transient failures.

        Returns:
            The updated agent.

        Raises:
            ValueError: For a bad id or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_id", agent_id)
        body: JSONObject = {"details": details.model_dump(mode="json", exclude_none=True)}
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        return await self._call(
            "PUT", f"{_BASE}/{agent_id}", "agents.update", body=body, retry=retry
        )

    async def list_agents(
        self,
        risk_profile_id: str | None = None,
        team_id: str | None = None,
        owner_person_id: str | None = None,
        sorting: str | None = None,
        offset: int | None = None,
        page_size: int | None = None,
        *,
        retry: bool = True,
    ) -> list[AgentSummary]:
        """List agents: ``GET /api/v1/agent``; only the given filters are sent.

        Args:
            risk_profile_id: Only agents with this risk profile.
            team_id: Only agents of this team.
            owner_person_id: Only agents with this owner.
            sorting: A field name, ``-`` first for descending (``"name"``, ``"-id"``).
            offset: 0-based offset, sent as ``pagination[offset]``.
            page_size: 1 to 100, sent as ``pagination[page_size]``.
            retry: Retry transient failures.

        Returns:
            The page's agent summaries.

        Raises:
            ValueError: For a negative offset or a page size outside 1–100.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        params: dict[str, str | int] = {}
        if risk_profile_id is not None:
            params["risk_profile_id"] = risk_profile_id
        if team_id is not None:
            params["team_id"] = team_id
        if owner_person_id is not None:
            params["owner_person_id"] = owner_person_id
        if sorting is not None:
            params["sorting"] = sorting
        if offset is not None:
            if offset < 0:
                raise ValueError(f"offset must be >= 0, got {offset}")
            params["pagination[offset]"] = offset
        if page_size is not None:
            if not 1 <= page_size <= 100:
                raise ValueError(f"page_size must be between 1 and 100, got {page_size}")
            params["pagination[page_size]"] = page_size
        response = await self._requester.request("GET", _BASE, params=params or None, retry=retry)
        envelope = parse_model(
            _ListEnvelope, response, operation="agents.list_agents", method="GET", path=_BASE
        )
        return envelope.summaries

    async def show(
        self,
        *,
        agent_id: str | None = None,
        external_identifier: str | None = None,
        environment_id: str | None = None,
        include_counts: bool = False,
        include_risk_rollup: bool = False,
        retry: bool = True,
    ) -> Agent:
        """Look an agent up by id or external identifier: ``GET /api/v1/agent/show``.

        Args:
            agent_id: The agent's id; give this or ``external_identifier``.
            external_identifier: The agent's external identifier (exact match).
            environment_id: Scope the counts and risk rollup to one environment.
            include_counts: Add ``instance_counts``.
            include_risk_rollup: Add the risk rollup.
            retry: Retry transient failures.

        Returns:
            The agent.

        Raises:
            ValueError: Unless exactly one of ``agent_id`` / ``external_identifier``.
            PrefactorNotFoundError: When there is no such agent.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        if (agent_id is None) == (external_identifier is None):
            raise ValueError("give exactly one of agent_id and external_identifier")
        params: dict[str, str | int] = {}
        if agent_id is not None:
            params["agent_id"] = agent_id
        if external_identifier is not None:
            params["external_identifier"] = external_identifier
        if environment_id is not None:
            params["environment_id"] = environment_id
        if include_counts:
            params["include_counts"] = "true"
        if include_risk_rollup:
            params["include_risk_rollup"] = "true"
        return await self._call("GET", f"{_BASE}/show", "agents.show", params=params, retry=retry)

    async def retire(
        self, agent_id: str, idempotency_key: str | None = None, *, retry: bool = True
    ) -> Agent:
        """Retire an agent: ``POST /api/v1/agent/{agent_id}/retire``.

        Raises:
            ValueError: For a bad id or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_id", agent_id)
        body = _key_body(idempotency_key)
        return await self._call(
            "POST", f"{_BASE}/{agent_id}/retire", "agents.retire", body=body, retry=retry
        )

    async def reinstate(
        self, agent_id: str, idempotency_key: str | None = None, *, retry: bool = True
    ) -> Agent:
        """Reinstate a retired agent: ``POST /api/v1/agent/{agent_id}/reinstate``.

        Raises:
            ValueError: For a bad id or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_id", agent_id)
        body = _key_body(idempotency_key)
        return await self._call(
            "POST", f"{_BASE}/{agent_id}/reinstate", "agents.reinstate", body=body, retry=retry
        )

    async def delete(
        self, agent_id: str, idempotency_key: str | None = None, *, retry: bool = True
    ) -> Agent:
        """Delete an agent: ``DELETE /api/v1/agent/{agent_id}``.

        Returns:
            The deleted agent.

        Raises:
            ValueError: For a bad id or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_id", agent_id)
        body = _key_body(idempotency_key)
        return await self._call(
            "DELETE", f"{_BASE}/{agent_id}", "agents.delete", body=body, retry=retry
        )
