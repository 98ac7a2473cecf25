"""A run's span tree as compact columns, in pages (the run page's big download).

The viewer needs every span of a run to lay out and navigate the whole tree, but only a
few facts per span. The page asks for the tree in pages (``after`` the last id it has,
``limit`` spans): a small first page draws the first screen, bigger ones fill the rest.
Each page is read in reads of at most :data:`CHUNK` spans (each its own short read on the
storage's reader pool, so API reads interleave with a big build), turned into columns
(names and types dictionary-encoded, times as milliseconds from the run's start, payloads
never kept), then encoded and gzip-compressed in a worker thread. Builds are serialised
by a semaphore, so viewers of huge runs never occupy more than one reader.

Format (``v`` 1) of one page::

    {"v": 1, "t0": "<ISO start>", "n": N, "cursor": "<max updated_at>", "next": "<id>"|null,
     "id": [...], "parent": [index in this page or -1], "parent_ref": {"<index>": "<id>"},
     "name": [i], "names": [...],
     "type": [i], "types": [...], "status": [i], "statuses": [...],
     "start": [ms or null], "end": [ms or null], "summary": [...],
     "tokens": [...], "cost": [...], "model": [i or -1], "models": [...],
     "errors": {"<index>": "Type: message"}}

Spans are in id order; a parent outside the page is named in ``parent_ref``. ``next`` is
the ``after`` of the following page (null on the last). The browser orders siblings by
start and computes depths itself.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from prefactor_http.models.types import SPAN_STATUSES
from prefactor_server.storage.base import SpanViewRow, Storage
from prefactor_server.traces.llm import LlmFacts, llm_facts
from prefactor_server.traces.tree import SpanNode, span_error

__all__ = ["CHUNK", "STATUSES", "TreeCache", "TreeColumns", "build_tree_json", "span_row"]

CHUNK = 5000
STATUSES = list(SPAN_STATUSES)
_SUMMARY_CHARS = 160
_ERROR_CHARS = 300
_NO_FACTS = LlmFacts()


def _ms(value: object, t0: float) -> int | None:
    """Milliseconds from ``t0`` (epoch ms) to a stored timestamp; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)  # stored as 2026-08-10T09:00:01.000000Z
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000 - t0)


def span_row(record: SpanViewRow, t0: datetime) -> dict[str, Any]:
    """One compact span (the live-update form): the columns' values for one span."""
    return _row(record, t0.timestamp() * 1000)


def _row(record: SpanViewRow, origin: float) -> dict[str, Any]:
    params, result = record.get("payload"), record.get("result_payload")
    # Most spans carry no LLM facts: storage leaves their payloads out (None), so skip.
    facts = _NO_FACTS if params is None and result is None else llm_facts(params, result)
    status = str(record["status"])
    error = span_error(record) if status == "failed" else None
    summary = record.get("summary") or ""
    if status == "cancelled" and not record.get("started_at"):
        summary = SpanNode(dict(record)).display_summary  # "cancelled before it started: ..."
    return {
        "id": record["id"],
        "parent_id": record["parent_span_id"],
        "name": str(record.get("schema_title") or record["schema_name"]),
        "type": str(record["schema_name"]),
        "status": status,
        "start": _ms(record.get("started_at"), origin),
        "end": _ms(record.get("finished_at"), origin),
        "summary": str(summary)[:_SUMMARY_CHARS],
        "tokens": facts.total_tokens,
        "cost": round(facts.cost, 6),
        "model": facts.models[0] if facts.models else None,
        "error": error[:_ERROR_CHARS] if error else None,
    }


