"""The HTTP client (published import path ``prefactor_http.client``), with the config,
errors and retry helper the published module also offers from here."""

from __future__ import annotations

from prefactor_http._client import DEFAULT_SDK_HEADER, ClientState, PrefactorHttpClient
from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorValidationError,
    is_transient_http_error,
)
from prefactor_http.retry import RetryHandler

__all__ = [
    "DEFAULT_SDK_HEADER",
    "ClientState",
    "HttpClientConfig",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorHttpClient",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorValidationError",
    "RetryHandler",
    "is_transient_http_error",
]
