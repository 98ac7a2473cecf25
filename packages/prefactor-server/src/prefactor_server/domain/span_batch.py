"""The bulk fast path of span creates that are terminal at once (our SDK's merged creates).

Most of a bulk request from our SDK is span creates that carry their terminal status,
result and both timestamps. :class:`MergedCreates` takes such an item through the checks
of :func:`spans.create <prefactor_server.domain.spans.create>` with what the items of a
request share looked up once (the instance's schema version, the span type's compiled
fast checks) and without the per-item answer objects, and answers the outputs directly.

It only ever says yes early: for anything but a valid terminal create it answers None
having written nothing, and the general path runs the item and gives its exact answer or
error. That covers an instance not yet read in this request (the general path reads it,
the next item finds it cached), a terminated instance (its answers carry ``control``), a
pending or active span, a parent not stored yet or in another instance (orphans, 422), a
payload the fast schema check does not vouch for, a taken id, and every malformed field.
So every rule of span creation stays in ``spans.create``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import orjson

from prefactor_http.models.types import FINISH_STATUSES
from prefactor_server import _time
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.fields import CLIENT_ID, MAX_DEPTH, is_storable
from prefactor_server.domain.replays import REFERENCE
from prefactor_server.domain.resources import span_resource
from prefactor_server.domain.schemas import SchemaVersion
from prefactor_server.domain.spans import summary, template_of
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import (
    NEW_SPAN_COLUMNS,
    IdTaken,
    InstanceRow,
    NewSpan,
    SpanRow,
    WriteSession,
)

__all__ = ["MergedCreates"]

_TERMINAL = frozenset(FINISH_STATUSES)
_dumps = orjson.dumps
_client_id = CLIENT_ID.fullmatch
_fromisoformat = datetime.fromisoformat
_MINIMAL = '{"status":"success","id":"'
_KEY_PREFIX = "c-"  # our SDK's idempotency key of a span's create: this and the span id
# The fields of a span create the fast path knows (spans.create reads no others), and the
# item's own keys around them; an item with anything else takes the general path.
_FIELDS = frozenset(
    {
        "id", "agent_instance_id", "schema_name", "status", "payload", "result_payload",
        "started_at", "finished_at", "parent_span_id",
    }
)  # fmt: skip
_ITEM = _FIELDS | {"_type", "idempotency_key"}
_WRAPPED = frozenset({"_type", "idempotency_key", "details"})
_Check = Callable[[Any], bool]
# The first 20 characters ("YYYY-MM-DDTHH:MM:SS.") of timestamps found to be real times,
# for all requests: spans arrive by the thousand per second. A calendar fact, so sharing
# it is safe; the set is emptied when it reaches _MAX_HEADS (about 3 MB).
_HEADS: set[str] = set()
_MAX_HEADS = 20_000
# A span type as the fast path uses it: its title, its summary template (None: no
# summary), the params check and the result check.
_SpanType = tuple[str, str | None, _Check, _Check]


def _shallow(encoded: bytes, levels: int) -> bool:
    """Whether JSON text surely nests at most ``levels`` deep (it opens no more brackets
    than that in all; brackets inside strings only make the count safer)."""
    return len(encoded) <= levels or encoded.count(b"{") + encoded.count(b"[") <= levels


def _any(value: Any) -> bool:
    return True


def _vouches(version: SchemaVersion, kind: str, name: str) -> _Check:
    """True when ``version.check`` accepts a value (fast check first, jsonschema else)."""
    fast = version.fast(kind, name)
    if fast is None:

        def checked(value: Any) -> bool:
            try:
                version.check(kind, name, value, "")
            except ApiError:
                return False
            return True

        return checked
    return fast


def _record(row: NewSpan, payload: dict[str, Any], result: dict[str, Any] | None) -> SpanRow:
    """The stored record of a span the fast path made (for a full answer)."""
    record: dict[str, Any] = dict(zip(NEW_SPAN_COLUMNS, row, strict=True))
    record.update(orphaned=False, payload=payload, result_payload=result)
    return cast(SpanRow, record)


class MergedCreates:
    """Span creates of one bulk request through the fast path (see the module docstring).

    Args:
        session: The request's write session.
        ctx: The request's write context (its instance cache is shared with the general
            path, so instance changes earlier in the request are seen).
        minimal: Whether outputs take the ``Prefer: return=minimal`` form.
    """

    __slots__ = ("_ctx", "_last", "_minimal", "_reference", "_session", "_types")

    def __init__(self, session: WriteSession, ctx: WriteContext, *, minimal: bool) -> None:
        self._session = session
        self._ctx = ctx
        self._minimal = minimal
        self._reference = session.rebuilds_span_answers
        self._types: dict[tuple[str, str], _SpanType | None] = {}
        # The last instance record and span type name the fast path took, and that type.
        self._last: tuple[InstanceRow, str, _SpanType] | None = None

    def _span_type(self, schema_version_id: str, name: str) -> _SpanType | None:
        key = (schema_version_id, name)
        try:
            return self._types[key]
        except KeyError:
            pass
        version = self._ctx.schema_version(self._session, schema_version_id)
        found: _SpanType | None
        if not version.span_types:
            found = (name, None, _any, _any)
        elif name in version.span_types:
            definition = version.span_types[name]
            found = (
                definition.get("title") or name,
                template_of(definition),
                _vouches(version, "params", name),
                _vouches(version, "result", name),
            )
        else:
            found = None  # an unknown span type: the general path answers 422
        self._types[key] = found
        return found

    def _timestamp(self, value: Any, field: str) -> str | None:
        """``value`` formatted as ``_time.parse_timestamp`` formats it, or None when that
        refuses it. The SDK's layout (``YYYY-MM-DDTHH:MM:SS.ffffff`` and ``Z`` or
        ``+00:00``) needs only its ``Z`` once ``fromisoformat`` has found it a real time;
        a time whose first 20 characters were found real before (:data:`_HEADS`) needs only
        its six fraction digits checked."""
        if type(value) is str and value.isascii():
            size = len(value)
            if (size == 32 and value[26:] == "+00:00") or (size == 27 and value[26] == "Z"):
                head = value[:20]
                if head in _HEADS:
                    if value[20:26].isdigit():
                        return value[:26] + "Z"
                elif head[4:20:3] == "--T::." and head[0] != "0":
                    try:
                        _fromisoformat(value)
                    except ValueError:
                        return None
                    if len(_HEADS) >= _MAX_HEADS:
                        _HEADS.clear()
                    _HEADS.add(head)
                    return value[:26] + "Z"
        try:
            return _time.parse_timestamp(value, field)
        except ApiError:
            return None

    def create(self, item: dict[str, Any], key: str) -> tuple[bytes | None, bytes] | None:
        """Create the span of a bulk ``agent_spans/create`` item keyed ``key`` if it is a
        valid create that is terminal at once.

        Returns:
            (the answer to keep for replays, or None when the session keeps it with the
            span; the item's output), or None when the general path must run the item
            (nothing was written).
        """
        details = item.get("details")
        if type(details) is dict:  # the fields wrapped, as the general path reads them
            fields, levels = details, MAX_DEPTH - 1
            known = item.keys() <= _WRAPPED and details.keys() <= _FIELDS
        else:
            fields, levels = item, MAX_DEPTH
            known = item.keys() <= _ITEM
        get = fields.get
        instance_id = get("agent_instance_id")
        status = get("status")
        name = get("schema_name")
        if (
            type(instance_id) is not str
            or type(status) is not str
            or status not in _TERMINAL
            or type(name) is not str
            or not name
        ):
            return None
        ctx = self._ctx
        instance = ctx.instances.get(instance_id)
        last = self._last
        if last is not None and instance is last[0] and name == last[1]:
            instance, span_type = last[0], last[2]  # the items of a request mostly share both
        else:
            if instance is None or instance["status"] == "terminated":
                return None
            found = self._span_type(instance["schema_version_id"], name)
            if found is None:
                return None
            # An instance's record is replaced, never changed, when it changes in the
            # request (WriteContext.instances): the same record is still not terminated.
            span_type, self._last = found, (instance, name, found)
        payload = get("payload")
        if payload is None:
            payload = {}
        elif type(payload) is not dict:
            return None
        result = get("result_payload")
        if result is not None and type(result) is not dict:
            return None
        span_id = get("id")
        if span_id is not None and (type(span_id) is not str or not _client_id(span_id)):
            return None
        started_at = get("started_at")
        if started_at is not None:
            started_at = self._timestamp(started_at, "started_at")
            if started_at is None:
                return None
        finished_at = get("finished_at")
        if finished_at is not None:
            finished_at = self._timestamp(finished_at, "finished_at")
            if finished_at is None:
                return None
        try:
            payload_json = _dumps(payload)
            result_json = None if result is None else _dumps(result)
        except TypeError:  # orjson.JSONEncodeError: an integer out of range, too deep
            return None
        if not known:
            if not is_storable(item):  # other fields: check them all (fields.check_storable)
                return None
        # Every known field but the two payloads is a string or None by now, so the item
        # is storable when they are: orjson refuses integers outside 64 bits as the check
        # does, and a payload nests no deeper than it has brackets.
        elif not (_shallow(payload_json, levels) or is_storable(payload, levels - 1)) or (
            result is not None
            and result_json is not None
            and not (_shallow(result_json, levels) or is_storable(result, levels - 1))
        ):
            return None
        title, template, params_ok, result_ok = span_type
        if not params_ok(payload):
            return None
        if result is not None and status == "complete" and not result_ok(result):
            return None
        session = self._session
        account_id = ctx.account.id
        parent_id = get("parent_span_id")
        if parent_id is not None:
            if type(parent_id) is not str:
                return None
            parent_instance = ctx.span_instances.get(parent_id) or session.span_instance_id(
                account_id, parent_id
            )
            if parent_instance != instance_id:
                return None  # an orphan (full answer) or another instance's span (422)
        now = ctx.clock()
        if span_id is None:
            span_id = ctx.new_id()
        row: NewSpan = (
            account_id, span_id, instance_id, instance["agent_id"], parent_id, 0, name, title,
            status, payload_json.decode(), None if result_json is None else result_json.decode(),
            None if template is None else summary(template, payload, result),
            started_at or now, finished_at or now, now, now,
        )  # fmt: skip
        # A terminal span that is no orphan and whose answer has no control never changes
        # again: its answer is a reference to it (domain/replays.py), which the session
        # may keep with the span when the key is our SDK's ("c-" + the span id).
        reference = self._reference
        keyed = (
            reference
            and len(key) == len(span_id) + 2
            and key.startswith(_KEY_PREFIX)
            and key.endswith(span_id)
        )
        try:
            kept = session.add_span(row, keyed)
        except IdTaken:
            return None  # 409 from the general path (a failed insert writes nothing)
        ctx.span_instances[span_id] = instance_id
        # Ids are letters, digits, "_" and "-" (client ids and PFIDs): nothing to escape,
        # so the minimal output is orjson.dumps({"status": "success", "id": span_id}).
        minimal = (_MINIMAL + span_id + '"}').encode() if self._minimal else None
        if reference:
            stored = None if kept else REFERENCE + span_id.encode()
            if minimal is not None:
                return stored, minimal
            return stored, _dumps(self._answer(row, payload, result))
        full = _dumps(self._answer(row, payload, result))
        return full, full if minimal is None else minimal

    @staticmethod
    def _answer(row: NewSpan, payload: dict[str, Any], result: dict[str, Any] | None) -> Any:
        """The full answer of a span the fast path made."""
        return {"status": "success", "details": span_resource(_record(row, payload, result))}
