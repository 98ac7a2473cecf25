"""The table of operation types: one entry per ``OperationType``, and the private keys of
the operation payloads.

An operation's ``payload`` is a private protocol between the code that builds it (the
span table, the instance manager, the OpenTelemetry processor), the engine that merges,
repairs and renders it, and the spool that keeps it on disk. Its keys and the metadata
flags are named here once; the spool stores payloads and metadata under these names, so
they are part of its on-disk format and must never be renamed.

**Adding an operation type** takes one member of ``OperationType`` and one entry in
``TABLE`` below (its bulk action, single-request path, renderer, what it waits for and
whether a 409 means done); the dispatcher, the rejection reports and the client's
bulk check all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from prefactor_core._engine.jsontext import encode_json, iso, quote
from prefactor_core.operations import Operation, OperationType
from prefactor_http.models.types import (
    ACTION_CREATE_SPAN,
    ACTION_FINISH_INSTANCE,
    ACTION_FINISH_SPAN,
    ACTION_RECORD_QUALITY,
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
)

__all__ = [
    "BODY",
    "BULK_ACTIONS",
    "CONFLICT_IS_DONE",
    "CREATE_KEY_PREFIX",
    "FINISHED_AT",
    "FINISH_KEY_PREFIX",
    "INSTANCE_ID",
    "MERGED_FINISH",
    "NAME",
    "NO_MERGE",
    "PARENT_SPAN_ID",
    "PAYLOAD_JSON",
    "RECOVERED",
    "REPAIR",
    "RESULT_JSON",
    "SCHEMA_NAME",
    "SPAN_ID",
    "STARTED_AT",
    "STATUS",
    "TABLE",
    "TIMESTAMP",
    "OpSpec",
    "WaitsFor",
    "finish_instance_op",
    "quality_op",
    "register_op",
    "render_bulk_item",
    "render_single",
    "start_instance_op",
]

# -- payload keys ---------------------------------------------------------------------

INSTANCE_ID: Final = "instance_id"
"""Every operation: the agent instance it belongs to (its lane in the dispatcher)."""
SPAN_ID: Final = "span_id"
"""Span operations: the span's id."""
SCHEMA_NAME: Final = "schema_name"
"""Span creates: the span type."""
PARENT_SPAN_ID: Final = "parent_span_id"
"""Span creates (optional): the parent span's id."""
STATUS: Final = "status"
"""Span creates and finishes, instance finishes: the status to record."""
PAYLOAD_JSON: Final = "payload_json"
"""Span creates and quality records: the params (payload) as JSON text, or None."""
RESULT_JSON: Final = "result_json"
"""Span finishes (and merged creates): the result payload as JSON text, or None."""
STARTED_AT: Final = "started_at"
"""Span creates: when the span started (Unix time), or None."""
FINISHED_AT: Final = "finished_at"
"""Merged span creates: when the span finished (Unix time), or None."""
TIMESTAMP: Final = "timestamp"
"""Finishes and instance starts: when it happened (Unix time), or None."""
NAME: Final = "name"
"""Quality records: the quality's name."""
BODY: Final = "body"
"""Registrations: the request body, already JSON-compatible."""

# -- metadata flags ---------------------------------------------------------------------

NO_MERGE: Final = "no_merge"
"""A span create that must reach the API as it is (a pending one before its cancel)."""
RECOVERED: Final = "recovered"
"""Loaded from the spool: may have reached the server already, so it is sent unchanged
(never merged); not stored in the spool itself."""
MERGED_FINISH: Final = "merged_finish"
"""A span create that carries its finish: the finish's idempotency key."""
REPAIR: Final = "repair"
"""How many times a refused operation was re-sent with markers (0 when absent)."""

# -- idempotency keys ---------------------------------------------------------------------

CREATE_KEY_PREFIX: Final = "c-"
"""A span create's key is this prefix and the span id (made ids never repeat)."""
FINISH_KEY_PREFIX: Final = "f-"
"""A span finish's key is this prefix and the span id."""


class WaitsFor(Enum):
    """What an operation must not overtake on its way to the API."""

    INSTANCE = "everything queued before it for its instance"
    """A barrier in its instance's lane (instance lifecycle and quality records)."""
    PARENT_CREATE = "its parent span's create"
    """A span create: its parent's create (and its instance's register)."""
    OWN_CREATE = "its span's create"
    """A span finish: the create of the same span."""


