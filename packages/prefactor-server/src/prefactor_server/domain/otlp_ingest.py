"""Store decoded OTLP spans: one OTel trace becomes one agent instance.

The rules (README, "OpenTelemetry in"):

* The instance id is ``otel-<trace id>`` and each span id ``otel-<trace id>-<span id>``,
  so the spans of one trace, exported in many requests, in any order, children before
  parents, land in one instance and one tree (a child stored before its parent is marked
  orphaned until the parent arrives, then adopted by the storage).
* The agent is the resource's ``service.name`` (id: a digest of the name), the agent
  version its ``service.version``.
* Re-sending an export stores nothing twice: a span whose id is stored already is skipped.
* The instance is ``active`` from its first span and finishes when its root span (the one
  without a parent) arrives: OTel exports a span only once it has ended, so the root's
  arrival means the run is over. Its status is ``failed`` when the root's status is
  ``ERROR``, else ``complete``; its times are the root's start and end. A trace whose
  root never arrives (a root in an uninstrumented service) stays ``active``.

:func:`prepare` does the mapping outside the write transaction (it is the costly part);
:func:`store` runs inside it through the storage protocol only. A large export is stored
in parts (:func:`split`), one transaction each, so that mapping the next part overlaps
storing the previous one; the answer still waits for the last commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import cast

from prefactor_core.otel._mapping import (
    OtelSpan,
    agent_id_for_service,
    instance_id_for_trace,
    map_span,
    span_id_for,
)
from prefactor_server.domain import instances
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.otlp_decode import Export, Resource
from prefactor_server.errors import ApiError, conflict
from prefactor_server.storage.base import Fields, IdTaken, InstanceRow, SpanRow, WriteSession

__all__ = ["Outcome", "PreparedTrace", "prepare", "split", "store"]

_SCHEMA_IDENTIFIER = "otel"
_START = attrgetter("start_ns")


# The last second formatted and its text (with the "."), as one tuple: threads swap it
# atomically.
_SECOND: list[tuple[int, str]] = [(-1, "")]


def ns_timestamp(ns: int) -> str:
    """Format nanoseconds since the epoch as the storage's UTC timestamp (microseconds).

    The date and time to the second are formatted once per second: spans of an export
    mostly share their seconds. The six digits of microseconds are those of 1,000,000 +
    µs after its leading 1 (a third faster than a ``:06d`` format, twice per span).
    """
    seconds, rest = divmod(ns, 1_000_000_000)
    second, text = _SECOND[0]
    if second != seconds:
        text = datetime.fromtimestamp(seconds, UTC).isoformat()[:19] + "."
        _SECOND[0] = (seconds, text)
    return f"{text}{str(rest // 1000 + 1_000_000)[1:]}Z"


@dataclass
class PreparedTrace:
    """The spans of one trace in one export, with the service that sent them."""

    instance_id: str
    agent_id: str
    service_name: str
    service_version: str | None
    started_at: str
    spans: list[SpanRow] = field(default_factory=list)
    root: SpanRow | None = None


@dataclass
class Outcome:
    """What :func:`store` did: spans stored, spans already stored, spans refused."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        """Count another part's outcome in this one."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.errors.extend(other.errors)


def split(export: Export, size: int) -> list[Export]:
    """The export's usable spans in parts of at most ``size`` spans, earliest start first
    (so parents mostly land in an earlier part than their children), for storing part by
    part: the next part is mapped while the writer stores the previous one."""
    if export.span_count <= size:
        return [export]
    parts: list[Export] = []
    for resource in export.resources:
        spans = sorted(resource.spans, key=_START)
        for offset in range(0, len(spans), size):
            chunk = spans[offset : offset + size]
            parts.append(Export([Resource(resource.service_name, resource.service_version, chunk)]))
    return parts


def _span_row(span: OtelSpan, instance_id: str, agent_id: str) -> SpanRow:
    """The span's row, built once: :func:`store` fills in the account and the times of the
    transaction (and the instance's agent when another service made the instance)."""
    mapped = map_span(span)
    trace_id = span.trace_id
    started = ns_timestamp(span.start_ns)
    return {
        "account_id": "",
        "id": span_id_for(trace_id, span.span_id),
        "agent_instance_id": instance_id,
        "agent_id": agent_id,
        "parent_span_id": (
            span_id_for(trace_id, span.parent_span_id) if span.parent_span_id else None
        ),
        "orphaned": False,  # decided by the storage
        "schema_name": mapped.schema_name,
        "schema_title": mapped.schema_name,
        "status": mapped.status,
        "payload": mapped.params,
        "result_payload": mapped.result or None,
        "summary": None,
        "started_at": started,
        "finished_at": ns_timestamp(span.end_ns) if span.end_ns >= span.start_ns else started,
        "inserted_at": "",
        "updated_at": "",
    }


def prepare(export: Export) -> list[PreparedTrace]:
    """Map every span of an export to its row, grouped by trace (parents before children
    when the export holds both: spans are ordered by start time)."""
    traces: dict[str, PreparedTrace] = {}
    for resource in export.resources:
        agent_id = agent_id_for_service(resource.service_name)
        for span in sorted(resource.spans, key=_START):
            trace = traces.get(span.trace_id)
            if trace is None:
                instance_id = instance_id_for_trace(span.trace_id)
                row = _span_row(span, instance_id, agent_id)
                trace = traces[span.trace_id] = PreparedTrace(
                    instance_id=instance_id,
                    agent_id=agent_id,
                    service_name=resource.service_name,
                    service_version=resource.service_version,
                    started_at=cast(str, row["started_at"]),
                )
            else:
                row = _span_row(span, trace.instance_id, agent_id)
            trace.spans.append(row)
            if row["parent_span_id"] is None:
                trace.root = row
    return list(traces.values())


