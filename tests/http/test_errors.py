"""Tests for the error tree: status mapping, envelopes, contract and transport errors."""

from __future__ import annotations

import json

import httpx
import pytest

from prefactor_http import (
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
from prefactor_http import exceptions as exc_module
from prefactor_http.exceptions import is_permanent_http_error, is_transient_http_error

PING = "/api/v1/ping"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, PrefactorValidationError),
        (401, PrefactorAuthError),
        (403, PrefactorAuthError),
        (404, PrefactorNotFoundError),
        (409, PrefactorConflictError),
        (422, PrefactorValidationError),
        (405, PrefactorApiError),
        (429, PrefactorApiError),
        (500, PrefactorApiError),
        (501, PrefactorApiError),
        (503, PrefactorApiError),
    ],
)
async def test_status_maps_to_error_class(client, api, status: int, error_class: type) -> None:
    """Each error status raises its class with status, code, message, method and path."""
    api.reply(status, {"status": "error", "code": "some_code", "message": "Some message"})
    with pytest.raises(error_class) as info:
        await client.request("GET", PING, retry=False)
    error = info.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.code == "some_code"
    assert error.message == "Some message"
    assert (error.method, error.path) == ("GET", PING)


async def test_validation_error_carries_field_errors(client, api) -> None:
    """A 422 envelope's ``errors`` object is available as ``errors``."""
    api.reply(
        422,
        {
            "status": "error",
            "code": "validation_error",
            "message": "Invalid input",
            "errors": {"agent_id": ["Required field"]},
        },
    )
    with pytest.raises(PrefactorValidationError) as info:
        await client.request("POST", "/api/v1/agent_instance/register", json_data={})
    assert info.value.errors == {"agent_id": ["Required field"]}
    assert "Invalid input" in str(info.value)
    assert "POST /api/v1/agent_instance/register" in str(info.value)
    assert "422 validation_error" in str(info.value)


async def test_missing_envelope_fields_get_defaults(client, api) -> None:
    """Without code, message or errors the error has ``unknown``, ``HTTP <status>`` and {}."""
    api.reply(401, {})
    with pytest.raises(PrefactorAuthError) as info:
        await client.validate_token()
    assert info.value.code == "unknown"
    assert info.value.message == "HTTP 401"
    assert info.value.errors == {}
    assert info.value.retry_after is None


async def test_bad_authtoken_on_ping(client, api) -> None:
    """The spec's expired-token example surfaces as PrefactorAuthError (2.1)."""
    api.reply(401, {"code": "bad_authtoken", "message": "Token expired"})
    with pytest.raises(PrefactorAuthError, match="Token expired"):
        await client.validate_token()
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"<html>Bad gateway</html>", 400), (b"", 200), (b"\xff\xfe", 200), (b"[1, 2]", 200)],
)
async def test_non_object_body_raises_contract_error(
    client, api, content: bytes, status: int
) -> None:
    """A body that is not a JSON object raises PrefactorResponseContractError with status."""
    api.reply(status, content=content)
    with pytest.raises(PrefactorResponseContractError) as info:
        await client.request("GET", PING, retry=False)
    assert info.value.status_code == status
    assert (info.value.method, info.value.path) == ("GET", PING)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"n": 123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
        (b'{"n": -9223372036854775809, "m": 1e5}', {"n": -9223372036854775809, "m": 1e5}),
        (b'{"x": NaN}', None),
        (b'{"status": "success", "outputs": {"k": {"status": "success"}}}', None),
        ('{"name": "\u00e9t\u00e9"}'.encode("utf-16"), {"name": "\u00e9t\u00e9"}),
    ],
)
async def test_json_answers_are_read_whatever_decoder_reads_them(
    client, api, content: bytes, expected: dict[str, object] | None
) -> None:
    """An answer orjson refuses but JSON allows (an integer beyond 64 bits, UTF-16 text)
    is read as the standard library reads it; an ordinary one as it is."""
    api.reply(200, content=content)
    answer = await client.request("GET", PING, retry=False)
    assert repr(answer) == repr(expected if expected is not None else json.loads(content))


async def test_contract_error_keeps_a_short_body_snippet(client, api) -> None:
    """The snippet collapses whitespace and is cut at 200 characters."""
    api.reply(400, content=b"<html>\n  " + b"x" * 500 + b"</html>")
    with pytest.raises(PrefactorResponseContractError) as info:
        await client.validate_token()
    snippet = info.value.body_snippet
    assert snippet is not None
    assert snippet.startswith("<html> xxx")
    assert len(snippet) == 203
    assert snippet.endswith("...")


