"""The run list: its query string, keyset cursors, and per-run LLM totals.

Pages are keyset-paged on ``(sort key, id)``: a cursor names the last row shown, so a
run inserted meanwhile never shifts a page or repeats a row, and any page is one indexed
query away however deep it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import orjson

from prefactor_http.models.types import INSTANCE_STATUSES, OPEN_STATUSES
from prefactor_server.domain.resources import instance_resource
from prefactor_server.storage.base import (
    RUN_SORTS,
    ListQuery,
    ReadSession,
    RunPage,
    RunQuery,
    RunRow,
    RunWalk,
)
from prefactor_server.traces.llm import LlmFacts, llm_facts
from prefactor_server.traces.tree import duration_seconds, parse_time

__all__ = [
    "PAGE_SIZE",
    "SORT_LABELS",
    "RunList",
    "RunListForm",
    "decode_cursor",
    "encode_cursor",
    "load_run_list",
]

PAGE_SIZE = 50
SORT_LABELS = {
    "started": "start time",
    "duration": "duration",
    "spans": "span count",
    "errors": "errors",
    "tokens": "tokens",
    "cost": "cost",
}
# Sorts on LLM facts, which live inside payloads: every matching run's totals are read
# (pre-filtered payloads only) and sorted here, so a page costs time in the number of
# matching runs; the other sorts are one keyset query in storage.
_LLM_SORTS = ("tokens", "cost")
_LLM_SORT_MAX = 50_000
_STATUSES = INSTANCE_STATUSES
_TEXT_CHARS = 200
_AGENTS_SHOWN = 500


def encode_cursor(key: Any, row_id: str) -> str:
    """A URL-safe cursor for the row ``(key, id)``."""
    return base64.urlsafe_b64encode(orjson.dumps([key, row_id])).decode().rstrip("=")


def decode_cursor(value: str, field_name: str) -> tuple[Any, str]:
    """The ``(key, id)`` of a cursor.

    Raises:
        ValueError: Not a cursor this server made (names ``field_name``).
    """
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        key, row_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError(f"{field_name}: not a valid page cursor") from None
    if not isinstance(row_id, str) or not isinstance(key, str | int | float):
        raise ValueError(f"{field_name}: not a valid page cursor")
    return key, row_id


def _time_bound(value: str, field_name: str) -> str:
    """A ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM`` bound (UTC) as a stored-time string."""
    if not value:
        return ""
    moment = parse_time(value if "T" in value else value + "T00:00:00")
    if moment is None:
        raise ValueError(f"{field_name}: expected a date like 2026-01-31 or 2026-01-31T09:30")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RunListForm:
    """The run list's query string, validated."""

    q: str = ""
    agent: str = ""
    status: str = ""
    sort: str = "started"
    order: str = "desc"
    start_from: str = ""
    start_to: str = ""
    after: str = ""
    before: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RunListForm:
        """Read the query string.

        Raises:
            ValueError: A field has a value the list cannot use (the message names it).
        """
        form = cls(
            q=params.get("q", "").strip()[:_TEXT_CHARS],
            agent=params.get("agent", "").strip(),
            status=params.get("status", ""),
            sort=params.get("sort", "started") or "started",
            order=params.get("order", "desc") or "desc",
            start_from=params.get("from", "").strip(),
            start_to=params.get("to", "").strip(),
            after=params.get("after", ""),
            before=params.get("before", ""),
        )
        if form.status and form.status not in _STATUSES:
            raise ValueError(f"status: one of {', '.join(_STATUSES)}")
        if form.sort not in SORT_LABELS:
            raise ValueError(f"sort: one of {', '.join(SORT_LABELS)}")
        if form.order not in ("asc", "desc"):
            raise ValueError("order: asc or desc")
        query = form.query()  # validates the cursors and dates
        if form.sort in RUN_SORTS:
            RunWalk.of(query)  # a cursor's key fits its sort, as storage needs it
        elif any(
            cursor is not None and (type(cursor[0]) is bool or type(cursor[0]) is str)
            for cursor in (query.after, query.before)
        ):
            raise ValueError("after/before: not a valid page cursor")
        return form

    def query(self) -> RunQuery:
        """The storage query of this form (one page)."""
        return RunQuery(
            text=self.q,
            agent_id=self.agent,
            status=self.status,
            started_from=_time_bound(self.start_from, "from"),
            started_to=_time_bound(self.start_to, "to"),
            sort=self.sort if self.sort in RUN_SORTS else "started",
            descending=self.order == "desc",
            after=decode_cursor(self.after, "after") if self.after else None,
            before=decode_cursor(self.before, "before") if self.before else None,
            limit=PAGE_SIZE,
        )

    def link(self, **changes: str) -> str:
        """The list's URL with some fields changed (a new filter or sort restarts paging)."""
        form = replace(self, **changes)
        if set(changes) - {"after", "before"}:
            form = replace(form, after=changes.get("after", ""), before=changes.get("before", ""))
        params = {
            "q": form.q,
            "agent": form.agent,
            "status": form.status,
            "sort": form.sort if form.sort != "started" else "",
            "order": form.order if form.order != "desc" else "",
            "from": form.start_from,
            "to": form.start_to,
            "after": form.after,
            "before": form.before,
        }
        query = urlencode({key: value for key, value in params.items() if value})
        return "/" + (f"?{query}" if query else "")


