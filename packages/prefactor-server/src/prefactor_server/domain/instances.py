"""Agent instance operations: register, start, finish, record_quality, terminate.

State machine (wire spec 3.1, decisions of issue 3)::

    register ─► pending ─start─► active ─finish─► complete | failed | cancelled
                   └──────finish──────┘
    pending | active ─terminate{reason}─► terminated

Any other transition is 409 ``conflict`` naming the current status.
"""

from __future__ import annotations

from typing import Any, cast

from prefactor_http.models.types import FINISH_STATUSES, OPEN_STATUSES
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
from prefactor_server.domain.json_schema import (
    MAX_REQUEST_SCHEMA_NODES,
    MAX_VERSION_NODES,
    count_nodes,
)
from prefactor_server.domain.resources import instance_resource
from prefactor_server.domain.schemas import (
    content_identifier,
    normalise_schema_version,
    render_template,
)
from prefactor_server.errors import ApiError, conflict, invalid, not_found
from prefactor_server.storage.base import AgentRow, Fields, IdTaken, InstanceRow, WriteSession

__all__ = ["finish", "record_quality", "register", "start", "terminate"]

Outcome = tuple[int, dict[str, Any]]

_PURPOSES = ("live", "smoke_test", "eval")
_FINISH = FINISH_STATUSES
_OPEN = OPEN_STATUSES


def _respond(
    session: WriteSession, ctx: WriteContext, record: InstanceRow, status_code: int = 200
) -> Outcome:
    counts = session.span_counts(ctx.account.id, [record["id"]])[record["id"]]
    return status_code, {"status": "success", "details": instance_resource(record, counts)}


def _agent(
    session: WriteSession, ctx: WriteContext, agent_id: str | None, name: str | None
) -> AgentRow:
    """Return the agent to register under, creating it when the account does not know it yet."""
    account = session.get_account(ctx.account.id) or ctx.account
    if agent_id is None:
        agent_id = account.default_agent_id
        if agent_id is None:
            agent_id = ctx.new_id()
            session.set_default_agent(account.id, agent_id)
            name = name or "default"
    agent = session.get_agent(account.id, agent_id)
    now = ctx.clock()
    if agent is None:
        agent = {
            "account_id": account.id,
            "id": agent_id,
            "name": name or agent_id,
            "description": None,
            "external_identifier": None,
            "owner_person_id": None,
            "risk_profile_id": None,
            "team_id": None,
            "status": "active",
            "deleted_at": None,
            "inserted_at": now,
            "updated_at": now,
        }
        try:
            session.insert_agent(agent)
        except IdTaken:
            # The id belongs to a deleted agent: deleted agents stay gone.
            raise not_found("Agent") from None
    elif agent["status"] == "pending":
        session.update_agent(account.id, agent_id, {"status": "active", "updated_at": now})
    return agent


def _spend_schema_checks(ctx: WriteContext, schema_body: dict[str, Any]) -> None:
    size = count_nodes(schema_body, MAX_VERSION_NODES)
    if size > MAX_VERSION_NODES:
        return  # normalise_schema_version refuses it (too large) before checking anything
    if ctx.schema_nodes + size > MAX_REQUEST_SCHEMA_NODES:
        raise invalid(
            "agent_schema_version",
            f"one request may register new schema versions of at most "
            f"{MAX_REQUEST_SCHEMA_NODES} objects and values in all; send this one in "
            "another request",
            "too_many_schemas",
        )
    ctx.schema_nodes += size


