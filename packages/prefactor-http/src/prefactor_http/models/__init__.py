"""Pydantic models of the Prefactor API's requests and responses."""

from __future__ import annotations

from prefactor_http.models.agent import (
    Agent,
    AgentAvailableActions,
    AgentForCreate,
    AgentForUpdate,
    AgentInstanceCounts,
    AgentSummary,
)
from prefactor_http.models.agent_instance import (
    ActionProfile,
    AgentInstance,
    AgentInstanceRecordQuality,
    AgentInstanceSpanCounts,
    AgentSchemaVersionForRegister,
    AgentVersionForRegister,
    DataCategories,
    DataRisk,
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

__all__ = [
    "ActionProfile",
    "Agent",
    "AgentAvailableActions",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstance",
    "AgentInstanceCounts",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentSchemaVersionForRegister",
    "AgentSpan",
    "AgentStatus",
    "AgentSummary",
    "AgentVersionForRegister",
    "ApiResponse",
    "BulkItem",
    "BulkOutput",
    "BulkRequest",
    "BulkResponse",
    "DataCategories",
    "DataRisk",
    "FinishInstanceRequest",
    "FinishStatus",
    "InstancePurpose",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RuntimeEnvironment",
    "SpanTypeSchemaForCreate",
]