Renderer = Callable[[dict[str, Any]], list[str]]
"""The body fields of a payload as ``"key":value`` texts (path parameters excluded)."""


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One operation type's entry in the table.

    Attributes:
        type: The operation type.
        bulk_action: Its ``_type`` in a ``POST /api/v1/bulk`` item.
        single_path: Its single-request path (always POST), a template over the payload
            (``{instance_id}``, ``{span_id}``).
        target: The bulk item field naming the resource the single path names, and the
            payload key it comes from (None when the path names none).
        wraps_details: The single request's body is ``{"details": ...}``.
        render: Renders the body fields.
        waits_for: What it must not overtake (see ``WaitsFor``).
        conflict_is_done: A 409 means "already in the state asked for": it counts as
            delivered instead of refused.
        describes: How logs name it ("a span create").
    """

    type: OperationType
    bulk_action: str
    single_path: str
    target: tuple[str, str] | None
    wraps_details: bool
    render: Renderer
    waits_for: WaitsFor
    conflict_is_done: bool
    describes: str


# -- renderers (body fields; the wire protocol's sections 2.2-2.9 and 5) -----------------


def _create_span(p: dict[str, Any]) -> list[str]:
    out = [
        f'"id":{quote(p[SPAN_ID])}',
        f'"agent_instance_id":{quote(p[INSTANCE_ID])}',
        f'"schema_name":{quote(p[SCHEMA_NAME])}',
        f'"status":"{p[STATUS]}"',
        f'"payload":{p.get(PAYLOAD_JSON) or "{}"}',
    ]
    if p.get(PARENT_SPAN_ID) is not None:
        out.append(f'"parent_span_id":{quote(p[PARENT_SPAN_ID])}')
    if p.get(STARTED_AT) is not None:
        out.append(f'"started_at":"{iso(p[STARTED_AT])}"')
    if p.get(RESULT_JSON) is not None:
        out.append(f'"result_payload":{p[RESULT_JSON]}')
    if p.get(FINISHED_AT) is not None:
        out.append(f'"finished_at":"{iso(p[FINISHED_AT])}"')
    return out


def _finish_span(p: dict[str, Any]) -> list[str]:
    out = [f'"status":"{p[STATUS]}"']
    if p.get(RESULT_JSON) is not None:
        out.append(f'"result_payload":{p[RESULT_JSON]}')
    if p.get(TIMESTAMP) is not None:
        out.append(f'"timestamp":"{iso(p[TIMESTAMP])}"')
    return out


def _start_instance(p: dict[str, Any]) -> list[str]:
    ts = p.get(TIMESTAMP)
    return [f'"timestamp":"{iso(ts)}"' if ts is not None else '"timestamp":null']


def _finish_instance(p: dict[str, Any]) -> list[str]:
    out = [f'"status":"{p[STATUS]}"']
    if p.get(TIMESTAMP) is not None:
        out.append(f'"timestamp":"{iso(p[TIMESTAMP])}"')
    return out


def _record_quality(p: dict[str, Any]) -> list[str]:
    return [f'"name":{quote(p[NAME])}', f'"payload":{p.get(PAYLOAD_JSON) or "null"}']


def _register(p: dict[str, Any]) -> list[str]:
    body: dict[str, Any] = p[BODY]
    return [f"{quote(k)}:{encode_json(v)}" for k, v in body.items()]


_INSTANCE_PATH = "/api/v1/agent_instance/{instance_id}"
_ON_INSTANCE = ("agent_instance_id", INSTANCE_ID)

TABLE: Final[dict[OperationType, OpSpec]] = {
    spec.type: spec
    for spec in (
        OpSpec(
            OperationType.REGISTER_AGENT_INSTANCE,
            ACTION_REGISTER_INSTANCE,
            "/api/v1/agent_instance/register",
            None,
            False,
            _register,
            WaitsFor.INSTANCE,
            False,
            "an agent instance registration",
        ),
        OpSpec(
            OperationType.START_AGENT_INSTANCE,
            ACTION_START_INSTANCE,
            _INSTANCE_PATH + "/start",
            _ON_INSTANCE,
            False,
            _start_instance,
            WaitsFor.INSTANCE,
            True,
            "an agent instance start",
        ),
        OpSpec(
            OperationType.FINISH_AGENT_INSTANCE,
            ACTION_FINISH_INSTANCE,
            _INSTANCE_PATH + "/finish",
            _ON_INSTANCE,
            False,
            _finish_instance,
            WaitsFor.INSTANCE,
            True,
            "an agent instance finish",
        ),
        OpSpec(
            OperationType.RECORD_QUALITY,
            ACTION_RECORD_QUALITY,
            _INSTANCE_PATH + "/record_quality",
            _ON_INSTANCE,
            False,
            _record_quality,
            WaitsFor.INSTANCE,
            False,
            "a quality record",
        ),
        OpSpec(
            OperationType.CREATE_SPAN,
            ACTION_CREATE_SPAN,
            "/api/v1/agent_spans",
            None,
            True,
            _create_span,
            WaitsFor.PARENT_CREATE,
            False,
            "a span create",
        ),
        OpSpec(
            OperationType.FINISH_SPAN,
            ACTION_FINISH_SPAN,
            "/api/v1/agent_spans/{span_id}/finish",
            ("agent_span_id", SPAN_ID),
            False,
            _finish_span,
            WaitsFor.OWN_CREATE,
            True,
            "a span finish",
        ),
    )
}
"""Every operation type's entry (see ``OpSpec``)."""