async def test_2xx_body_failing_the_model_is_a_permanent_contract_error(client, api) -> None:
    """A success body that does not match the model raises a contract error without status."""
    api.success({"type": "agent_instance", "id": "ins_1"})
    with pytest.raises(PrefactorResponseContractError, match=r"agent_instances\.get") as info:
        await client.agent_instances.get("ins_1")
    assert info.value.status_code is None
    assert (info.value.method, info.value.path) == ("GET", "/api/v1/agent_instance/ins_1")
    assert is_permanent_http_error(info.value)
    assert len(api.requests) == 1


async def test_connection_error_becomes_transport_error(client, api) -> None:
    """An httpx connection error is wrapped in PrefactorTransportError with the cause."""
    cause = httpx.ConnectError("connection refused")
    api.fail(cause)
    with pytest.raises(PrefactorTransportError) as info:
        await client.validate_token(retry=False)
    assert info.value.cause is cause
    assert info.value.__cause__ is cause
    assert not isinstance(info.value, PrefactorTimeoutError)
    assert (info.value.method, info.value.path) == ("GET", PING)


async def test_timeout_becomes_timeout_error(client, api) -> None:
    """An httpx timeout is wrapped in PrefactorTimeoutError, a transport error."""
    api.fail(httpx.ReadTimeout("slow"))
    with pytest.raises(PrefactorTimeoutError) as info:
        await client.validate_token(retry=False)
    assert isinstance(info.value, PrefactorTransportError)
    assert isinstance(info.value.cause, httpx.ReadTimeout)


def test_every_error_is_a_prefactor_http_error() -> None:
    """All exception classes descend from PrefactorHttpError."""
    for name in exc_module.__all__:
        obj = getattr(exc_module, name)
        if isinstance(obj, type):
            assert issubclass(obj, PrefactorHttpError), name


def test_tree_in_docstring_names_every_class() -> None:
    """The module docstring's tree mentions every exception class."""
    doc = exc_module.__doc__ or ""
    for name in exc_module.__all__:
        if name.startswith("Prefactor"):
            assert name in doc, name


def test_published_constructor_signatures_still_work() -> None:
    """The published positional constructors keep working."""
    api = PrefactorApiError("msg", "code", 500)
    assert (str(api), api.code, api.status_code, api.errors) == ("msg (500 code)", "code", 500, {})
    validation = PrefactorValidationError("bad", "validation_error", 422, {"f": ["x"]})
    assert validation.errors == {"f": ["x"]}
    exhausted = PrefactorRetryExhaustedError("gave up", api)
    assert exhausted.last_error is api
    assert str(PrefactorHttpError("plain")) == "plain"
    contract = PrefactorResponseContractError("bad", status_code=502, body_snippet="x")
    assert (contract.status_code, contract.body_snippet, contract.cause) == (502, "x", None)


@pytest.mark.parametrize(
    ("error", "transient", "permanent"),
    [
        (PrefactorApiError("m", "c", 429), True, False),
        (PrefactorApiError("m", "c", 500), True, False),
        (PrefactorApiError("m", "c", 501), True, False),
        (PrefactorApiError("m", "c", 400), False, True),
        (PrefactorNotFoundError("m", "c", 404), False, True),
        (PrefactorConflictError("m", "c", 409), False, True),
        (PrefactorResponseContractError("m", status_code=503), True, False),
        (PrefactorResponseContractError("m", status_code=429), True, False),
        (PrefactorResponseContractError("m", status_code=200), False, True),
        (PrefactorResponseContractError("m"), False, True),
        (PrefactorTransportError("m"), True, False),
        (PrefactorTimeoutError("m"), True, False),
        (httpx.ConnectError("m"), True, False),
        (TimeoutError(), True, False),
        (PrefactorRetryExhaustedError("m", PrefactorApiError("m", "c", 503)), True, False),
        (PrefactorRetryExhaustedError("m", PrefactorApiError("m", "c", 404)), False, True),
        (PrefactorRetryExhaustedError("m"), False, False),
        (PrefactorClientError("m"), False, False),
        (ValueError("m"), False, False),
    ],
)
def test_transient_and_permanent_classification(
    error: BaseException, transient: bool, permanent: bool
) -> None:
    """``is_transient_http_error`` / ``is_permanent_http_error`` follow wire protocol 1.7."""
    assert is_transient_http_error(error) is transient
    assert is_permanent_http_error(error) is permanent