def register(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Register an agent instance (status ``pending``)."""
    version_body = object_field(fields, "agent_version")
    schema_body = object_field(fields, "agent_schema_version")
    agent_id = client_id(fields, "agent_id")
    environment_id = client_id(fields, "environment_id")
    instance_id = client_id(fields, "id")
    purpose = status_field(fields, "purpose", _PURPOSES, "live")
    external_identifier = optional_str(fields, "external_identifier")
    update_current = fields.get("update_current_version", True)
    if not isinstance(update_current, bool):
        raise invalid("update_current_version", "must be a boolean")
    version_name = optional_str(version_body, "name", "agent_version.")
    account_id = ctx.account.id
    now = ctx.clock()

    agent = _agent(session, ctx, agent_id, version_name)
    if environment_id is None:
        environment_id = ctx.account.default_environment_id
    elif session.get_environment(account_id, environment_id) is None:
        # A local server has no environment management: an unknown id names a new one.
        session.insert_environment(
            {
                "account_id": account_id,
                "id": environment_id,
                "name": environment_id,
                "inserted_at": now,
            }
        )

    version_ident = optional_str(
        version_body, "external_identifier", "agent_version."
    ) or content_identifier(version_body)
    version = session.find_agent_version(account_id, agent["id"], version_ident)
    if version is None:
        runtime = optional_object(version_body, "runtime_environment", "agent_version.")
        version = {
            "account_id": account_id,
            "id": ctx.new_id(),
            "agent_id": agent["id"],
            "external_identifier": version_ident,
            "name": version_name,
            "description": optional_str(version_body, "description", "agent_version."),
            "runtime_environment": runtime,
            "inserted_at": now,
        }
        session.insert_agent_version(version)

    schema_ident = optional_str(
        schema_body, "external_identifier", "agent_schema_version."
    ) or content_identifier(schema_body)
    schema = session.find_schema_version(account_id, agent["id"], schema_ident)
    if schema is None:
        _spend_schema_checks(ctx, schema_body)
        schema = {
            "account_id": account_id,
            "id": ctx.new_id(),
            "agent_id": agent["id"],
            "external_identifier": schema_ident,
            "body": normalise_schema_version(schema_body),
            "inserted_at": now,
        }
        session.insert_schema_version(schema)

    deployment = session.find_deployment(account_id, agent["id"], environment_id)
    if deployment is None:
        deployment = {
            "account_id": account_id,
            "id": ctx.new_id(),
            "agent_id": agent["id"],
            "environment_id": environment_id,
            "current_version_id": version["id"],
            "inserted_at": now,
        }
        session.insert_deployment(deployment)
    elif update_current:
        session.set_deployment_version(account_id, deployment["id"], version["id"])

    record: InstanceRow = {
        "account_id": account_id,
        "id": instance_id or ctx.new_id(),
        "agent_id": agent["id"],
        "agent_version_id": version["id"],
        "environment_id": environment_id,
        "agent_deployment_id": deployment["id"],
        "schema_version_id": schema["id"],
        "status": "pending",
        "purpose": purpose,
        "external_identifier": external_identifier,
        "termination_reason": None,
        "quality_payloads": {},
        "quality_summaries": {},
        "started_at": None,
        "finished_at": None,
        "inserted_at": now,
        "updated_at": now,
    }
    try:
        session.insert_instance(record)
    except IdTaken:
        raise conflict(f"Agent instance {record['id']} already exists") from None
    ctx.instances[record["id"]] = record
    return 201, {"status": "success", "details": instance_resource(record, None)}


def _change(
    session: WriteSession, ctx: WriteContext, record: InstanceRow, changes: Fields
) -> InstanceRow:
    changes["updated_at"] = ctx.clock()
    session.update_instance(ctx.account.id, record["id"], changes)
    record = cast(InstanceRow, {**record, **changes})
    ctx.instances[record["id"]] = record
    return record


def start(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Start a pending instance (``active``; ``started_at`` from ``timestamp`` or now).

    A start that arrives after the instance finished (complete, failed or cancelled) is
    answered with the instance as it is, its ``started_at`` filled from ``timestamp`` if it
    had none: the published SDK delivers with several workers, so a start retried after a
    lost connection can land after the finish, and it stops the agent on a 409 for
    anything but a finish. A second start of an active instance (with a new key) and a
    start of a terminated one are still 409.
    """
    record = ctx.instance(session, required_str(fields, "agent_instance_id"))
    timestamp = _time.parse_timestamp(fields.get("timestamp"), "timestamp")
    if record["status"] in _FINISH:
        if record["started_at"] is None and timestamp is not None:
            record = _change(session, ctx, record, {"started_at": timestamp})
        return _respond(session, ctx, record)
    if record["status"] != "pending":
        raise conflict(f"Agent instance is {record['status']}; only a pending instance can start")
    record = _change(
        session, ctx, record, {"status": "active", "started_at": timestamp or ctx.clock()}
    )
    return _respond(session, ctx, record)


def finish(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Finish a pending or active instance (status defaults to ``complete``)."""
    record = ctx.instance(session, required_str(fields, "agent_instance_id"))
    status = status_field(fields, "status", _FINISH, "complete")
    timestamp = _time.parse_timestamp(fields.get("timestamp"), "timestamp")
    if record["status"] not in _OPEN:
        raise conflict(f"Agent instance is already {record['status']}")
    record = _change(
        session, ctx, record, {"status": status, "finished_at": timestamp or ctx.clock()}
    )
    return _respond(session, ctx, record)


def terminate(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Terminate a pending or active instance; later span traffic gets ``control``."""
    record = ctx.instance(session, required_str(fields, "agent_instance_id"))
    reason = required_str(fields, "reason")
    if record["status"] not in _OPEN:
        raise conflict(f"Agent instance is already {record['status']}")
    record = _change(
        session,
        ctx,
        record,
        {"status": "terminated", "termination_reason": reason, "finished_at": ctx.clock()},
    )
    return _respond(session, ctx, record)


def record_quality(session: WriteSession, ctx: WriteContext, fields: dict[str, Any]) -> Outcome:
    """Set (or, with a null payload, remove) one named quality payload of an instance.

    Accepted in any instance status: the published SDK queues it, so it may arrive after
    the instance finished.
    """
    record = ctx.instance(session, required_str(fields, "agent_instance_id"))
    name = required_str(fields, "name")
    payload = optional_object(fields, "payload")
    version = ctx.schema_version(session, record["schema_version_id"])
    payloads = dict(record["quality_payloads"])
    summaries = dict(record["quality_summaries"])
    if payload is None:
        payloads.pop(name, None)
        summaries.pop(name, None)
    else:
        if version.quality_schemas and name not in version.quality_schemas:
            known = ", ".join(sorted(version.quality_schemas))
            raise ApiError(
                422,
                "unknown_quality_schema",
                f"name: unknown quality schema {shown(name)}",
                {"name": [f"must be one of {known}"]},
            )
        version.check("quality", name, payload, "payload")
        payloads[name] = payload
        template = version.quality_schemas.get(name, {}).get("template")
        if isinstance(template, str):
            summaries[name] = render_template(template, payload)
        else:
            summaries.pop(name, None)
    record = _change(
        session, ctx, record, {"quality_payloads": payloads, "quality_summaries": summaries}
    )
    return _respond(session, ctx, record)