@dataclass
class TreeColumns:
    """The columns being filled, one span at a time."""

    t0: datetime
    ids: list[str] = field(default_factory=list)
    parent_ids: list[str | None] = field(default_factory=list)
    name: list[int] = field(default_factory=list)
    type: list[int] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    start: list[int | None] = field(default_factory=list)
    end: list[int | None] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    model: list[int] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    cursor: str = "1970-01-01T00:00:00.000000Z"  # no spans yet: every change is new
    _dicts: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._origin = self.t0.timestamp() * 1000
        for kind in ("names", "types", "statuses", "models"):
            self._dicts[kind] = {}

    def _code(self, kind: str, value: str) -> int:
        table = self._dicts[kind]
        code = table.get(value)
        if code is None:
            code = table[value] = len(table)
        return code

    def add(self, record: SpanViewRow) -> None:
        """Append one span record (from :meth:`ReadSession.run_span_rows`)."""
        row = _row(record, self._origin)
        if row["error"]:
            self.errors[str(len(self.ids))] = row["error"]
        self.ids.append(row["id"])
        self.parent_ids.append(row["parent_id"])
        self.name.append(self._code("names", row["name"]))
        self.type.append(self._code("types", row["type"]))
        self.status.append(self._code("statuses", row["status"]))
        self.start.append(row["start"])
        self.end.append(row["end"])
        self.summary.append(row["summary"])
        self.tokens.append(row["tokens"])
        self.cost.append(row["cost"])
        self.model.append(-1 if row["model"] is None else self._code("models", row["model"]))
        updated = record.get("updated_at")
        if updated and updated > self.cursor:
            self.cursor = str(updated)

    def encode(self, following: str | None) -> bytes:
        """The columns as JSON: parents as indexes in this page, or by id in ``parent_ref``."""
        index = {span_id: i for i, span_id in enumerate(self.ids)}
        parents = [-1 if p is None else index.get(p, -1) for p in self.parent_ids]
        refs = {
            str(i): p
            for i, p in enumerate(self.parent_ids)
            if p is not None and parents[i] < 0 and p != self.ids[i]
        }
        body = {
            "v": 1,
            "t0": self.t0.isoformat().replace("+00:00", "Z"),
            "n": len(self.ids),
            "cursor": self.cursor,
            "next": following,
            "id": self.ids,
            "parent": parents,
            "parent_ref": refs,
            **{kind: list(table) for kind, table in self._dicts.items()},
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "summary": self.summary,
            "tokens": self.tokens,
            "cost": self.cost,
            "model": self.model,
            "errors": self.errors,
        }
        return orjson.dumps(body)


class TreeCache:
    """Recently built trees (gzipped), most recent last, at most ``max_bytes`` in all.

    An entry is used only while its validator still matches: the run's span counts per
    status, status and update time. A span is created or finished with a status, so any
    change to a run's spans changes its validator; a finished run is built once.
    """

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str, str, int], tuple[Any, bytes]] = OrderedDict()
        self._size = 0

    def get(self, key: tuple[str, str, str, int], validator: Any) -> bytes | None:
        """The cached gzip body of ``key`` if it is still valid."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != validator:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, str, str, int], validator: Any, packed: bytes) -> None:
        """Keep a built tree, dropping the least recently used beyond the budget."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old[1])
        if len(packed) > self.max_bytes:
            return
        self._entries[key] = (validator, packed)
        self._size += len(packed)
        while self._size > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._size -= len(dropped)


async def build_tree_json(
    storage: Storage,
    gate: asyncio.Semaphore,
    account_id: str,
    instance_id: str,
    t0: datetime,
    *,
    after: str | None = None,
    limit: int = CHUNK,
) -> bytes:
    """Read one page of a run's spans (``limit`` after ``after``) as gzipped columns.

    ``gate`` (one per app) lets one build run at a time.
    """
    async with gate:
        columns = TreeColumns(t0)
        last = after
        while len(columns.ids) < limit:
            size = min(CHUNK, limit - len(columns.ids))

            def read(session: Any, after_id: str | None = last, size: int = size) -> int:
                rows = session.run_span_rows(account_id, instance_id, after_id=after_id, limit=size)
                for record in rows:
                    columns.add(record)
                return len(rows)

            count = await storage.read(read)
            if count < size:
                break
            last = columns.ids[-1]
        full = len(columns.ids) >= limit
        following = columns.ids[-1] if full and columns.ids else None

        def finish() -> bytes:
            return gzip.compress(columns.encode(following), compresslevel=5)

        return await asyncio.to_thread(finish)