_missing = sorted(t.name for t in set(OperationType) - set(TABLE))
if _missing:  # pragma: no cover - caught by the table's tests
    raise RuntimeError(f"operation types without an entry in the table: {_missing}")

BULK_ACTIONS: Final[dict[OperationType, str]] = {t: s.bulk_action for t, s in TABLE.items()}
"""The bulk action of each operation type."""
CONFLICT_IS_DONE: Final = frozenset(t for t, s in TABLE.items() if s.conflict_is_done)
"""Operation types for which a 409 means done (the instance was already finished or
terminated, the span already finished): nothing is lost by not applying them again, so
they count as delivered instead of failing telemetry."""


def render_bulk_item(op: Operation) -> str:
    """Render ``op`` as one item of a ``POST /api/v1/bulk`` request."""
    spec = TABLE[op.type]
    p = op.payload
    fields = [f'"_type":"{spec.bulk_action}"']
    target = spec.target
    if target is not None:
        fields.append(f'"{target[0]}":{quote(p[target[1]])}')
    fields += spec.render(p)
    if op.idempotency_key is not None:
        fields.append(f'"idempotency_key":{quote(op.idempotency_key)}')
    return "{" + ",".join(fields) + "}"


def render_single(op: Operation) -> tuple[str, str]:
    """Render ``op`` as a single request: its path and its JSON body (always POST)."""
    spec = TABLE[op.type]
    p = op.payload
    fields = spec.render(p)
    if op.idempotency_key is not None:
        fields.append(f'"idempotency_key":{quote(op.idempotency_key)}')
    body = "{" + ",".join(fields) + "}"
    if spec.wraps_details:
        body = '{"details":' + body + "}"
    return spec.single_path.format_map(p), body


# -- builders of the instance operations (span operations: ``prefactor_core._open_spans``)


def register_op(instance_id: str, body: dict[str, Any], created: float, key: str) -> Operation:
    """Register ``instance_id`` with ``body`` (already JSON-compatible)."""
    return Operation(
        OperationType.REGISTER_AGENT_INSTANCE, {INSTANCE_ID: instance_id, BODY: body}, created, key
    )


def start_instance_op(instance_id: str, at: float, created: float, key: str) -> Operation:
    """Start ``instance_id`` at ``at``."""
    return Operation(
        OperationType.START_AGENT_INSTANCE, {INSTANCE_ID: instance_id, TIMESTAMP: at}, created, key
    )


def finish_instance_op(
    instance_id: str, status: str, at: float, created: float, key: str
) -> Operation:
    """Finish ``instance_id`` with ``status`` at ``at``."""
    payload = {INSTANCE_ID: instance_id, STATUS: status, TIMESTAMP: at}
    return Operation(OperationType.FINISH_AGENT_INSTANCE, payload, created, key)


def quality_op(
    instance_id: str, name: str, payload_json: str | None, created: float, key: str
) -> Operation:
    """Record (or, with None, remove) the quality ``name`` of ``instance_id``."""
    payload = {INSTANCE_ID: instance_id, NAME: name, PAYLOAD_JSON: payload_json}
    return Operation(OperationType.RECORD_QUALITY, payload, created, key)
