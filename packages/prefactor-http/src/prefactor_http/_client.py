"""``PrefactorHttpClient``: one httpx connection pool, an explicit lifecycle, retries."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
import orjson

from prefactor_http._direct import DirectConnections
from prefactor_http._resources.agent_instances import AgentInstanceClient
from prefactor_http._resources.agent_spans import AgentSpanClient
from prefactor_http._resources.agents import AgentClient
from prefactor_http._resources.bulk import BulkClient
from prefactor_http._retry import RetryPolicy, parse_retry_after
from prefactor_http._types import ClockFunc, JitterFunc, JSONObject, QueryParams, SleepFunc
from prefactor_http._validation import check_idempotency_key
from prefactor_http._version import PACKAGE_NAME, PACKAGE_VERSION
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
    is_transient_http_error,
)
from prefactor_http.models.bulk import BulkResponse

__all__ = ["DEFAULT_SDK_HEADER", "ClientState", "PrefactorHttpClient"]

DEFAULT_SDK_HEADER = f"{PACKAGE_NAME}@{PACKAGE_VERSION}"
"""The ``X-Prefactor-SDK`` value when the client is used on its own (wire protocol 1.3)."""

_ERROR_BY_STATUS: dict[int, type[PrefactorApiError]] = {
    400: PrefactorValidationError,
    401: PrefactorAuthError,
    403: PrefactorAuthError,
    404: PrefactorNotFoundError,
    409: PrefactorConflictError,
    422: PrefactorValidationError,
}
_SNIPPET_LIMIT = 200
_OWN = frozenset({"authorization", "content-type", "accept", "x-prefactor-sdk"})
"""The client's own headers (lower case), which a request's extra headers cannot replace."""
_OWN_KEYED = _OWN | {"idempotency-key"}
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _loads(raw: bytes) -> Any:
    """Decode a JSON answer as the standard library's decoder does, faster.

    orjson reads it (an answer to a bulk request holds an output per item) unless it
    holds a run of 19 digits or more (a number orjson could read as a float where
    Python reads an exact integer); what orjson refuses but JSON allows (``NaN``,
    UTF-16 and UTF-32 text) goes to the standard library's decoder too, which also
    raises the error for text that is not JSON.
    """
    if _NINETEEN_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


class ClientState(enum.Enum):
    """Where a client is in its life: it is opened once and closed once (as httpx's)."""

    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def _snippet(raw: bytes) -> str | None:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    if not text:
        return None
    return text if len(text) <= _SNIPPET_LIMIT else f"{text[:_SNIPPET_LIMIT]}..."


class PrefactorHttpClient:
    """Async client for the Prefactor API, built on one shared ``httpx.AsyncClient``.

    When it talks to the network itself (no ``transport``, no proxy in the
    environment), its POSTs take a leaner direct HTTP/1.1 path on connections of its own
    (``prefactor_http._direct``), with the same TLS context, timeouts, errors and retries.

    Open it with ``async with`` (or ``await client.open()`` … ``await client.close()``);
    requests before opening or after closing raise ``PrefactorClientError``, and a closed
    client cannot be reopened. Endpoints are grouped as ``agent_instances``,
    ``agent_spans``, ``agents`` and ``bulk``. Transient failures are retried as
    ``HttpClientConfig`` says; every endpoint method takes ``retry=False`` to make one
    attempt only.

    Example:
        >>> config = HttpClientConfig(api_url="http://localhost:8000", api_token="pf_dev")
        >>> async with PrefactorHttpClient(config) as client:  # doctest: +SKIP
        ...     await client.validate_token()
        ...     span = await client.agent_spans.create("ins_1", "agent:llm", "active")

    Args:
        config: URL, token, timeouts and retry settings.
        sdk_header: The ``X-Prefactor-SDK`` value, sent as given (e.g.
            ``"prefactor-langchain@0.3.0 prefactor-core@0.6.0"``); ``DEFAULT_SDK_HEADER``
            when None or blank.
        transport: An httpx transport, e.g. ``httpx.MockTransport`` or
            ``httpx.ASGITransport`` for in-process tests; every request goes through
            it. The network when None.
        sleep: Awaited with each retry delay in seconds; ``asyncio.sleep`` when None.
        clock: Current Unix time, to read HTTP-date ``Retry-After`` values; ``time.time``
            when None.
        jitter: Returns a float in ``[0, 1)`` for the backoff jitter; ``random.random``
            when None.
    """

    def __init__(
        self,
        config: HttpClientConfig,
        sdk_header: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: SleepFunc | None = None,
        clock: ClockFunc | None = None,
        jitter: JitterFunc | None = None,
    ) -> None:
        self.config = config
        self._base_url = config.api_url.rstrip("/")
        self._transport = transport
        self._clock: ClockFunc = time.time if clock is None else clock
        self._retry = RetryPolicy.from_config(config, jitter, sleep)
        self._state = ClientState.UNOPENED
        self._http: httpx.AsyncClient | None = None
        self._direct: DirectConnections | None = None
        self._sdk_header = DEFAULT_SDK_HEADER
        self._headers: dict[str, str] = {}
        self.sdk_header = sdk_header
        self._agent_instances = AgentInstanceClient(self)
        self._agent_spans = AgentSpanClient(self)
        self._agents = AgentClient(self)
        self._bulk = BulkClient(self)

    def __repr__(self) -> str:
        return f"<PrefactorHttpClient {self._base_url} {self._state.name}>"

    # -- the resource clients ----------------------------------------------------------

    @property
    def agent_instances(self) -> AgentInstanceClient:
        """Agent instances: register, start, finish, get, record quality."""
        return self._agent_instances

    @property
    def agent_spans(self) -> AgentSpanClient:
        """Spans: create and finish."""
        return self._agent_spans

    @property
    def agents(self) -> AgentClient:
        """Agents: list, get, create, update, retire, reinstate, delete."""
        return self._agents

    @property
    def bulk(self) -> BulkClient:
        """The bulk endpoint: many writes in one request."""
        return self._bulk

    # -- header ------------------------------------------------------------------------

    @property
    def sdk_header(self) -> str:
        """The ``X-Prefactor-SDK`` value sent with every request.

        Setting it (None or blank restores ``DEFAULT_SDK_HEADER``) changes the header of
        all later requests, also on an open client.
        """
        return self._sdk_header

    @sdk_header.setter
    def sdk_header(self, value: str | None) -> None:
        header = value.strip() if value is not None else ""
        self._sdk_header = header or DEFAULT_SDK_HEADER
        # Replaced, never mutated, so a request in flight keeps a consistent set.
        self._headers = {
            "Authorization": f"Bearer {self.config.api_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Prefactor-SDK": self._sdk_header,
        }

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """``UNOPENED``, ``OPENED`` or ``CLOSED``."""
        return self._state

    async def open(self) -> PrefactorHttpClient:
        """Create the connection pool; the client can send requests afterwards.

        Returns:
            The client itself.

        Raises:
            PrefactorClientError: If the client is already open, or was closed.
        """
        if self._state is ClientState.OPENED:
            raise PrefactorClientError("the client is already open")
        if self._state is ClientState.CLOSED:
            raise PrefactorClientError(
                "the client was closed and cannot be reopened; create a new PrefactorHttpClient"
            )
        config = self.config
        self._direct = DirectConnections.for_url(
            self._base_url, self._transport, config.connect_timeout, config.request_timeout
        )
        tls = None if self._direct is None else self._direct.ssl_context
        self._http = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(config.request_timeout, connect=config.connect_timeout),
            follow_redirects=False,
            verify=True if tls is None else tls,
        )
        self._state = ClientState.OPENED
        return self

    async def close(self) -> None:
        """Close the connection pool. Safe to call more than once, or before ``open()``."""
        http, self._http = self._http, None
        direct, self._direct = self._direct, None
        self._state = ClientState.CLOSED
        if direct is not None:
            await direct.aclose()
        if http is not None:
            await http.aclose()

    async def aclose(self) -> None:
        """Same as ``close()``, named as in httpx."""
        await self.close()

    async def __aenter__(self) -> PrefactorHttpClient:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_open(self, method: str, path: str) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._state is ClientState.CLOSED:
            message = "the client is closed; create a new PrefactorHttpClient"
        else:
            message = "the client is not open; use 'async with client:' or 'await client.open()'"
        raise PrefactorClientError(message, method=method, path=path)

    # -- requests ----------------------------------------------------------------------

    async def validate_token(self, *, retry: bool = True) -> dict[str, Any]:
        """Check the token with ``GET /api/v1/ping``.

        Returns:
            The ping response as sent (a JSON object, possibly with ``capabilities``).

        Raises:
            PrefactorAuthError: When the token is missing, invalid or expired.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        return await self.request("GET", "/api/v1/ping", retry=retry)

    async def send_bulk(self, items: list[dict[str, Any]], *, retry: bool = True) -> BulkResponse:
        """Post raw bulk items as ``{"items": items}``; see ``BulkClient.send_items``.

        Raises:
            ValueError: For no items, a missing ``_type``, or a missing, badly sized or
                repeated idempotency key (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        return await self.bulk.send_items(items, retry=retry)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json_data: JSONObject | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        pause: Callable[[], Awaitable[object]] | None = None,
    ) -> JSONObject:
        """Send a request to ``{api_url}{path}``, retrying transient failures.

        Every attempt sends the same body and headers.

        Args:
            method: ``GET``, ``POST``, ``PUT`` or ``DELETE``.
            path: The API path, starting with ``/`` (e.g. ``/api/v1/ping``).
            params: Query parameters.
            json_data: The JSON body; no body when None.
            idempotency_key: Sent as the ``Idempotency-Key`` header (1–64 characters).
            retry: Retry transient failures (``False``: exactly one attempt).
            content: A body already encoded as JSON, sent as it is instead of
                ``json_data`` (the SDK's delivery engine renders its own bodies); or an
                async iterable of its pieces, streamed as they come (give its length in
                a ``Content-Length`` header; it can be sent once, so only with
                ``retry=False``).
            headers: Extra headers (e.g. ``Prefer``); they cannot replace the
                client's own (authorization, content type, accept, SDK header, and the
                idempotency key when one is given): one named like those, in any case,
                is dropped.
            pause: Awaited when an answer has arrived, before it is decoded: the SDK's
                delivery engine gives the event loop back there (decoding a bulk answer
                of a thousand outputs takes a few hundred microseconds).

        Returns:
            The response body, a JSON object.

        Raises:
            ValueError: For a bad path or idempotency key, or a streamed body with
                ``retry`` (nothing is sent).
            PrefactorClientError: If the client is not open.
            PrefactorRetryExhaustedError: When every retry failed; ``last_error`` says why.
            PrefactorHttpError: The error of the only attempt, when it was not retried.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        if headers:
            # Names are case-insensitive: an extra header named like one of the client's
            # own (or like Idempotency-Key when a key is given) is dropped, not sent twice.
            own = _OWN_KEYED if idempotency_key is not None else _OWN
            headers = {
                **{name: value for name, value in headers.items() if name.lower() not in own},
                **self._headers,
            }
        else:
            headers = self._headers
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        # Encoded once, so every retry sends the same bytes; compact to keep bulk bodies small.
        if content is not None and json_data is not None:
            raise ValueError("pass json_data or content, not both")
        if retry and content is not None and not isinstance(content, bytes):
            raise ValueError("a streamed body can be sent once: pass retry=False")
        if json_data is not None:
            content = _JSON_ENCODER.encode(json_data).encode()
        url = self._base_url + path
        attempt = 0
        while True:
            http = self._require_open(method, path)
            attempt += 1
            try:
                return await self._send_once(
                    http, method, url, path, params, headers, content, pause
                )
            except PrefactorHttpError as exc:
                if not is_transient_http_error(exc):
                    raise
                if not retry or not self._retry.allows(attempt - 1):
                    if attempt == 1:
                        raise
                    raise PrefactorRetryExhaustedError(
                        f"request failed after {attempt} attempts: {exc}",
                        exc,
                        method=method,
                        path=path,
                        attempts=attempt,
                    ) from exc
                retry_after: float | None = getattr(exc, "retry_after", None)
                await self._retry.wait(attempt - 1, retry_after)

    async def _send_once(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        path: str,
        params: QueryParams | None,
        headers: dict[str, str],
        content: bytes | AsyncIterable[bytes] | None,
        pause: Callable[[], Awaitable[object]] | None,
    ) -> JSONObject:
        direct = self._direct
        try:
            if direct is not None and method == "POST" and not params and direct.takes(path):
                status, retry_header, raw = await direct.post(path, headers, content)
            else:
                response = await http.request(
                    method, url, params=params, content=content, headers=headers
                )
                status, raw = response.status_code, response.content
                retry_header = response.headers.get("retry-after")
        except httpx.TimeoutException as exc:
            raise PrefactorTimeoutError(
                f"request timed out ({type(exc).__name__})", method=method, path=path, cause=exc
            ) from exc
        except httpx.RequestError as exc:
            raise PrefactorTransportError(
                f"request failed before a response arrived ({type(exc).__name__}: {exc})",
                method=method,
                path=path,
                cause=exc,
            ) from exc

        if pause is not None:
            await pause()
        retry_after = parse_retry_after(retry_header, self._clock()) if status >= 400 else None
        try:
            data = _loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise PrefactorResponseContractError(
                f"expected a JSON object, got a body that is not JSON (HTTP {status})",
                status_code=status,
                body_snippet=_snippet(raw),
                cause=exc,
                method=method,
                path=path,
                retry_after=retry_after,
            ) from exc
        if not isinstance(data, dict):
            raise PrefactorResponseContractError(
                f"expected a JSON object, got {type(data).__name__} (HTTP {status})",
                status_code=status,
                body_snippet=_snippet(raw),
                method=method,
                path=path,
                retry_after=retry_after,
            )
        if status >= 400:
            raise self._api_error(status, data, method, path, retry_after)
        return data

    @staticmethod
    def _api_error(
        status: int, data: JSONObject, method: str, path: str, retry_after: float | None
    ) -> PrefactorApiError:
        code = data.get("code")
        message = data.get("message")
        errors = data.get("errors")
        error_class = _ERROR_BY_STATUS.get(status, PrefactorApiError)
        return error_class(
            message if isinstance(message, str) else f"HTTP {status}",
            code if isinstance(code, str) else "unknown",
            status,
            errors if isinstance(errors, dict) else {},
            method=method,
            path=path,
            retry_after=retry_after,
        )
