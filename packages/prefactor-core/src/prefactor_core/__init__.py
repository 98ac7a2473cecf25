"""prefactor-core: trace AI agents (runs and nested spans) into the Prefactor API.

Every call on the agent's path only queues work; a background engine delivers it in
causal order, in batches, with retries that never duplicate, and never raises into the
agent. See ``PrefactorCoreClient`` for the entry point.
"""

from prefactor_core._engine.dispatcher import DeliveryStatistics
from prefactor_core._version import __version__
from prefactor_core.client import InstanceCreation, PrefactorCoreClient
from prefactor_core.config import PrefactorCoreConfig, QueueConfig
from prefactor_core.context_stack import SpanContextStack
from prefactor_core.context_threads import ContextThreadPoolExecutor, with_current_context
from prefactor_core.current import current_instance
from prefactor_core.exceptions import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    InstanceNotFoundError,
    OperationError,
    PrefactorCoreError,
    PrefactorTelemetryFailureError,
    PrefactorTerminatedError,
    SpanNotFoundError,
)
from prefactor_core.managers.agent_instance import AgentInstanceHandle, AgentInstanceManager
from prefactor_core.managers.span import SpanManager
from prefactor_core.models import AgentInstance, Span
from prefactor_core.monitoring import TerminationMonitor
from prefactor_core.operations import Operation, OperationType
from prefactor_core.queue import (
    InMemoryQueue,
    Queue,
    QueueClosedError,
    QueueFullError,
    SpoolLockedError,
    SpoolQueue,
    TaskExecutor,
)
from prefactor_core.runtime import build_runtime_environment
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_core.span_context import SpanContext
from prefactor_core.sync_client import SyncAgentInstanceHandle, SyncPrefactorCoreClient
from prefactor_core.sync_span import SyncSpanContext
from prefactor_core.tracing import trace
from prefactor_core.utils import (
    generate_idempotency_key,
    validate_idempotency_key,
    warn_missing_adaptor_config,
)

__all__ = [
    "AgentInstance",
    "AgentInstanceHandle",
    "AgentInstanceManager",
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "ContextThreadPoolExecutor",
    "DeliveryStatistics",
    "InMemoryQueue",
    "InstanceCreation",
    "InstanceNotFoundError",
    "Operation",
    "OperationError",
    "OperationType",
    "PrefactorCoreClient",
    "PrefactorCoreConfig",
    "PrefactorCoreError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "Queue",
    "QueueClosedError",
    "QueueConfig",
    "QueueFullError",
    "SchemaRegistry",
    "Span",
    "SpanContext",
    "SpanContextStack",
    "SpanManager",
    "SpanNotFoundError",
    "SpoolLockedError",
    "SpoolQueue",
    "SyncAgentInstanceHandle",
    "SyncPrefactorCoreClient",
    "SyncSpanContext",
    "TaskExecutor",
    "TerminationMonitor",
    "__version__",
    "build_runtime_environment",
    "current_instance",
    "generate_idempotency_key",
    "trace",
    "validate_idempotency_key",
    "warn_missing_adaptor_config",
    "with_current_context",
]
