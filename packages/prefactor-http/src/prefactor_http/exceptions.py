"""The errors raised by ``prefactor_http``, all in one tree.

::

    PrefactorHttpError                    base; every error carries .method and .path
    ├── PrefactorClientError              misuse of the client (not open, already closed)
    ├── PrefactorTransportError           no HTTP response: connection failed, reset, ...
    │   └── PrefactorTimeoutError         ... or a connect/read/write/pool timeout
    ├── PrefactorApiError                 the API answered with an error status (>= 400)
    │   ├── PrefactorAuthError            401, 403
    │   ├── PrefactorNotFoundError        404
    │   ├── PrefactorConflictError        409 (e.g. finishing a terminated instance)
    │   └── PrefactorValidationError      400, 422
    ├── PrefactorResponseContractError    body not a JSON object, or a 2xx body that does
    │                                     not match the resource model
    └── PrefactorRetryExhaustedError      every attempt failed; .last_error is the last one

Transient errors (worth trying again later) are transport errors, API errors with status
429 or >= 500, and contract errors carrying such a status; ``is_transient_http_error`` and
``is_permanent_http_error`` classify an exception the way the retry loop does (wire
protocol 1.7), looking through ``PrefactorRetryExhaustedError`` to its last error.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorConflictError",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorTimeoutError",
    "PrefactorTransportError",
    "PrefactorValidationError",
    "is_permanent_http_error",
    "is_transient_http_error",
]


class PrefactorHttpError(Exception):
    """Base class of every error raised by ``prefactor_http``.

    Example:
        >>> try:
        ...     raise PrefactorHttpError("boom", method="GET", path="/api/v1/ping")
        ... except PrefactorHttpError as exc:
        ...     (exc.method, exc.path)
        ('GET', '/api/v1/ping')

    Attributes:
        message: The message without the request context.
        method: HTTP method of the request that failed, when there was one.
        path: API path of the request that failed, when there was one.
    """

    def __init__(
        self,
        message: str = "",
        *args: object,
        method: str | None = None,
        path: str | None = None,
    ):
        # Extra positional arguments are kept in ``args``, as ``Exception`` keeps them.
        self.message = message
        self.method = method
        self.path = path
        super().__init__(message, *args)

    def __str__(self) -> str:
        text = self.message if len(self.args) <= 1 else super().__str__()
        if self.method is None and self.path is None:
            return text
        return f"{text} ({self.method or '?'} {self.path or '?'})"


class PrefactorClientError(PrefactorHttpError):
    """The client was used wrongly, e.g. a request before ``open()`` or after ``close()``.

    Example:
        >>> client = PrefactorHttpClient(config)  # doctest: +SKIP
        >>> await client.validate_token()  # doctest: +SKIP
        PrefactorClientError: the client is not open; ...
    """


class PrefactorTransportError(PrefactorHttpError):
    """No HTTP response arrived: the connection failed, was reset, or broke mid-response.

    Example:
        >>> try:  # doctest: +SKIP
        ...     await client.validate_token()
        ... except PrefactorTransportError as exc:
        ...     print(exc.cause)

    Attributes:
        cause: The underlying ``httpx`` exception.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        cause: BaseException | None = None,
    ):
        super().__init__(message, method=method, path=path)
        self.cause = cause


class PrefactorTimeoutError(PrefactorTransportError):
    """A connect, read, write or connection-pool timeout expired.

    Example:
        >>> isinstance(PrefactorTimeoutError("slow"), PrefactorTransportError)
        True
    """


class PrefactorApiError(PrefactorHttpError):
    """The API answered with an error status and a JSON error envelope.

    Example:
        >>> err = PrefactorApiError("busy", "rate_limited", 429, retry_after=2.0)
        >>> (err.status_code, err.code, err.retry_after)
        (429, 'rate_limited', 2.0)

    Attributes:
        status_code: The HTTP status.
        code: The envelope's ``code`` (``"unknown"`` when absent).
        errors: The envelope's field errors (``{}`` when absent).
        retry_after: Seconds the server asked us to wait (``Retry-After``), or None.
    """

    def __init__(
        self,
        message: str,
        code: str,
        status_code: int,
        errors: dict[str, Any] | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, method=method, path=path)
        self.code = code
        self.status_code = status_code
        self.errors: dict[str, Any] = {} if errors is None else errors
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.method or '?'} {self.path or '?'} → " if self.method or self.path else ""
        return f"{self.message} ({where}{self.status_code} {self.code})"


