"""``client.agent_spans``: create and finish (spec 2.8, 2.9, 6.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefactor_http._resources._parsing import check_control_signal, parse_model
from prefactor_http._types import ControlSignalCallback, JSONObject, Requester
from prefactor_http._validation import (
    AGENT_STATUSES,
    FINISH_STATUSES,
    check_choice,
    check_idempotency_key,
    check_path_id,
    isoformat,
)
from prefactor_http.models.agent_span import AgentSpan
from prefactor_http.models.base import ApiResponse
from prefactor_http.models.types import AgentStatus, FinishStatus

__all__ = ["AgentSpanClient"]

_Envelope = ApiResponse[AgentSpan]


class AgentSpanClient:
    """Span endpoints, reached as ``client.agent_spans``.

    Both methods accept ``control_signal_callback``: when the response carries
    ``control.terminate``, it is called with ``control.reason`` before the span is parsed.

    Example:
        >>> span = await client.agent_spans.create(  # doctest: +SKIP
        ...     "ins_1", "agent:llm", "active", payload={"model": "m"})
        >>> await client.agent_spans.finish(span.id, status="complete")  # doctest: +SKIP
    """

    def __init__(self, http_client: Requester) -> None:
        self._requester = http_client

    async def create(
        self,
        agent_instance_id: str,
        schema_name: str,
        status: AgentStatus,
        payload: dict[str, Any] | None = None,
        result_payload: dict[str, Any] | None = None,
        id: str | None = None,
        parent_span_id: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        idempotency_key: str | None = None,
        control_signal_callback: ControlSignalCallback | None = None,
        *,
        retry: bool = True,
    ) -> AgentSpan:
        """Create a span: ``POST /api/v1/agent_spans``.

        The fields are sent wrapped in ``details``, nulls left out, ``payload`` as
        ``{}`` when not given, and the idempotency key inside ``details``.

        Args:
            agent_instance_id: The instance the span belongs to.
            schema_name: The span type, e.g. ``"langchain:llm"``.
            status: The initial status (usually ``"active"``).
            payload: The span's parameters.
            result_payload: The result, for a span created already finished.
            id: A span id chosen by the client.
            parent_span_id: The parent span.
            started_at: When it started; must be timezone-aware.
            finished_at: When it finished; must be timezone-aware.
            idempotency_key: At most 64 characters.
            control_signal_callback: Called with the reason when the API says terminate.
            retry: Retry transient failures.

        Returns:
            The created span.

        Raises:
            ValueError: For a bad status, timestamp or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        details: JSONObject = {
            "agent_instance_id": agent_instance_id,
            "schema_name": schema_name,
            "status": check_choice("status", status, AGENT_STATUSES),
            "payload": {} if payload is None else payload,
        }
        if result_payload is not None:
            details["result_payload"] = result_payload
        if id is not None:
            details["id"] = id
        if parent_span_id is not None:
            details["parent_span_id"] = parent_span_id
        if started_at is not None:
            details["started_at"] = isoformat("started_at", started_at)
        if finished_at is not None:
            details["finished_at"] = isoformat("finished_at", finished_at)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            details["idempotency_key"] = idempotency_key
        path = "/api/v1/agent_spans"
        response = await self._requester.request(
            "POST", path, json_data={"details": details}, retry=retry
        )
        check_control_signal(response, control_signal_callback)
        envelope = parse_model(
            _Envelope, response, operation="agent_spans.create", method="POST", path=path
        )
        return envelope.details

    async def finish(
        self,
        agent_span_id: str,
        status: FinishStatus | None = None,
        result_payload: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
        control_signal_callback: ControlSignalCallback | None = None,
        *,
        retry: bool = True,
    ) -> AgentSpan:
        """Finish a span: ``POST /api/v1/agent_spans/{id}/finish``.

        The body is flat with only the given fields.

        Args:
            agent_span_id: The span.
            status: ``"complete"``, ``"failed"`` or ``"cancelled"``.
            result_payload: The span's result.
            timestamp: When it finished; must be timezone-aware.
            idempotency_key: At most 64 characters.
            control_signal_callback: Called with the reason when the API says terminate.
            retry: Retry transient failures.

        Returns:
            The finished span.

        Raises:
            ValueError: For a bad id, status, timestamp or key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_path_id("agent_span_id", agent_span_id)
        body: JSONObject = {}
        if status is not None:
            body["status"] = check_choice("status", status, FINISH_STATUSES)
        if result_payload is not None:
            body["result_payload"] = result_payload
        if timestamp is not None:
            body["timestamp"] = isoformat("timestamp", timestamp)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            body["idempotency_key"] = idempotency_key
        path = f"/api/v1/agent_spans/{agent_span_id}/finish"
        response = await self._requester.request("POST", path, json_data=body, retry=retry)
        check_control_signal(response, control_signal_callback)
        envelope = parse_model(
            _Envelope, response, operation="agent_spans.finish", method="POST", path=path
        )
        return envelope.details
