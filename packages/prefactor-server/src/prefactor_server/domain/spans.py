"""Span operations: create and finish.

State machine (wire spec 3.2, decisions of issue 3)::

    create ─► pending ─finish{cancelled}─► cancelled
    create ─► active  ─finish─► complete | failed | cancelled
    create ─► complete | failed | cancelled     (directly terminal, with result and finished_at)

Span traffic is accepted whatever the instance status (the published SDK's queue reorders
it); on a terminated instance the answer is 2xx plus top-level ``control``.
"""

from __future__ import annotations

from typing import Any, cast

from prefactor_http.models.types import FINISH_STATUSES, SPAN_STATUSES
from prefactor_server import _time
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import (
    client_id,
    object_field,
    optional_object,
    optional_str,
    required_str,
    shown,
    status_field,
)
from prefactor_server.domain.resources import span_resource
from prefactor_server.domain.schemas import SchemaVersion, render_template
from prefactor_server.errors import ApiError, conflict, invalid, not_found
from prefactor_server.storage.base import Fields, IdTaken, InstanceRow, SpanRow, WriteSession

__all__ = ["create", "finish", "new_record", "summary", "template_of"]

Outcome = tuple[int, dict[str, Any]]

_CREATE = SPAN_STATUSES
_TERMINAL = FINISH_STATUSES


def _answer(record: SpanRow, instance: InstanceRow, status_code: int) -> Outcome:
    body: dict[str, Any] = {"status": "success", "details": span_resource(record)}
    if instance["status"] == "terminated":
        body["control"] = {"terminate": True, "reason": instance["termination_reason"]}
    return status_code, body


def template_of(span_type: dict[str, Any] | None) -> str | None:
    """The summary template of a span type (None: its spans have no summary)."""
    template = span_type.get("template") if span_type else None
    return template if isinstance(template, str) else None


def summary(template: str, payload: dict[str, Any], result: dict[str, Any] | None) -> str:
    """A span's summary: ``template`` rendered with its params and result together (a
    result field wins over a params field of the same name)."""
    return render_template(template, {**payload, **result} if result else payload)


def _summary(
    span_type: dict[str, Any] | None, payload: dict[str, Any], result: dict[str, Any] | None
) -> str | None:
    template = template_of(span_type)
    return None if template is None else summary(template, payload, result)


def _check_result(
    version: SchemaVersion, name: str, status: str, result: dict[str, Any] | None, prefix: str
) -> None:
    # Only a completed span's result is held to result_schema: failed and cancelled spans
    # carry error details (the published SDK sends {"error": ...}), not a result.
    if result is not None and status == "complete":
        version.check("result", name, result, prefix)


def new_record(
    account_id: str,
    span_id: str,
    instance: InstanceRow,
    parent_id: str | None,
    orphaned: bool,
    schema_name: str,
    span_type: dict[str, Any] | None,
    status: str,
    payload: dict[str, Any],
    result: dict[str, Any] | None,
    started_at: str | None,
    finished_at: str | None,
    now: str,
) -> SpanRow:
    """The stored record of a new span (its title and summary from ``span_type``)."""
    return {
        "account_id": account_id,
        "id": span_id,
        "agent_instance_id": instance["id"],
        "agent_id": instance["agent_id"],
        "parent_span_id": parent_id,
        "orphaned": orphaned,
        "schema_name": schema_name,
        "schema_title": (span_type.get("title") if span_type else None) or schema_name,
        "status": status,
        "payload": payload,
        "result_payload": result,
        "summary": _summary(span_type, payload, result),
        "started_at": started_at,
        "finished_at": finished_at,
        "inserted_at": now,
        "updated_at": now,
    }


def create(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Create a span (pending, active, or directly terminal)."""
    instance = ctx.instance(session, required_str(fields, "agent_instance_id"))
    schema_name = required_str(fields, "schema_name")
    status = status_field(fields, "status", _CREATE, "active")
    payload = object_field(fields, "payload")
    result = optional_object(fields, "result_payload")
    span_id = client_id(fields, "id")
    parent_id = optional_str(fields, "parent_span_id")
    started_at = _time.parse_timestamp(fields.get("started_at"), "started_at")
    finished_at = _time.parse_timestamp(fields.get("finished_at"), "finished_at")
    account_id = ctx.account.id

    version = ctx.schema_version(session, instance["schema_version_id"])
    span_type: dict[str, Any] | None = None
    if version.span_types:
        span_type = version.span_types.get(schema_name)
        if span_type is None:
            known = ", ".join(sorted(version.span_types))
            raise ApiError(
                422,
                "unknown_span_type",
                f"schema_name: {shown(schema_name)} is not a span type of the instance's schema",
                {"schema_name": [f"must be one of {known}"]},
            )
        # Cancel-before-start sends a pending span with an empty payload (wire spec 3.2):
        # there are no params yet to check.
        if status != "pending" or payload:
            version.check("params", schema_name, payload, "payload")
        _check_result(version, schema_name, status, result, "result_payload")

    orphaned = False
    if parent_id is not None:
        parent_instance = ctx.span_instances.get(parent_id) or session.span_instance_id(
            account_id, parent_id
        )
        if parent_instance is None:
            # The published SDK can send a client temp id for a parent it has not POSTed yet
            # (wire spec 2.8); keep the id and mark the span instead of failing the user's code.
            orphaned = True
        elif parent_instance != instance["id"]:
            raise invalid("parent_span_id", "belongs to another agent instance")

    now = ctx.clock()
    if status != "pending" and started_at is None:
        started_at = now
    if status in _TERMINAL and finished_at is None:
        finished_at = now
    record = new_record(
        account_id, span_id or ctx.new_id(), instance, parent_id, orphaned, schema_name,
        span_type, status, payload, result, started_at, finished_at, now,
    )  # fmt: skip
    try:
        session.insert_span(record)
    except IdTaken:
        raise conflict(f"Span {record['id']} already exists") from None
    ctx.span_instances[record["id"]] = instance["id"]
    return _answer(record, instance, 201)


def finish(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Finish a span: active → any terminal status, pending → cancelled."""
    span_id = required_str(fields, "agent_span_id")
    status = status_field(fields, "status", _TERMINAL, "complete")
    result = optional_object(fields, "result_payload")
    timestamp = _time.parse_timestamp(fields.get("timestamp"), "timestamp")
    account_id = ctx.account.id
    record = session.get_span(account_id, span_id)
    if record is None:
        raise not_found("Span")
    current = record["status"]
    if current != "active" and not (current == "pending" and status == "cancelled"):
        raise conflict(f"Span is {current}; cannot finish it as {status}")
    instance = ctx.instance(session, record["agent_instance_id"])
    version = ctx.schema_version(session, instance["schema_version_id"])
    span_type = version.span_types.get(record["schema_name"])
    if span_type is not None:
        _check_result(version, record["schema_name"], status, result, "result_payload")
    now = ctx.clock()
    changes: Fields = {"status": status, "finished_at": timestamp or now, "updated_at": now}
    if result is not None:
        changes["result_payload"] = result
    summary = _summary(
        span_type, record["payload"], result if result is not None else record["result_payload"]
    )
    if summary is not None:
        changes["summary"] = summary
    session.update_span(account_id, span_id, changes)
    return _answer(cast(SpanRow, {**record, **changes}), instance, 200)
