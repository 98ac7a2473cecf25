"""The write actions, shared by the single endpoints and ``POST /api/v1/bulk``.

An action runs inside a savepoint of the caller's transaction, with its idempotency key
scoped to (account, action): a bulk ``agent_spans/create`` with key K and a single
``POST /api/v1/agent_spans`` with key K are the same request (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from prefactor_server.domain import agents, instances, spans
from prefactor_server.domain.context import WriteContext
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import WriteSession

__all__ = ["ACTIONS", "BULK_ACTIONS", "Result", "execute", "run_bulk"]

Handler = Callable[[WriteSession, WriteContext, dict[str, Any]], tuple[int, dict[str, Any]]]

ACTIONS: dict[str, Handler] = {
    "agent_instances/register": instances.register,
    "agent_instances/start": instances.start,
    "agent_instances/finish": instances.finish,
    "agent_instances/record_quality": instances.record_quality,
    "agent_instances/terminate": instances.terminate,
    "agent_spans/create": spans.create,
    "agent_spans/finish": spans.finish,
    "agents/create": agents.create,
    "agents/update": agents.update,
    "agents/retire": agents.retire,
    "agents/reinstate": agents.reinstate,
    "agents/delete": agents.delete,
}

BULK_ACTIONS: tuple[str, ...] = (
    "agent_instances/register",
    "agent_instances/start",
    "agent_instances/finish",
    "agent_instances/record_quality",
    "agent_spans/create",
    "agent_spans/finish",
)
"""The actions ``POST /api/v1/bulk`` accepts, announced in ping ``capabilities``."""


@dataclass(frozen=True)
class Result:
    """The answer of one action: HTTP status and the encoded JSON body.

    Attributes:
        status_code: 200/201 on success (200 for a replay), the error status otherwise.
        body: The JSON body, already encoded (stored as-is for replays).
    """

    status_code: int
    body: bytes


def execute(
    session: WriteSession, ctx: WriteContext, action: str, fields: dict[str, Any], key: str | None
) -> Result:
    """Run one action idempotently.

    A key seen before for this account and action returns the stored response with 200
    and changes nothing, even when the body differs: a replay never answers 4xx, because
    the published SDK latches a permanent failure on any 4xx (wire spec 6.3, 7).

    Raises:
        ApiError: The action failed; nothing it wrote is kept.
    """
    account_id = ctx.account.id
    if key is not None:
        stored = session.get_idempotent(account_id, action, key)
        if stored is not None:
            return Result(200, stored[1])
    with session.savepoint():
        status_code, body = ACTIONS[action](session, ctx, fields)
        encoded = orjson.dumps(body)
        if key is not None:
            session.put_idempotent(account_id, action, key, status_code, encoded)
    return Result(status_code, encoded)


def bulk_fields(item: dict[str, Any]) -> dict[str, Any]:
    """Return an item's action fields (span create may wrap them in ``details``)."""
    fields = {
        name: value for name, value in item.items() if name not in ("_type", "idempotency_key")
    }
    details = fields.get("details")
    if item.get("_type") == "agent_spans/create" and isinstance(details, dict):
        return details
    return fields


def run_bulk(
    session: WriteSession, ctx: WriteContext, items: list[dict[str, Any]]
) -> dict[str, orjson.Fragment]:
    """Run validated bulk items in order, each atomic on its own, stopping at the first error.

    Returns:
        Idempotency key → encoded output; the failing item's error is the last entry and
        later items are absent.
    """
    outputs: dict[str, orjson.Fragment] = {}
    for item in items:
        key: str = item["idempotency_key"]
        action: str = item["_type"]
        if action not in BULK_ACTIONS:
            error = ApiError(
                422,
                "unknown_action",
                f"_type: unknown bulk action {action!r}",
                {"_type": [f"must be one of {', '.join(BULK_ACTIONS)}"]},
            )
            outputs[key] = orjson.Fragment(orjson.dumps(error.body()))
            break
        try:
            result = execute(session, ctx, action, bulk_fields(item), key)
        except ApiError as exc:
            outputs[key] = orjson.Fragment(orjson.dumps(exc.body()))
            break
        outputs[key] = orjson.Fragment(result.body)
    return outputs