def _opening(trace: PreparedTrace) -> Fields:
    """The instance's state after this export: active from its first span, finished by its
    root (see :func:`_finish`)."""
    changes: Fields = {"status": "active", "started_at": trace.started_at}
    root = trace.root
    if root is not None:
        changes["status"] = "failed" if root["status"] == "failed" else "complete"
        changes["finished_at"] = root["finished_at"]
        if cast(str, root["started_at"]) < trace.started_at:
            changes["started_at"] = root["started_at"]
    return changes


def _instance(
    session: WriteSession,
    ctx: WriteContext,
    trace: PreparedTrace,
    templates: dict[tuple[str, str, str | None], InstanceRow],
) -> tuple[InstanceRow, bool]:
    """The trace's instance, registered when new; and whether it was new (then it is
    already in its state after this export: :func:`_opening`)."""
    record = ctx.instances.get(trace.instance_id)  # read by store() if stored
    if record is not None:
        return record, False
    service = (trace.agent_id, trace.service_name, trace.service_version)
    template = templates.get(service)
    if template is not None:
        # Another new trace of the same service in this export: the agent, its version,
        # schema version and deployment are settled, only the instance row is new.
        record = cast(InstanceRow, {**template, "id": trace.instance_id, **_opening(trace)})
        try:
            session.insert_instance(record)
        except IdTaken:
            raise conflict(f"Agent instance {trace.instance_id} already exists") from None
        ctx.instances[trace.instance_id] = record
        return record, True
    instances.register(
        session,
        ctx,
        {
            "id": trace.instance_id,
            "agent_id": trace.agent_id,
            "agent_version": {
                "name": trace.service_name,
                "external_identifier": trace.service_version or "unversioned",
            },
            "agent_schema_version": {"external_identifier": _SCHEMA_IDENTIFIER},
        },
    )
    templates[service] = ctx.instances[trace.instance_id]
    # Started at once, from its first span (what instances.start does, without the
    # answer's span counts, which nobody reads here), and finished when the root is here.
    return _change(ctx, session, trace.instance_id, _opening(trace)), True


def _change(
    ctx: WriteContext, session: WriteSession, instance_id: str, changes: Fields
) -> InstanceRow:
    changes["updated_at"] = ctx.clock()
    session.update_instance(ctx.account.id, instance_id, changes)
    record = cast(InstanceRow, {**ctx.instances[instance_id], **changes})
    ctx.instances[instance_id] = record
    return record


def _finish(session: WriteSession, ctx: WriteContext, record: InstanceRow, root: SpanRow) -> None:
    """Finish the instance with its root span (a resent root changes nothing)."""
    if record["status"] not in ("pending", "active"):
        return
    started = cast(str, root["started_at"])
    changes: Fields = {
        "status": "failed" if root["status"] == "failed" else "complete",
        "finished_at": root["finished_at"],
    }
    if record["started_at"] is None or started < record["started_at"]:
        changes["started_at"] = started
    _change(ctx, session, record["id"], changes)


def store(session: WriteSession, ctx: WriteContext, traces: list[PreparedTrace]) -> Outcome:
    """Store prepared traces in the caller's transaction (see the module docstring)."""
    outcome = Outcome()
    account_id = ctx.account.id
    now = ctx.clock()
    records: list[SpanRow] = []
    roots: list[tuple[str, SpanRow]] = []
    templates: dict[tuple[str, str, str | None], InstanceRow] = {}
    # Exports of one new trace may reach several server processes at once (PostgreSQL):
    # each trace's instance is looked up and made under a lock on its id, taken in id
    # order so two exports never wait on each other in a cycle (a no-op on SQLite).
    for instance_id in sorted({trace.instance_id for trace in traces}):
        session.lock(f"otlp-instance/{account_id}/{instance_id}")
    # The stored ones read at once (an export's traces are mostly new).
    unknown = [trace.instance_id for trace in traces if trace.instance_id not in ctx.instances]
    if unknown:
        ctx.instances.update(session.get_instances(account_id, unknown))
    for trace in traces:
        try:
            instance, new = _instance(session, ctx, trace, templates)
        except ApiError as exc:
            outcome.rejected += len(trace.spans)
            outcome.errors.append(f"trace {trace.instance_id}: {exc.message}")
            continue
        instance_id = instance["id"]
        agent_id = instance["agent_id"]
        for row in trace.spans:
            row["account_id"] = account_id
            row["inserted_at"] = row["updated_at"] = now
            if agent_id != trace.agent_id:  # the instance came from another service
                row["agent_id"] = agent_id
        records.extend(trace.spans)
        if trace.root is not None and not new:
            roots.append((instance_id, trace.root))
    if records:
        outcome.stored = session.insert_spans(account_id, records)
        outcome.duplicates = len(records) - outcome.stored
    for instance_id, root in roots:
        _finish(session, ctx, ctx.instances[instance_id], root)
    return outcome
