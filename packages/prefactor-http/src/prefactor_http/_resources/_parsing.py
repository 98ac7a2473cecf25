"""Turning response bodies into models, with contract errors on mismatch."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from prefactor_http._types import ControlSignalCallback, JSONObject
from prefactor_http.exceptions import PrefactorResponseContractError

M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], body: JSONObject, *, operation: str, method: str, path: str) -> M:
    """Validate ``body`` as ``model``.

    Raises:
        PrefactorResponseContractError: When the body does not match (``status_code`` is
            None: the request itself succeeded, so retrying will not help).
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PrefactorResponseContractError(
            f"invalid response payload for {operation}: {exc.error_count()} validation "
            f"error(s), first: {_first_error(exc)}",
            cause=exc,
            method=method,
            path=path,
        ) from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    location = ".".join(str(part) for part in error["loc"]) or "<body>"
    return f"{location}: {error['msg']}"


def dump_model_or_dict(value: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """Return a request object: dicts as given, models dumped by alias without nulls."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def check_control_signal(body: JSONObject, callback: ControlSignalCallback | None) -> None:
    """Call ``callback(reason)`` when the body carries ``control.terminate`` (spec 6.1).

    Runs before model validation, so a termination is reported even when the rest of
    the body turns out to be malformed.
    """
    if callback is None:
        return
    control = body.get("control")
    if isinstance(control, dict) and control.get("terminate"):
        reason = control.get("reason")
        callback(reason if isinstance(reason, str) else None)