@dataclass
class RunList:
    """One page of the list, ready for the template."""

    total: int
    runs: list[dict[str, Any]]
    agents: dict[str, str]
    previous: str | None
    following: str | None
    first: int = 0
    live: bool = field(default=False)


def _totals(session: ReadSession, account_id: str, ids: list[str]) -> dict[str, LlmFacts]:
    totals = {run_id: LlmFacts() for run_id in ids}
    for run_id, params, result in session.llm_payloads(account_id, ids):
        totals[run_id].add(llm_facts(params, result))
    return totals


def _llm_sorted(
    session: ReadSession, account_id: str, form: RunListForm
) -> tuple[RunPage[RunRow], dict[str, LlmFacts]]:
    """A page of runs sorted by tokens or cost, with the same cursors as storage's pages."""
    query = form.query()
    every = session.list_runs(
        account_id, replace(query, after=None, before=None, limit=_LLM_SORT_MAX)
    )
    totals = _totals(session, account_id, [str(row["id"]) for row in every.rows])

    def key(row: RunRow) -> tuple[float, str]:
        facts = totals[row["id"]]
        value = facts.total_tokens if form.sort == "tokens" else round(facts.cost, 6)
        row["sort_key"] = value
        return value, str(row["id"])

    rows = sorted(every.rows, key=key, reverse=query.descending)
    start, end = 0, len(rows)
    if query.after is not None:
        after = (float(query.after[0]), query.after[1])
        start = next(
            (i for i, r in enumerate(rows) if _beyond(key(r), after, query.descending)), end
        )
        end = min(end, start + query.limit)
    elif query.before is not None:
        before = (float(query.before[0]), query.before[1])
        end = next(
            (i for i, r in enumerate(rows) if not _beyond(before, key(r), query.descending)), end
        )
        start = max(0, end - query.limit)
    else:
        end = min(end, query.limit)
    page = RunPage(every.total, rows[start:end], has_before=start > 0, has_after=end < len(rows))
    return page, totals


def _beyond(row: tuple[float, str], cursor: tuple[float, str], descending: bool) -> bool:
    """Whether ``row`` comes after ``cursor`` in the list's order."""
    return row < cursor if descending else row > cursor


def load_run_list(session: ReadSession, account_id: str, form: RunListForm) -> RunList:
    """Read one page of runs with span counts, agent names, models, tokens and cost."""
    if form.sort in _LLM_SORTS:
        page, totals = _llm_sorted(session, account_id, form)
    else:
        page = session.list_runs(account_id, form.query())
        totals = _totals(session, account_id, [str(row["id"]) for row in page.rows])
    ids = [str(row["id"]) for row in page.rows]
    counts = session.span_counts(account_id, ids)
    agents_page = session.list_agents(account_id, ListQuery(limit=_AGENTS_SHOWN))
    agents = {str(a["id"]): str(a.get("name") or a["id"]) for a in agents_page.rows}
    runs = []
    for row in page.rows:
        run = instance_resource(row, counts.get(row["id"]))
        run["agent_name"] = agents.get(run["agent_id"], run["agent_id"])
        run["duration"] = duration_seconds(run["started_at"], run["finished_at"])
        run["llm"] = totals[run["id"]].as_dict()
        run["cursor"] = encode_cursor(row["sort_key"], run["id"])
        runs.append(run)
    previous = following = None
    if runs and page.has_before:
        previous = form.link(before=runs[0]["cursor"], after="")
    if runs and page.has_after:
        following = form.link(after=runs[-1]["cursor"], before="")
    return RunList(
        total=page.total,
        runs=runs,
        agents=agents,
        previous=previous,
        following=following,
        live=any(run["status"] in OPEN_STATUSES for run in runs),
    )
