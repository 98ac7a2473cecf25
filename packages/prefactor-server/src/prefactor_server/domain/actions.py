"""The write actions, shared by the single endpoints and ``POST /api/v1/bulk``.

An action runs inside a savepoint of the caller's transaction, with its idempotency key
scoped to (account, action): a bulk ``agent_spans/create`` with key K and a single
``POST /api/v1/agent_spans`` with key K are the same request (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from prefactor_http.models.types import (
    ACTION_CREATE_SPAN,
    ACTION_FINISH_INSTANCE,
    ACTION_FINISH_SPAN,
    ACTION_RECORD_QUALITY,
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
    BULK_ACTION_NAMES,
)
from prefactor_server.domain import agents, instances, spans
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import check_storable, shown
from prefactor_server.domain.replays import minimal_replay, replayed, span_reference
from prefactor_server.domain.span_batch import MergedCreates
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import WriteSession

__all__ = [
    "ACTIONS",
    "BULK_ACTIONS",
    "BulkRun",
    "Result",
    "execute",
    "minimal_output",
    "run_bulk",
]

Handler = Callable[[WriteSession, WriteContext, dict[str, Any]], tuple[int, dict[str, Any]]]

ACTIONS: dict[str, Handler] = {
    ACTION_REGISTER_INSTANCE: instances.register,
    ACTION_START_INSTANCE: instances.start,
    ACTION_FINISH_INSTANCE: instances.finish,
    ACTION_RECORD_QUALITY: instances.record_quality,
    "agent_instances/terminate": instances.terminate,
    ACTION_CREATE_SPAN: spans.create,
    ACTION_FINISH_SPAN: spans.finish,
    "agents/create": agents.create,
    "agents/update": agents.update,
    "agents/retire": agents.retire,
    "agents/reinstate": agents.reinstate,
    "agents/delete": agents.delete,
}

BULK_ACTIONS: tuple[str, ...] = BULK_ACTION_NAMES
"""The actions ``POST /api/v1/bulk`` accepts, announced in ping ``capabilities``."""
_BULK = frozenset(BULK_ACTIONS)
_TYPE = itemgetter("_type")
_KEY = itemgetter("idempotency_key")


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
            return Result(200, replayed(session, account_id, stored[1]))
    check_storable(fields)
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
    if item.get("_type") == ACTION_CREATE_SPAN and isinstance(details, dict):
        return details
    return fields


# Actions whose handler raises ApiError only before its first write (checks first, then
# writes; a failed insert writes nothing). They need no savepoint: an error leaves
# nothing behind to roll back. Any other exception aborts the whole request anyway.
_NO_SAVEPOINT = frozenset({ACTION_CREATE_SPAN, ACTION_FINISH_SPAN})


def minimal_output(body: dict[str, Any]) -> dict[str, Any]:
    """The ``Prefer: return=minimal`` form of a success: status, resource id and control."""
    details = body.get("details")
    if body.get("status") != "success" or not isinstance(details, dict) or "id" not in details:
        return body  # pragma: no cover - every bulk action answers with a resource
    out: dict[str, Any] = {"status": "success", "id": details["id"]}
    if "control" in body:
        out["control"] = body["control"]
    return out


class BulkRun(NamedTuple):
    """What :func:`run_bulk` did."""

    outputs: dict[str, orjson.Fragment]
    """Idempotency key → encoded output; the failing item's error is the last entry and
    later items are absent (plain successes too, when asked to leave them out)."""
    processed: int
    """How many items ran, from the first: all of them, or up to the failing one."""


def run_bulk(
    session: WriteSession,
    ctx: WriteContext,
    items: list[dict[str, Any]],
    *,
    minimal: bool = False,
    omit_success: bool = False,
) -> BulkRun:
    """Run validated bulk items in order, each atomic on its own, stopping at the first error.

    The hot path of ingestion: the stored answers of earlier requests are looked up for
    all items in one query, the new answers are stored with one ``executemany`` at the
    end (same transaction), span creates that are terminal at once take the fast path of
    ``domain/span_batch.py`` and other span writes run without a savepoint (see
    ``_NO_SAVEPOINT``). The outcome is the same as running :func:`execute` per item:
    keys are unique within a request, so no item can see another's stored answer.

    With ``minimal`` (``Prefer: return=minimal``) each success output, replays included,
    is only ``{"status": "success", "id": ...}`` plus ``control`` when present; the full
    answer is still what is kept (or a reference to the span it is rebuilt from, see
    ``domain/replays.py``), so a later full request replays it in full.

    With ``omit_success`` (``Prefer: omit=success``) the output of an item that ran and
    succeeded with nothing more to say (no ``control``) is not made at all; errors,
    successes with a ``control`` and replays are listed as usual.
    """
    account_id = ctx.account.id
    stored = session.get_idempotent_many(
        account_id, list(zip(map(_TYPE, items), map(_KEY, items), strict=True))
    )
    new: list[tuple[str, str, int, bytes]] = []
    outputs: dict[str, orjson.Fragment] = {}
    # Outputs left out are not made at all; the fast path's are then the cheap minimal ones.
    merged = MergedCreates(session, ctx, minimal=minimal or omit_success)
    dumps = orjson.dumps
    fragment = orjson.Fragment
    create_action = ACTION_CREATE_SPAN
    listed = not omit_success
    processed = 0
    for processed, item in enumerate(items, 1):  # noqa: B007 - read after the loop
        key: str = item["idempotency_key"]
        action: str = item["_type"]
        if action not in _BULK:
            error = ApiError(
                422,
                "unknown_action",
                f"_type: unknown bulk action {shown(action)}",
                {"_type": [f"must be one of {', '.join(BULK_ACTIONS)}"]},
            )
            outputs[key] = fragment(dumps(error.body()))
            break
        replay = stored.get((action, key)) if stored else None
        if replay is not None:
            answer = minimal_replay(replay[1]) if minimal else None
            if answer is not None:
                outputs[key] = fragment(dumps(answer))
            else:
                full = replayed(session, account_id, replay[1])
                outputs[key] = fragment(
                    dumps(minimal_output(orjson.loads(full))) if minimal else full
                )
            continue
        if action == create_action:
            done = merged.create(item, key)
            if done is not None:
                kept, output = done
                if kept is not None:
                    new.append((action, key, 201, kept))
                if listed:  # the fast path answers a plain success only (span_batch.py)
                    outputs[key] = fragment(output)
                continue
        try:
            check_storable(item)
            if action in _NO_SAVEPOINT:
                # Span handlers read their fields by name, so the item itself serves (no
                # copy without _type and idempotency_key); create may wrap them in details.
                details = item.get("details")
                fields = details if create_action == action and type(details) is dict else item
                status_code, body = ACTIONS[action](session, ctx, fields)
                reference = (
                    span_reference(session, status_code, body) if action == create_action else None
                )
                if reference is not None:
                    new.append((action, key, status_code, reference))
                    if listed or "control" in body:
                        outputs[key] = fragment(dumps(minimal_output(body) if minimal else body))
                    continue
                encoded = dumps(body)
            else:
                with session.savepoint():
                    status_code, body = ACTIONS[action](session, ctx, bulk_fields(item))
                    encoded = dumps(body)
                    # Stored inside the savepoint, as execute() does.
                    session.put_idempotent(account_id, action, key, status_code, encoded)
                if listed or "control" in body:
                    outputs[key] = fragment(dumps(minimal_output(body)) if minimal else encoded)
                continue
        except ApiError as exc:
            outputs[key] = fragment(dumps(exc.body()))
            break
        new.append((action, key, status_code, encoded))
        if listed or "control" in body:
            outputs[key] = fragment(dumps(minimal_output(body)) if minimal else encoded)
    if new:
        session.put_idempotent_many(account_id, new)
    return BulkRun(outputs, processed)
