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

from orjson import OPT_NON_STR_KEYS, Fragment, dumps

from prefactor_core._engine.jsontext import iso, quote
from prefactor_core._engine.rendered import Rendered
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


Raw = Callable[[str], Any]
"""Wraps JSON text that is already encoded (params, results) for the encoder."""
Renderer = Callable[[dict[str, Any], Raw, dict[str, Any]], None]
"""Adds the body fields of a payload (path parameters excluded) to a body, in order;
``raw`` wraps text that is already JSON (``orjson.Fragment``)."""


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


def _create_span(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    out["id"] = p[SPAN_ID]
    out["agent_instance_id"] = p[INSTANCE_ID]
    out["schema_name"] = p[SCHEMA_NAME]
    out["status"] = p[STATUS]
    out["payload"] = raw(p.get(PAYLOAD_JSON) or "{}")
    value = p.get(PARENT_SPAN_ID)
    if value is not None:
        out["parent_span_id"] = value
    value = p.get(STARTED_AT)
    if value is not None:
        out["started_at"] = iso(value)
    _outcome(p, raw, out, FINISHED_AT, "finished_at")


def _finish_span(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    out["status"] = p[STATUS]
    _outcome(p, raw, out, TIMESTAMP, "timestamp")


def _outcome(p: dict[str, Any], raw: Raw, out: dict[str, Any], at: str, field: str) -> None:
    """A span's result and when it finished (the payload key ``at``, the body's ``field``)."""
    value = p.get(RESULT_JSON)
    if value is not None:
        out["result_payload"] = raw(value)
    value = p.get(at)
    if value is not None:
        out[field] = iso(value)


def _start_instance(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    ts = p.get(TIMESTAMP)
    out["timestamp"] = iso(ts) if ts is not None else None


def _finish_instance(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    out["status"] = p[STATUS]
    if p.get(TIMESTAMP) is not None:
        out["timestamp"] = iso(p[TIMESTAMP])


def _record_quality(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    out["name"] = p[NAME]
    out["payload"] = raw(p.get(PAYLOAD_JSON) or "null")


def _register(p: dict[str, Any], raw: Raw, out: dict[str, Any]) -> None:
    out.update(p[BODY])


_CREATE_SPAN = OperationType.CREATE_SPAN
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


def render_bulk_item(op: Operation) -> bytes:
    """Render ``op`` as one item of a ``POST /api/v1/bulk`` request (JSON, UTF-8)."""
    if isinstance(op, Rendered):
        text = op.text  # rendered when the engine took it
        if text is not None:
            return text
    if op.type is _CREATE_SPAN:
        # Most items are span creates: the same fields as ``_fields``, one call less.
        out: dict[str, Any] = {"_type": ACTION_CREATE_SPAN}
        _create_span(op.payload, Fragment, out)
        key = op.idempotency_key
        if key is not None:
            out["idempotency_key"] = key
        try:
            return dumps(out, option=OPT_NON_STR_KEYS)
        except TypeError:
            pass
    try:
        return dumps(_fields(op, Fragment, True), option=OPT_NON_STR_KEYS)
    except TypeError:
        return _escaped(_fields(op, _Raw, True)).encode()


def render_single(op: Operation) -> tuple[str, bytes]:
    """Render ``op`` as a single request: its path and its JSON body (always POST)."""
    spec = TABLE[op.type]
    try:
        body = dumps(_fields(op, Fragment, False), option=OPT_NON_STR_KEYS)
    except TypeError:
        body = _escaped(_fields(op, _Raw, False)).encode()
    if spec.wraps_details:
        body = b'{"details":' + body + b"}"
    return spec.single_path.format_map(op.payload), body


def _fields(op: Operation, raw: Raw, bulk: bool) -> dict[str, Any]:
    """The body (or bulk item) fields of ``op``, to be encoded as JSON (orjson: non-ASCII
    text as it is). A string that is not valid UTF-8 (a lone surrogate), which orjson
    refuses, makes the renderers above encode with ``_Raw`` and ``_escaped`` instead:
    ``\\uXXXX`` escapes, as Python's own JSON encoder writes them."""
    spec = TABLE[op.type]
    p = op.payload
    out: dict[str, Any] = {}
    if bulk:
        out["_type"] = spec.bulk_action
        target = spec.target
        if target is not None:
            out[target[0]] = p[target[1]]
    spec.render(p, raw, out)
    key = op.idempotency_key
    if key is not None:
        out["idempotency_key"] = key
    return out


class _Raw(str):
    """Text that is already JSON (the fallback's ``raw``)."""

    __slots__ = ()


def _escaped(value: Any) -> str:
    if isinstance(value, _Raw):
        return str.__str__(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, dict):
        pairs = (f"{quote(str(k))}:{_escaped(v)}" for k, v in value.items())
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_escaped(v) for v in value) + "]"
    return dumps(value, option=OPT_NON_STR_KEYS).decode()


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
