"""Span creates whose bulk item is rendered once, when the engine takes them.

The client's own queue holds a started span as its record (``_open_spans``); when the
engine takes the record, ``take`` makes its create (or the create that already carries
its finish) and renders its ``POST /api/v1/bulk`` item here, straight from the record's
fields, into the bytes the engine keeps with the operation (``Rendered.text``). The
batching then only joins bytes, and a retry sends the very same bytes again.

The text is exactly what ``optable.render_bulk_item`` makes of the same operation (the
same fields in the same order, orjson's escaping, ``jsontext.iso`` timestamps); the
tests compare the two byte for byte. Whatever changes an operation (a repair with
markers, a split for a single request) makes a new ``Operation``, rendered afresh; the
engine's merge of a create taken before its finish came with that finish makes a new
``Rendered`` (``finished_create``), rendered here as a record taken with its finish.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from types import ModuleType
from typing import Any

from orjson import dumps

from prefactor_core._engine.jsontext import second_text
from prefactor_core.operations import _NO_METADATA, Operation, OperationType
from prefactor_http.models.types import ACTION_CREATE_SPAN

__all__ = [
    "LANE",
    "MERGED",
    "PARENT",
    "SPAN",
    "TEXT",
    "Record",
    "Rendered",
    "finished_create",
    "render_create",
    "rendered_create",
]

Record = tuple[Any, ...]
"""A taken span create's fields (``Rendered.record``), in the order of the positions
below: instance id, span id, parent id or None, whether it carries its finish, its
rendered item (or None), span type, status, params JSON, start, result JSON, end."""
LANE, SPAN, PARENT, MERGED, TEXT = range(5)
"""Where the engine's hot paths read a record: its lane (the instance id), its span id,
its parent's id, whether it is a merged create (it weighs two), its bulk item."""
_SCHEMA, _STATUS, _PARAMS, _STARTED, _RESULT, _FINISHED_AT = range(5, 11)


class Rendered(Operation):
    """A span create the engine took from the client's queue, with its rendered bulk item
    (``text``: JSON, UTF-8, or None when it must be rendered the usual way).

    It holds the span's fields in one tuple of strings, numbers and None (``record``)
    and builds its ``payload``, ``metadata``, timestamp and idempotency key only when
    they are read (the payload and metadata once; they are kept). Such a tuple is
    something Python's cyclic garbage collector stops tracking the first time it sees
    it, so the collections that run while the engine holds thousands of these visit one
    object per create instead of its payload, metadata, strings and numbers, and taking
    a record allocates two of the collector's objects instead of three. The engine's
    own hot paths read the lane, span id, parent id, merged flag and text from
    ``record`` directly. To everything else (taps, the spool, pickling, equality,
    ``dataclasses.replace``) it is the operation it stands for.

    One made by hand (``dataclasses.replace``) has no record: it is a plain operation,
    rendered as usual.
    """

    __slots__ = ("record",)

    record: Record | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_record(self, None)  # made by hand: its fields are the usual slots

    # Read-only properties where ``Operation`` has slots: operations are immutable. A
    # taken create's payload and metadata slots hold None until they are built.
    @property
    def payload(self) -> dict[str, Any]:  # type: ignore[override]
        payload: dict[str, Any] | None = _payload_slot(self)
        record = self.record
        if payload is None and record is not None:
            payload = _payload(record)
            _set_payload(self, payload)
        return payload  # type: ignore[return-value]  # None only if made so by hand

    @property
    def metadata(self) -> dict[str, Any]:  # type: ignore[override]
        metadata: dict[str, Any] | None = _metadata_slot(self)
        record = self.record
        if metadata is None and record is not None:
            if not record[MERGED]:
                return _NO_METADATA
            metadata = {_keys().MERGED_FINISH: _keys().FINISH_KEY_PREFIX + record[SPAN]}
            _set_metadata(self, metadata)
        return metadata  # type: ignore[return-value]

    @property
    def _created(self) -> datetime | float:  # type: ignore[override]
        record = self.record
        created: datetime | float = _created_slot(self) if record is None else record[_STARTED]
        return created

    @property
    def idempotency_key(self) -> str | None:
        record = self.record
        if record is None:
            made: str | None = _key_of(self)
            return made
        key: str = _CREATE_PREFIX + record[SPAN]
        return key

    @property
    def text(self) -> bytes | None:
        """The rendered bulk item, or None."""
        record = self.record
        text: bytes | None = None if record is None else record[TEXT]
        return text


_set_record = Rendered.__dict__["record"].__set__
_base = Operation.__dict__
_payload_slot = _base["payload"].__get__
_set_payload = _base["payload"].__set__
_metadata_slot = _base["metadata"].__get__
_set_metadata = _base["metadata"].__set__
_created_slot = _base["_created"].__get__
_key_of = _base["idempotency_key"].fget
del _base
_new = Operation.__new__
_set_type = Operation.__dict__["type"].__set__
_CREATE = OperationType.CREATE_SPAN
_CREATE_PREFIX = "c-"  # ``optable.CREATE_KEY_PREFIX``


