"""Stored records → API resources (wire spec 2.13: `type` literals, all required fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefactor_http.models.types import FINISH_STATUSES, SPAN_STATUSES, STATUS_TERMINATED
from prefactor_server.storage.base import Account

__all__ = [
    "account_resource",
    "agent_resource",
    "instance_resource",
    "span_counts",
    "span_resource",
]

_TERMINAL_SPAN = FINISH_STATUSES


def account_resource(account: Account) -> dict[str, Any]:
    """Return the account resource."""
    return {
        "type": "account",
        "id": account.id,
        "name": account.name,
        "pfid_partition": account.partition,
        "inserted_at": account.inserted_at,
        "updated_at": account.inserted_at,
    }


def span_counts(by_status: dict[str, int] | None) -> dict[str, int]:
    """Return span counts with all seven keys (http 0.1.1 requires ``pending`` too)."""
    counts = by_status or {}
    out: dict[str, int] = {status: counts.get(status, 0) for status in SPAN_STATUSES}
    out["finished"] = sum(out[status] for status in _TERMINAL_SPAN)
    out["total"] = out["finished"] + out["pending"] + out["active"]
    return out


def instance_resource(record: Mapping[str, Any], counts: dict[str, int] | None) -> dict[str, Any]:
    """Return the agent_instance resource of a stored instance."""
    return {
        "type": "agent_instance",
        "id": record["id"],
        "account_id": record["account_id"],
        "agent_id": record["agent_id"],
        "agent_version_id": record["agent_version_id"],
        "environment_id": record["environment_id"],
        "agent_deployment_id": record["agent_deployment_id"],
        "agent_schema_version_id": record["schema_version_id"],
        "status": record["status"],
        "purpose": record["purpose"],
        "external_identifier": record["external_identifier"],
        "termination_reason": record["termination_reason"],
        "started_at": record["started_at"],
        "finished_at": record["finished_at"],
        "inserted_at": record["inserted_at"],
        "updated_at": record["updated_at"],
        "span_counts": span_counts(counts),
        "quality_payloads": record["quality_payloads"],
        "quality_summaries": record["quality_summaries"],
    }


def span_resource(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return the agent_span resource of a stored span (``payload`` is always an object)."""
    return {
        "type": "agent_span",
        "id": record["id"],
        "account_id": record["account_id"],
        "agent_id": record["agent_id"],
        "agent_instance_id": record["agent_instance_id"],
        "parent_span_id": record["parent_span_id"],
        "orphaned": record["orphaned"],
        "schema_name": record["schema_name"],
        "schema_title": record["schema_title"],
        "status": record["status"],
        "payload": record["payload"],
        "result_payload": record["result_payload"],
        "summary": record["summary"],
        "started_at": record["started_at"],
        "finished_at": record["finished_at"],
        "inserted_at": record["inserted_at"],
        "updated_at": record["updated_at"],
    }


def agent_resource(
    record: Mapping[str, Any], instance_counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """Return the agent resource, with ``instance_counts`` when asked for."""
    status = record["status"]
    out: dict[str, Any] = {
        "type": "agent",
        "id": record["id"],
        "name": record["name"],
        "description": record["description"],
        "external_identifier": record["external_identifier"],
        "owner_person_id": record["owner_person_id"],
        "risk_profile_id": record["risk_profile_id"],
        "team_id": record["team_id"],
        "status": status,
        "available_actions": {
            "update": status != "retired",
            "retire": status != "retired",
            "reinstate": status == "retired",
            "delete": True,
        },
        "inserted_at": record["inserted_at"],
        "updated_at": record["updated_at"],
    }
    if instance_counts is not None:
        counts = dict(instance_counts)
        counts["finished"] = sum(counts.get(s, 0) for s in (*FINISH_STATUSES, STATUS_TERMINATED))
        counts["total"] = sum(instance_counts.values())
        out["instance_counts"] = counts
    return out
