"""The public surface of prefactor_core: every import path, name, signature and default
that the seed documents promise (code written for the published package must run)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

import prefactor_core

# (module, name) pairs users import today, from the seed documents.
IMPORT_PATHS = [
    ("prefactor_core", name)
    for name in (
        "AgentInstance",
        "AgentInstanceHandle",
        "ClientAlreadyInitializedError",
        "ClientNotInitializedError",
        "InMemoryQueue",
        "InstanceNotFoundError",
        "Operation",
        "OperationError",
        "OperationType",
        "PrefactorCoreClient",
        "PrefactorCoreConfig",
        "PrefactorCoreError",
        "PrefactorTelemetryFailureError",
        "Queue",
        "QueueClosedError",
        "QueueConfig",
        "SchemaRegistry",
        "Span",
        "SpanContext",
        "SpanContextStack",
        "SpanNotFoundError",
        "TaskExecutor",
        "generate_idempotency_key",
        "validate_idempotency_key",
    )
] + [
    ("prefactor_core.client", "PrefactorCoreClient"),
    ("prefactor_core.config", "PrefactorCoreConfig"),
    ("prefactor_core.config", "QueueConfig"),
    ("prefactor_core.queue", "Queue"),
    ("prefactor_core.queue", "InMemoryQueue"),
    ("prefactor_core.queue", "QueueClosedError"),
    ("prefactor_core.queue", "TaskExecutor"),
    ("prefactor_core.queue.base", "Queue"),
    ("prefactor_core.queue.base", "QueueClosedError"),
    ("prefactor_core.queue.memory", "InMemoryQueue"),
    ("prefactor_core.queue.executor", "TaskExecutor"),
    ("prefactor_core.operations", "Operation"),
    ("prefactor_core.operations", "OperationType"),
    ("prefactor_core.managers", "AgentInstanceHandle"),
    ("prefactor_core.managers", "AgentInstanceManager"),
    ("prefactor_core.managers", "SpanManager"),
    ("prefactor_core.managers.agent_instance", "AgentInstanceHandle"),
    ("prefactor_core.managers.agent_instance", "AgentInstanceManager"),
    ("prefactor_core.managers.span", "SpanManager"),
    ("prefactor_core.schema_registry", "SchemaRegistry"),
    ("prefactor_core.span_context", "SpanContext"),
    ("prefactor_core.context_stack", "SpanContextStack"),
    ("prefactor_core.models", "AgentInstance"),
    ("prefactor_core.models", "Span"),
    ("prefactor_core.exceptions", "PrefactorTelemetryFailureError"),
    ("prefactor_core.utils", "generate_idempotency_key"),
    ("prefactor_core.utils", "validate_idempotency_key"),
]


@pytest.mark.parametrize(("module", "name"), IMPORT_PATHS)
def test_import_path(module: str, name: str) -> None:
    """Every documented import path resolves to the same object as the package's."""
    value = getattr(importlib.import_module(module), name)
    if hasattr(prefactor_core, name):
        assert value is getattr(prefactor_core, name)


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and names exactly the public objects of the package."""
    assert list(prefactor_core.__all__) == sorted(prefactor_core.__all__)
    public = {
        name
        for name, value in vars(prefactor_core).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public | {"__version__"} == set(prefactor_core.__all__)


def _params(obj: Any) -> list[tuple[str, Any]]:
    signature = inspect.signature(obj)
    return [
        (p.name, p.default if p.default is not inspect.Parameter.empty else "<required>")
        for p in signature.parameters.values()
        if p.name != "self"
    ]


REQ = "<required>"

# Documented signatures: each documented parameter in its documented position, with its
# documented default. Parameters added after them are keyword-only extensions.
SIGNATURES: list[tuple[Any, list[tuple[str, Any]]]] = [
    (
        prefactor_core.PrefactorCoreClient,
        [("config", REQ), ("queue", None), ("sdk_header_entry", None)],
    ),
    (
        prefactor_core.PrefactorCoreClient.create_agent_instance,
        [
            ("agent_id", None),
            ("agent_version", None),
            ("agent_schema_version", None),
            ("instance_id", None),
            ("external_schema_version_id", None),
        ],
    ),
    (
        prefactor_core.PrefactorCoreClient.span,
        [("instance_id", REQ), ("schema_name", REQ), ("parent_span_id", None), ("payload", None)],
    ),
    (
        prefactor_core.PrefactorCoreClient.create_span,
        [("instance_id", REQ), ("schema_name", REQ), ("parent_span_id", None), ("payload", None)],
    ),
    (prefactor_core.PrefactorCoreClient.finish_span, [("span_id", REQ), ("result_payload", None)]),
    (prefactor_core.AgentInstanceHandle, [("instance_id", REQ), ("client", REQ)]),
    (prefactor_core.AgentInstanceHandle.finish, [("status", "complete")]),
    (
        prefactor_core.AgentInstanceHandle.span,
        [("schema_name", REQ), ("parent_span_id", None), ("payload", None)],
    ),
    (
        prefactor_core.AgentInstanceHandle.create_span,
        [("schema_name", REQ), ("parent_span_id", None), ("payload", None)],
    ),
    (prefactor_core.AgentInstanceHandle.finish_span, [("span_id", REQ), ("result_payload", None)]),
    (prefactor_core.AgentInstanceManager, [("http_client", REQ), ("enqueue", REQ)]),
    (
        # The published 0.5.3 order; the seed's (agent_id first) is recognised by type
        # (tests/compat/test_published_behaviour.py).
        prefactor_core.AgentInstanceManager.register,
        [
            ("agent_version", REQ),
            ("agent_schema_version", REQ),
            ("agent_id", None),
            ("instance_id", None),
        ],
    ),
    (prefactor_core.AgentInstanceManager.start, [("instance_id", REQ)]),
    (
        prefactor_core.AgentInstanceManager.start_with_idempotency_key,
        [("instance_id", REQ), ("idempotency_key", REQ)],
    ),
    (prefactor_core.AgentInstanceManager.finish, [("instance_id", REQ), ("status", "complete")]),
    (
        prefactor_core.AgentInstanceManager.finish_with_idempotency_key,
        [("instance_id", REQ), ("idempotency_key", REQ), ("status", "complete")],
    ),
    (prefactor_core.SpanManager, [("http_client", REQ), ("enqueue", REQ)]),
    (
        prefactor_core.SpanManager.prepare,
        [("instance_id", REQ), ("schema_name", REQ), ("parent_span_id", None)],
    ),
    (prefactor_core.SpanManager.start, [("temp_id", REQ), ("payload", None)]),
    (prefactor_core.SpanManager.cancel_unstarted, [("temp_id", REQ)]),
    (
        prefactor_core.SpanManager.create,
        [
            ("instance_id", REQ),
            ("schema_name", REQ),
            ("parent_span_id", None),
            ("payload", None),
            ("span_id", None),
        ],
    ),
    (
        prefactor_core.SpanManager.finish,
        [
            ("span_id", REQ),
            ("result_payload", None),
            ("status", "complete"),
            ("idempotency_key", None),
        ],
    ),
    (prefactor_core.SpanManager.get, [("span_id", REQ)]),
    (
        prefactor_core.SpanContext,
        [("temp_id", REQ), ("span_manager", REQ), ("default_payload", None)],
    ),
    (prefactor_core.SpanContext.start, [("payload", None)]),
    (prefactor_core.SpanContext.complete, [("result", None)]),
    (prefactor_core.SpanContext.fail, [("result", None)]),
    (prefactor_core.SpanContext.set_result, [("data", REQ)]),
    (prefactor_core.SchemaRegistry.register, [("schema_name", REQ), ("schema", REQ)]),
    (prefactor_core.SchemaRegistry.register_result, [("schema_name", REQ), ("result_schema", REQ)]),
    (
        prefactor_core.SchemaRegistry.register_type,
        [
            ("name", REQ),
            ("params_schema", REQ),
            ("result_schema", None),
            ("title", None),
            ("description", None),
            ("template", None),
        ],
    ),
    (prefactor_core.SchemaRegistry.register_unsafe, [("schema_name", REQ), ("schema", REQ)]),
    (prefactor_core.SchemaRegistry.get, [("schema_name", REQ)]),
    (prefactor_core.SchemaRegistry.to_agent_schema_version, [("external_id", REQ)]),
    (prefactor_core.SchemaRegistry.merge, [("other", REQ)]),
    (prefactor_core.InMemoryQueue.close, [("num_waiters", 1)]),
    (prefactor_core.Queue.close, [("num_waiters", 1)]),
    (
        prefactor_core.TaskExecutor,
        [
            ("queue", REQ),
            ("handler", REQ),
            ("num_workers", 3),
            ("max_retries", 3),
            ("is_retryable", None),
        ],
    ),
    (
        prefactor_core.Operation,
        [
            ("type", REQ),
            ("payload", REQ),
            ("timestamp", REQ),
            ("idempotency_key", None),
            ("metadata", None),
        ],
    ),
    (prefactor_core.OperationError, [("message", REQ), ("operation_type", None)]),
    (
        prefactor_core.PrefactorTelemetryFailureError,
        [("message", REQ), ("cause", REQ), ("operation_type", None), ("dropped_operations", 0)],
    ),
    (prefactor_core.validate_idempotency_key, [("key", REQ)]),
]


@pytest.mark.parametrize(
    ("obj", "expected"), SIGNATURES, ids=lambda v: getattr(v, "__qualname__", "")
)
def test_documented_signature(obj: Any, expected: list[tuple[str, Any]]) -> None:
    """Each documented parameter keeps its name, position and default."""
    actual = _params(obj)
    assert actual[: len(expected)] == expected
    extra = inspect.signature(obj).parameters
    for name, _ in actual[len(expected) :]:
        assert (
            extra[name].kind is inspect.Parameter.KEYWORD_ONLY
            or extra[name].default is not inspect.Parameter.empty
        )


def test_documented_methods_exist() -> None:
    """The documented methods and properties are all there."""
    expected = {
        prefactor_core.PrefactorCoreClient: [
            "initialize", "close", "__aenter__", "__aexit__", "create_agent_instance", "span",
            "create_span", "finish_span", "instance_manager",
        ],
        prefactor_core.AgentInstanceHandle: [
            "id", "start", "finish", "span", "create_span", "finish_span",
            "__aenter__", "__aexit__",
        ],
        prefactor_core.SpanContext: [
            "id", "start", "complete", "fail", "cancel", "finish", "set_result",
            "__aenter__", "__aexit__",
        ],
        prefactor_core.SpanContextStack: ["push", "pop", "peek", "depth", "get_stack", "is_empty"],
        prefactor_core.SchemaRegistry: [
            "register", "register_result", "register_type", "register_unsafe", "get", "has",
            "list", "merge", "to_agent_schema_version",
        ],
        prefactor_core.InMemoryQueue: ["put", "get", "size", "close", "closed"],
        prefactor_core.TaskExecutor: ["start", "stop"],
    }  # fmt: skip
    for cls, names in expected.items():
        missing = [name for name in names if not hasattr(cls, name)]
        assert not missing, f"{cls.__name__} lacks {missing}"


def test_config_defaults_match_the_documents() -> None:
    """QueueConfig's documented fields keep their defaults."""
    config = prefactor_core.QueueConfig()
    assert (config.num_workers, config.max_retries, config.retry_delay_base) == (3, 3, 1.0)
    assert prefactor_core.PrefactorCoreConfig.model_fields["schema_registry"].default is None


def test_exceptions_form_the_documented_tree() -> None:
    """Every SDK exception derives from PrefactorCoreError, which derives from Exception."""
    for name in (
        "ClientAlreadyInitializedError",
        "ClientNotInitializedError",
        "OperationError",
        "InstanceNotFoundError",
        "SpanNotFoundError",
        "PrefactorTelemetryFailureError",
    ):
        assert issubclass(getattr(prefactor_core, name), prefactor_core.PrefactorCoreError)
    assert issubclass(prefactor_core.PrefactorCoreError, Exception)
    assert issubclass(prefactor_core.QueueClosedError, Exception)