def rendered_create(record: Record) -> Rendered:
    """The span create keyed ``c-<span id>`` whose fields are ``record`` (see ``Record``)."""
    op: Rendered = _new(Rendered)
    _set_type(op, _CREATE)
    _set_payload(op, None)
    _set_metadata(op, None)
    _set_record(op, record)
    return op


def finished_create(record: Record, status: str, result_json: str | None, at: float) -> Rendered:
    """The create of ``record`` (taken before its finish came) merged with that finish:
    what a record taken with its finish folded in would have made (the finish's key is
    ``f-<span id>``, the caller checks it)."""
    lane, span, parent, _, _, schema, _, params, started, _, _ = record
    text = render_create(span, lane, schema, status, params, parent, started, result_json, at)
    return rendered_create(
        (lane, span, parent, True, text, schema, status, params, started, result_json, at)
    )


def _payload(record: Record) -> dict[str, Any]:
    """The payload of a taken create, as ``_span_taking`` made it before (same keys in the
    same order)."""
    k = _keys()
    payload: dict[str, Any] = {
        k.INSTANCE_ID: record[LANE],
        k.SPAN_ID: record[SPAN],
        k.SCHEMA_NAME: record[_SCHEMA],
        k.STATUS: record[_STATUS],
        k.PAYLOAD_JSON: record[_PARAMS],
        k.STARTED_AT: record[_STARTED],
    }
    if record[MERGED]:
        payload[k.RESULT_JSON] = record[_RESULT]
        payload[k.FINISHED_AT] = record[_FINISHED_AT]
    if record[PARENT] is not None:
        payload[k.PARENT_SPAN_ID] = record[PARENT]
    return payload


@cache
def _keys() -> ModuleType:
    """``optable``, where the payload keys are named (it imports this module)."""
    from prefactor_core._engine import optable

    return optable


_FINISHED = (
    b'{"_type":"' + ACTION_CREATE_SPAN.encode() + b'","id":"%s","agent_instance_id":%s,'
    b'"schema_name":%s,"status":%s,"payload":%s%s,"started_at":"%s.%06d+00:00"%s,'
    b'"finished_at":"%s.%06d+00:00","idempotency_key":"c-%s"}'
)
"""A span create that carries its finish (``_create_span``'s fields, in its order)."""
_OPEN = _FINISHED.replace(b',"finished_at":"%s.%06d+00:00"', b"")
"""A span create without its finish."""
_quoted: dict[str, bytes] = {}
"""JSON string literals of the instance ids, span types and statuses seen lately."""
_MOST_QUOTED = 4096
_seconds: dict[int, bytes] = {}
"""``jsontext.second_text`` of recent seconds, encoded."""


def _quote(text: str) -> bytes:
    """``text`` as a JSON string literal, as orjson writes it (kept for the next span;
    raises TypeError for text that is not valid UTF-8, which orjson refuses)."""
    if len(_quoted) >= _MOST_QUOTED:
        _quoted.clear()
    quoted = _quoted[text] = dumps(text)
    return quoted


def _second(second: int) -> bytes:
    if len(_seconds) >= _MOST_QUOTED:
        _seconds.clear()
    text = _seconds[second] = second_text(second).encode()
    return text


def render_create(
    span_id: str,
    instance_id: str,
    schema_name: str,
    status: str,
    payload_json: str | None,
    parent_id: str | None,
    started_at: float,
    result_json: str | None,
    finished_at: float | None,
) -> bytes | None:
    """The bulk item of a span create keyed ``c-<span_id>``, started at ``started_at``
    and, when ``finished_at`` is given, finished then (a merged create); None when it
    cannot be rendered here (text orjson refuses, which ``render_bulk_item`` renders
    with its fallback)."""
    try:
        span = span_id.encode()
        if not span.isalnum():  # made ids are; any other is escaped as orjson does
            span = dumps(span_id)[1:-1]
        quoted = _quoted
        instance = quoted.get(instance_id) or _quote(instance_id)
        schema = quoted.get(schema_name) or _quote(schema_name)
        state = quoted.get(status) or _quote(status)
        params = (payload_json or "{}").encode()
        parent = b"" if parent_id is None else b',"parent_span_id":' + dumps(parent_id)
        result = b"" if result_json is None else b',"result_payload":' + result_json.encode()
        second, fraction = divmod(round(started_at * 1_000_000), 1_000_000)
        start = _seconds.get(second) or _second(second)
        fields = (span, instance, schema, state, params, parent, start, fraction, result)
        if finished_at is None:
            return _OPEN % (*fields, span)
        second, end = divmod(round(finished_at * 1_000_000), 1_000_000)
        return _FINISHED % (*fields, _seconds.get(second) or _second(second), end, span)
    except (TypeError, UnicodeEncodeError):
        return None
