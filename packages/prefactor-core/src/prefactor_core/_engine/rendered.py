"""Span creates whose bulk item is rendered once, when the engine takes them.

The client's own queue holds a started span as its record (``_open_spans``); when the
engine takes the record, ``take`` makes its create (or the create that already carries
its finish) and renders its ``POST /api/v1/bulk`` item here, straight from the record's
fields, into the bytes the engine keeps with the operation (``Rendered.text``). The
batching then only joins bytes, and a retry sends the very same bytes again.

The text is exactly what ``optable.render_bulk_item`` makes of the same operation (the
same fields in the same order, orjson's escaping, ``jsontext.iso`` timestamps); the
tests compare the two byte for byte. Whatever changes an operation (a repair with
markers, a split for a single request) makes a new ``Operation``, rendered afresh.
"""

from __future__ import annotations

from typing import Any

from orjson import dumps

from prefactor_core._engine.jsontext import second_text
from prefactor_core.operations import Operation, OperationType, derived_operation
from prefactor_http.models.types import ACTION_CREATE_SPAN

__all__ = ["Rendered", "render_create", "rendered_create"]


class Rendered(Operation):
    """An operation that carries its rendered bulk item (``text``: JSON, UTF-8), or None
    when it must be rendered the usual way."""

    __slots__ = ("text",)

    text: bytes | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_text(self, None)  # made by hand (``dataclasses.replace``): render as usual


_set_text = Rendered.__dict__["text"].__set__
_CREATE = OperationType.CREATE_SPAN


def rendered_create(
    payload: dict[str, Any],
    created: float,
    span_id: str,
    metadata: dict[str, Any] | None,
    text: bytes | None,
) -> Rendered:
    """A span create keyed ``c-<span_id>`` (``derived_operation``) with its item ``text``."""
    op = derived_operation(_CREATE, payload, created, "c-", span_id, metadata, Rendered)
    _set_text(op, text)
    return op  # type: ignore[return-value]  # derived_operation made a Rendered


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
