"""prefactor_http: the async client for the Prefactor agent-observability API.

Example::

    from prefactor_http import HttpClientConfig, PrefactorHttpClient

    config = HttpClientConfig(api_url="http://localhost:8000", api_token="pf_dev")
    async with PrefactorHttpClient(config) as client:
        instance = await client.agent_instances.register(
            agent_version={"name": "bot"}, agent_schema_version={}, agent_id="agt_1"
        )
        await client.agent_instances.start(instance.id)

This module is the package's contract: everything public is imported here and listed
in ``__all__``; the implementation lives in ``_``-prefixed modules.
"""

from __future__ import annotations

from prefactor_http._client import ClientState, PrefactorHttpClient
from prefactor_http._version import __version__
from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorConflictError,
    PrefactorHttpError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorTimeoutError,
    PrefactorTransportError,
    PrefactorValidationError,
)
from prefactor_http.models.agent_instance import (
    AgentInstance,
    AgentInstanceRecordQuality,
    AgentInstanceSpanCounts,
    AgentSchemaVersionForRegister,
    AgentVersionForRegister,
    FinishInstanceRequest,
    QualitySchemaDetails,
    QualitySchemaForCreate,
    RuntimeEnvironment,
    SpanTypeSchemaForCreate,
)
from prefactor_http.models.agent_span import AgentSpan
from prefactor_http.models.base import ApiResponse
from prefactor_http.models.bulk import BulkItem, BulkOutput, BulkRequest, BulkResponse
from prefactor_http.models.types import AgentStatus, FinishStatus, InstancePurpose
from prefactor_http.pfid import Pfid, generate_pfid, is_pfid, parse_pfid

__all__ = [
    "AgentInstance",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentSchemaVersionForRegister",
    "AgentSpan",
    "AgentStatus",
    "AgentVersionForRegister",
    "ApiResponse",
    "BulkItem",
    "BulkOutput",
    "BulkRequest",
    "BulkResponse",
    "ClientState",
    "FinishInstanceRequest",
    "FinishStatus",
    "HttpClientConfig",
    "InstancePurpose",
    "Pfid",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorConflictError",
    "PrefactorHttpClient",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorTimeoutError",
    "PrefactorTransportError",
    "PrefactorValidationError",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RuntimeEnvironment",
    "SpanTypeSchemaForCreate",
    "__version__",
    "generate_pfid",
    "is_pfid",
    "parse_pfid",
]
