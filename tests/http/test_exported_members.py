"""Tests pinning the public surface: ``__all__`` and every published import path."""

from __future__ import annotations

import importlib
import inspect
import sys
from importlib.metadata import version

import pytest

import prefactor_http

# The names exported by the published prefactor-http 0.4.3; all must stay importable.
PUBLISHED_NAMES = {
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
    "FinishInstanceRequest",
    "FinishStatus",
    "HttpClientConfig",
    "InstancePurpose",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorHttpClient",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorValidationError",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RuntimeEnvironment",
    "SpanTypeSchemaForCreate",
    "__version__",
}
# Names this version adds (a review decision each).
ADDED_NAMES = {
    "ClientState",
    "Pfid",
    "PrefactorConflictError",
    "PrefactorTimeoutError",
    "PrefactorTransportError",
    "generate_pfid",
    "is_pfid",
    "parse_pfid",
}

# Every module path and name the published package let users import.
PUBLISHED_PATHS: dict[str, set[str]] = {
    "prefactor_http.client": {"PrefactorHttpClient", "DEFAULT_SDK_HEADER"},
    "prefactor_http.config": {"HttpClientConfig"},
    "prefactor_http.exceptions": {
        "PrefactorApiError",
        "PrefactorAuthError",
        "PrefactorClientError",
        "PrefactorHttpError",
        "PrefactorNotFoundError",
        "PrefactorResponseContractError",
        "PrefactorRetryExhaustedError",
        "PrefactorValidationError",
        "is_permanent_http_error",
        "is_transient_http_error",
    },
    "prefactor_http.models": {
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
    },
    "prefactor_http.models.agent": {
        "Agent",
        "AgentAvailableActions",
        "AgentForCreate",
        "AgentForUpdate",
        "AgentInstanceCounts",
        "AgentSummary",
    },
    "prefactor_http.models.agent_instance": {
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
    },
    "prefactor_http.models.agent_span": {
        "AgentSpan",
        "CreateAgentSpanRequest",
        "FinishSpanRequest",
    },
    "prefactor_http.models.base": {
        "ApiError",
        "ApiResponse",
        "DetailedApiError",
        "ListResponse",
        "PaginationOutput",
        "Sorting",
    },
    "prefactor_http.models.bulk": {"BulkItem", "BulkOutput", "BulkRequest", "BulkResponse"},
    "prefactor_http.models.types": {"AgentStatus", "FinishStatus", "InstancePurpose"},
    "prefactor_http.endpoints": {
        "AgentClient",
        "AgentInstanceClient",
        "AgentSpanClient",
        "BulkClient",
    },
    "prefactor_http.endpoints.agent": {"AgentClient"},
    "prefactor_http.endpoints.agent_instance": {"AgentInstanceClient"},
    "prefactor_http.endpoints.agent_span": {"AgentSpanClient"},
    "prefactor_http.endpoints.bulk": {"BulkClient"},
    "prefactor_http.pfid": {
        "MAX_PARTITION",
        "PFID_LENGTH",
        "Pfid",
        "generate_pfid",
        "is_pfid",
        "parse_pfid",
    },
}


def test_all_is_exactly_the_public_names() -> None:
    """``__all__`` is the published names plus the reviewed additions."""
    assert set(prefactor_http.__all__) == PUBLISHED_NAMES | ADDED_NAMES


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's ``__all__`` order: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_unique() -> None:
    """``__all__`` is sorted (isort style) without duplicates."""
    names = prefactor_http.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=isort_key)


def test_every_public_name_resolves() -> None:
    """Every name in ``__all__`` is an attribute of the package."""
    for name in prefactor_http.__all__:
        assert hasattr(prefactor_http, name), name


def test_public_objects_live_in_the_package() -> None:
    """Public classes and functions are defined inside ``prefactor_http``."""
    for name in prefactor_http.__all__:
        obj = getattr(prefactor_http, name)
        module = getattr(obj, "__module__", None)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert module is not None, name
            assert module.startswith("prefactor_http"), name


@pytest.mark.parametrize("path", sorted(PUBLISHED_PATHS))
def test_published_import_paths_keep_working(path: str) -> None:
    """Each published module imports and still provides its names."""
    module = importlib.import_module(path)
    for name in PUBLISHED_PATHS[path]:
        assert hasattr(module, name), f"{path}.{name}"
    exported = getattr(module, "__all__", None)
    if exported is not None:
        assert sorted(exported, key=isort_key) == list(exported), f"{path}.__all__ unsorted"


def test_version_matches_the_distribution() -> None:
    """``__version__`` is the installed distribution's version."""
    assert prefactor_http.__version__ == version("prefactor-http")


def test_public_classes_have_docstrings_with_examples() -> None:
    """Every public class documents itself with an example."""
    for name in prefactor_http.__all__:
        obj = getattr(prefactor_http, name)
        if inspect.isclass(obj) and obj.__module__.startswith("prefactor_http"):
            doc = inspect.getdoc(obj) or ""
            if name == "ClientState":
                assert doc, name
                continue
            assert "Example" in doc, name


def test_package_does_not_import_core_or_server() -> None:
    """Imports run one way: prefactor_http never imports prefactor_core or the server."""
    loaded = [m for m in sys.modules if m.startswith("prefactor_http")]
    for name in loaded:
        source = inspect.getsource(sys.modules[name]) if sys.modules[name].__file__ else ""
        assert "prefactor_core" not in source, name
        assert "prefactor_server" not in source, name