class PrefactorAuthError(PrefactorApiError):
    """The token is missing, invalid, expired (401) or not allowed to do this (403).

    Example:
        >>> try:  # doctest: +SKIP
        ...     await client.validate_token()
        ... except PrefactorAuthError:
        ...     print("check PREFACTOR_API_TOKEN")
    """


class PrefactorNotFoundError(PrefactorApiError):
    """The resource named in the path does not exist (404).

    Example:
        >>> try:  # doctest: +SKIP
        ...     await client.agent_instances.get("ins_missing")
        ... except PrefactorNotFoundError as exc:
        ...     print(exc.code)
    """


class PrefactorConflictError(PrefactorApiError):
    """The request conflicts with the resource's state (409).

    The API answers 409 when an instance is finished after it was terminated; the SDK
    treats that case as success.

    Example:
        >>> try:  # doctest: +SKIP
        ...     await client.agent_instances.finish("ins_0001", status="complete")
        ... except PrefactorConflictError:
        ...     pass
    """


class PrefactorValidationError(PrefactorApiError):
    """The API rejected the request body or parameters (400, 422); see ``errors``.

    Example:
        >>> err = PrefactorValidationError("bad", "validation_error", 422, {"id": ["taken"]})
        >>> err.errors
        {'id': ['taken']}
    """


class PrefactorResponseContractError(PrefactorHttpError):
    """The response broke the API's contract.

    Raised when a body is not JSON or not a JSON object (any status), and when a 2xx body
    does not validate against the resource model (then ``status_code`` is None).

    Example:
        >>> err = PrefactorResponseContractError("not JSON", status_code=502)
        >>> err.status_code
        502

    Attributes:
        status_code: The HTTP status, when the error was found before parsing succeeded.
        body_snippet: The start of the offending body, whitespace collapsed.
        cause: The JSON or pydantic error behind this one.
        retry_after: Seconds from a ``Retry-After`` header on the response, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body_snippet: str | None = None,
        cause: Exception | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.body_snippet = body_snippet
        self.cause = cause
        self.retry_after = retry_after


class PrefactorRetryExhaustedError(PrefactorHttpError):
    """Every attempt of a retried request failed with a transient error.

    Example:
        >>> err = PrefactorRetryExhaustedError("gave up", PrefactorTimeoutError("slow"))
        >>> type(err.last_error).__name__
        'PrefactorTimeoutError'

    Attributes:
        last_error: The error of the final attempt.
        attempts: How many attempts were made.
    """

    def __init__(
        self,
        message: str,
        last_error: Exception | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        attempts: int | None = None,
    ):
        super().__init__(message, method=method, path=path)
        self.last_error = last_error
        self.attempts = attempts


def _is_retryable_status(status_code: int | None) -> bool:
    return status_code is not None and (status_code == 429 or status_code >= 500)


def is_transient_http_error(error: BaseException) -> bool:
    """Return True when the failure may go away if the same request is sent again.

    Args:
        error: Any exception; exhausted retries are judged by their last error.

    Returns:
        True for transport errors and timeouts (ours or raw ``httpx``/``asyncio`` ones),
        API errors with status 429 or >= 500, and contract errors carrying such a status.
    """
    if isinstance(error, PrefactorRetryExhaustedError):
        return error.last_error is not None and is_transient_http_error(error.last_error)
    if isinstance(error, (PrefactorTransportError, httpx.TransportError, TimeoutError)):
        return True
    if isinstance(error, PrefactorApiError | PrefactorResponseContractError):
        return _is_retryable_status(error.status_code)
    return False


def is_permanent_http_error(error: BaseException) -> bool:
    """Return True when sending the same request again cannot succeed.

    Args:
        error: Any exception; exhausted retries are judged by their last error.

    Returns:
        True for API errors with a 4xx status other than 429, and for contract errors
        without a retryable status. Other exceptions (including transient ones and
        client misuse) are neither transient nor permanent and return False.
    """
    if isinstance(error, PrefactorRetryExhaustedError):
        return error.last_error is not None and is_permanent_http_error(error.last_error)
    if isinstance(error, PrefactorResponseContractError):
        return not _is_retryable_status(error.status_code)
    if isinstance(error, PrefactorApiError):
        return 400 <= error.status_code < 500 and error.status_code != 429
    return False
