"""Errors the API answers with, all in the wire protocol's JSON error envelope.

Tree::

    ApiError                  any error answer: HTTP status, code, message, optional field errors
    ├── (400) invalid_json, bad_request
    ├── (401) unauthorized
    ├── (404) not_found
    ├── (409) conflict
    ├── (413) payload_too_large
    └── (422) validation_error, invalid_value, unknown_span_type, ...

Domain code raises :class:`ApiError`; the app's handlers turn it (and every framework
error) into ``{"status": "error", "code", "message"[, "errors"]}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "conflict", "excerpt", "invalid", "not_found"]

_MESSAGE_CHARS = 300
_FIELD_CHARS = 120
_MAX_FIELDS = 20
_MAX_MESSAGES = 5


def excerpt(text: str, limit: int = _MESSAGE_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was.

    Every error message goes through this: a message may quote the client's input (a bad
    timestamp, an unknown key, jsonschema's repr of a value), and a megabyte of input must
    not come back as a megabyte of error (issue 10).
    """
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


class ApiError(Exception):
    """An error answer of the API.

    Args:
        status_code: The HTTP status.
        code: The machine-readable error code (``conflict``, ``invalid_value`` ...).
        message: One human-readable sentence.
        errors: Field path → list of messages, for validation errors.
        headers: Extra response headers (``Retry-After`` of a 429).
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: dict[str, list[str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = excerpt(message)
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = None if errors is None else _cut_errors(errors)
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """Return the error envelope of this error."""
        out: dict[str, Any] = {"status": "error", "code": self.code, "message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def _cut_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    cut: dict[str, list[str]] = {}
    for field, messages in errors.items():
        if len(cut) == _MAX_FIELDS:
            cut["…"] = [f"{len(errors) - _MAX_FIELDS} more fields with errors"]
            break
        shown = [excerpt(message) for message in messages[:_MAX_MESSAGES]]
        if len(messages) > _MAX_MESSAGES:
            shown.append(f"{len(messages) - _MAX_MESSAGES} more errors")
        cut[excerpt(field, _FIELD_CHARS)] = shown
    return cut


def not_found(what: str) -> ApiError:
    """Return the 404 for an unknown (or another account's) resource."""
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    """Return a 409 ``conflict`` (an invalid transition or an id already taken)."""
    return ApiError(409, "conflict", message)


def invalid(field: str, message: str, code: str = "invalid_value") -> ApiError:
    """Return a 422 naming the offending field path."""
    return ApiError(422, code, f"{field}: {message}", {field: [message]})
