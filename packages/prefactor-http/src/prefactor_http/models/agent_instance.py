"""Models of agent instances and of the schema/version objects sent on register.

Wire protocol 2.2–2.6, 2.13 and section 4. The register endpoint takes plain dicts; the
``*ForRegister`` models are offered for building them with validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from prefactor_http.models.types import AgentStatus, FinishStatus, InstancePurpose

__all__ = [
    "ActionProfile",
    "AgentInstance",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentSchemaVersionForRegister",
    "AgentVersionForRegister",
    "DataCategories",
    "DataRisk",
    "FinishInstanceRequest",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RegisterAgentInstanceRequest",
    "RuntimeEnvironment",
    "SpanTypeSchemaForCreate",
    "TimestampRequest",
]

Permission: TypeAlias = Literal["unknown", "allowed", "disallowed"]
Presence: TypeAlias = Literal["unknown", "included", "excluded"]
Classification: TypeAlias = Literal[
    "unknown", "public", "internal", "confidential", "restricted", "secret"
]


class ActionProfile(BaseModel):
    """Which side effects a span type may have.

    Example:
        >>> ActionProfile(read_data="allowed").destroy_data
        'unknown'
    """

    create_data: Permission = "unknown"
    read_data: Permission = "unknown"
    update_data: Permission = "unknown"
    destroy_data: Permission = "unknown"
    financial_transactions: Permission = "unknown"
    external_communication: Permission = "unknown"


class DataCategories(BaseModel):
    """Which kinds of data appear in a span's params or result.

    Example:
        >>> DataCategories(contact_information="included").classification
        'unknown'
    """

    personal_identifiers: Presence = "unknown"
    contact_information: Presence = "unknown"
    financial_information: Presence = "unknown"
    health_and_medical: Presence = "unknown"
    criminal_justice: Presence = "unknown"
    authentication_and_secrets: Presence = "unknown"
    organisational_confidential: Presence = "unknown"
    minors_data: Presence = "unknown"
    location_and_tracking: Presence = "unknown"
    behavioural_and_inferred: Presence = "unknown"
    gdpr_racial_or_ethnic_origin: Presence = "unknown"
    gdpr_political_opinions: Presence = "unknown"
    gdpr_religious_or_philosophical_beliefs: Presence = "unknown"
    gdpr_trade_union_membership: Presence = "unknown"
    gdpr_genetic_data: Presence = "unknown"
    gdpr_biometric_for_identification: Presence = "unknown"
    gdpr_sex_life_or_sexual_orientation: Presence = "unknown"
    classification: Classification = "unknown"


class DataRisk(BaseModel):
    """The data-risk classification of a span type or quality schema.

    Example:
        >>> risk = DataRisk(action_profile=ActionProfile(),
        ...     params_data_categories=DataCategories(), result_data_categories=DataCategories())
        >>> risk.action_profile.read_data
        'unknown'
    """

    model_config = ConfigDict(extra="allow")

    action_profile: ActionProfile
    params_data_categories: DataCategories
    result_data_categories: DataCategories


class SpanTypeSchemaForCreate(BaseModel):
    """A span type declared in a schema version.

    Example:
        >>> SpanTypeSchemaForCreate(name="agent:llm", params_schema={"type": "object"}).name
        'agent:llm'
    """

    name: str
    params_schema: dict[str, Any]
    result_schema: dict[str, Any] | None = None
    title: str | None = None
    description: str | None = None
    template: str | None = None
    data_risk: DataRisk | None = None


class QualitySchemaForCreate(BaseModel):
    """A named quality schema declared in a schema version (JSON key ``schema``).

    Example:
        >>> QualitySchemaForCreate(name="score", schema={"type": "object"}).model_dump(
        ...     by_alias=True, exclude_none=True)
        {'name': 'score', 'schema': {'type': 'object'}}
    """

    model_config = ConfigDict(populate_by_name=True)

    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    title: str | None = None
    description: str | None = None
    template: str | None = None
    data_risk: DataRisk | None = None


class QualitySchemaDetails(BaseModel):
    """A quality schema as returned inside a schema version.

    Example:
        >>> QualitySchemaDetails.model_validate({"name": "s", "title": "S",
        ...     "data_risk": {"action_profile": {}, "params_data_categories": {},
        ...     "result_data_categories": {}}, "schema": {}, "schema_validation": {}}).title
        'S'
    """

    model_config = ConfigDict(populate_by_name=True)

    name: str
    title: str
    description: str | None = None
    template: str | None = None
    data_risk: DataRisk
    schema_: dict[str, Any] = Field(alias="schema")
    schema_validation: dict[str, Any]


class AgentInstanceRecordQuality(BaseModel):
    """A record-quality body: ``payload=None`` removes the entry called ``name``.

    Example:
        >>> AgentInstanceRecordQuality(name="score").model_dump()
        {'name': 'score', 'payload': None}
    """

    name: str
    payload: dict[str, Any] | None = None


class AgentInstanceSpanCounts(BaseModel):
    """Span counts of an instance; ``finished`` = complete + failed + cancelled.

    Example:
        >>> AgentInstanceSpanCounts(total=3, complete=3, finished=3).active
        0
    """

    total: int = 0
    active: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: int = 0


class RuntimeEnvironment(BaseModel):
    """Where an agent version runs: agent SDKs, Prefactor SDKs, OS and runtime.

    Example:
        >>> RuntimeEnvironment(os="linux", runtime="cpython@3.12").runtime
        'cpython@3.12'
    """

    agent_sdk: list[str] | None = None
    os: str | None = None
    prefactor_sdk: list[str] | None = None
    runtime: str | None = None


class AgentVersionForRegister(BaseModel):
    """The ``agent_version`` object of a register body.

    Example:
        >>> AgentVersionForRegister(name="bot", external_identifier="v1").model_dump(
        ...     exclude_none=True)
        {'name': 'bot', 'external_identifier': 'v1'}
    """

    name: str | None = None
    external_identifier: str | None = None
    description: str | None = None
    runtime_environment: RuntimeEnvironment | None = None


class AgentSchemaVersionForRegister(BaseModel):
    """The ``agent_schema_version`` object of a register body.

    Example:
        >>> AgentSchemaVersionForRegister(external_identifier="s1").span_type_schemas is None
        True
    """

    external_identifier: str | None = None
    span_schemas: dict[str, dict[str, Any]] | None = None
    span_result_schemas: dict[str, dict[str, Any]] | None = None
    span_type_schemas: list[SpanTypeSchemaForCreate] | None = None
    quality_schemas: list[QualitySchemaForCreate] | None = None


class RegisterAgentInstanceRequest(BaseModel):
    """A register body as a model (the client builds it as a plain dict).

    Example:
        >>> RegisterAgentInstanceRequest(agent_version=AgentVersionForRegister(),
        ...     agent_schema_version=AgentSchemaVersionForRegister()).purpose is None
        True
    """

    agent_id: str | None = None
    environment_id: str | None = None
    agent_version: AgentVersionForRegister
    agent_schema_version: AgentSchemaVersionForRegister
    id: str | None = None
    external_identifier: str | None = None
    idempotency_key: str | None = None
    update_current_version: bool | None = None
    purpose: InstancePurpose | None = None


class TimestampRequest(BaseModel):
    """A start body: ISO-8601 ``timestamp`` and an optional idempotency key.

    Example:
        >>> TimestampRequest().model_dump()
        {'timestamp': None, 'idempotency_key': None}
    """

    timestamp: str | None = None
    idempotency_key: str | None = None


class FinishInstanceRequest(BaseModel):
    """An instance-finish body; null fields are left out when sent.

    Example:
        >>> FinishInstanceRequest(status="failed").model_dump(exclude_none=True)
        {'status': 'failed'}
    """

    status: FinishStatus | None = None
    timestamp: str | None = None
    idempotency_key: str | None = None


class AgentInstance(BaseModel):
    """An agent instance as the API returns it; unknown fields are ignored.

    Example:
        >>> instance = AgentInstance.model_validate({"type": "agent_instance",
        ...     "id": "ins_1", "account_id": "acc_1", "agent_id": "agt_1",
        ...     "agent_version_id": "ver_1", "environment_id": "env_1",
        ...     "agent_deployment_id": "dep_1", "status": "pending",
        ...     "inserted_at": "2026-08-10T09:00:00Z", "updated_at": "2026-08-10T09:00:00Z"})
        >>> instance.status
        'pending'
    """

    type: Literal["agent_instance"]
    id: str
    account_id: str
    agent_id: str
    agent_version_id: str
    environment_id: str
    agent_deployment_id: str
    status: AgentStatus
    inserted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    termination_reason: str | None = None
    external_identifier: str | None = None
    span_counts: AgentInstanceSpanCounts | None = None
    purpose: InstancePurpose | None = None
    quality_payloads: dict[str, dict[str, Any]] | None = None
    quality_summaries: dict[str, str] | None = None
