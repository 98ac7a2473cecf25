"""The lists: what each list endpoint may filter and sort by, and the rules of its order.

Declared once here and used by the API's query parsing (``api/_common.list_query``), by
every backend's list queries and by the storage contract suite, so a column added to a
list is filterable, sortable and tested everywhere at once.

Order rules, the same on every backend:

* ties are broken by the k-sortable id in the same direction, so pages are stable;
* a NULL sorts after every value (ascending; first descending): PostgreSQL's default,
  which its ``(account_id, column, id)`` indexes serve; SQLite is told so explicitly;
* text matching of the viewer is a case-insensitive substring (:func:`like_pattern`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = [
    "LISTS",
    "RUN_SORTS",
    "ListQuery",
    "ListSpec",
    "Page",
    "RunPage",
    "RunQuery",
    "RunWalk",
    "like_pattern",
    "sort_key",
]

R = TypeVar("R")


@dataclass(frozen=True)
class ListQuery:
    """A validated list request.

    Attributes:
        filters: Column → exact value; only the columns a list endpoint allows.
        sort_field: A column the endpoint allows sorting by.
        descending: Sort direction.
        offset: Zero-based offset of the first row.
        limit: Page size.
    """

    filters: dict[str, str] = field(default_factory=dict)
    sort_field: str = "id"
    descending: bool = False
    offset: int = 0
    limit: int = 25


@dataclass(frozen=True)
class ListSpec:
    """What one list endpoint may filter and sort by: declared once, for API and storage.

    Attributes:
        table: The stored resource.
        filters: Columns a query parameter may filter on (exact match).
        sortable: Columns the list may be sorted by (ties broken by id).
        nullable: The sortable columns that may hold NULL (sorted after every value).
        extra_where: A condition every listed row meets (SQL on the table's columns).
    """

    table: str
    filters: tuple[str, ...]
    sortable: tuple[str, ...]
    nullable: tuple[str, ...] = ()
    extra_where: str = ""

    @property
    def columns(self) -> frozenset[str]:
        """Every column a :class:`ListQuery` of this list may name."""
        return frozenset((*self.filters, *self.sortable))

    def check(self, query: ListQuery) -> None:
        """Refuse a query naming a column this list does not allow (the API checks first;
        this guards the SQL the backends build from column names).

        Raises:
            ValueError: An unknown filter or sort column.
        """
        for column in query.filters:
            if column not in self.filters:
                raise ValueError(f"cannot filter {self.table} by {column}")
        if query.sort_field not in self.sortable:
            raise ValueError(f"cannot sort {self.table} by {query.sort_field}")

    def where(self, account_id: str, query: ListQuery, prefix: str = "") -> tuple[str, list[Any]]:
        """The ``WHERE`` condition (``?`` marks) and its parameters: the account, each
        filter, and :attr:`extra_where`; ``prefix`` qualifies the columns.

        Raises:
            ValueError: An unknown filter or sort column (see :meth:`check`).
        """
        self.check(query)  # the columns named below are this spec's, never a client's text
        where = [f"{prefix}account_id = ?"]
        params: list[Any] = [account_id]
        for column, value in query.filters.items():
            where.append(f"{prefix}{column} = ?")
            params.append(value)
        if self.extra_where:
            where.append(f"{prefix}{self.extra_where}")
        return " AND ".join(where), params

    def order_by(self, query: ListQuery, prefix: str = "") -> str:
        """The ``ORDER BY`` terms of ``query`` (SQL both backends accept), e.g.
        ``t.started_at DESC NULLS FIRST, t.id DESC``; ``prefix`` qualifies the columns."""
        direction = "DESC" if query.descending else "ASC"
        terms = [f"{prefix}{query.sort_field} {direction}"]
        if query.sort_field in self.nullable:
            terms[0] += " NULLS FIRST" if query.descending else " NULLS LAST"
        if query.sort_field != "id":
            terms.append(f"{prefix}id {direction}")
        return ", ".join(terms)


LISTS: dict[str, ListSpec] = {
    spec.table: spec
    for spec in (
        ListSpec(
            "agents",
            ("team_id", "owner_person_id", "risk_profile_id"),
            ("id", "name", "status", "inserted_at", "updated_at"),
            extra_where="deleted_at IS NULL",
        ),
        ListSpec(
            "agent_instances",
            ("agent_id", "status"),
            ("id", "inserted_at", "updated_at", "started_at", "finished_at", "status"),
            ("started_at", "finished_at"),
        ),
        ListSpec(
            "agent_spans",
            ("agent_instance_id", "agent_id", "status", "schema_name"),
            (
                "id", "inserted_at", "updated_at", "started_at", "finished_at", "status",
                "schema_name",
            ),
            ("started_at", "finished_at"),
        ),
    )
}  # fmt: skip
"""The list endpoints by table. PostgreSQL indexes every (account, filter, sort) pair; SQLite
indexes spans by instance only (its other filters walk the account by id, migration 0005)."""


def sort_key(value: Any) -> tuple[bool, Any]:
    """A list column's value as it orders (ascending): NULL after every value."""
    return (value is None, "" if value is None else value)


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a list: the total across all pages and the rows of this page."""

    total: int
    rows: list[R]


@dataclass(frozen=True)
class RunQuery:
    """A run-list request of the viewer (keyset pagination, stable under inserts).

    Attributes:
        text: Matches the run id, external identifier, agent id or name, and span text
            (type, summary, params, result); case-insensitive substring.
        agent_id: Only this agent's runs.
        status: Only runs with this status.
        started_from: Only runs started (or, never started, inserted) at or after this
            ISO timestamp.
        started_to: ... and before this one.
        sort: ``started``, ``duration``, ``spans`` or ``errors``.
        descending: Sort direction (ties broken by id in the same direction).
        after: The ``(sort key, id)`` of the last row of the previous page, to go forward.
        before: The ``(sort key, id)`` of the first row of the next page, to go back.
        limit: Page size.
    """

    text: str = ""
    agent_id: str = ""
    status: str = ""
    started_from: str = ""
    started_to: str = ""
    sort: str = "started"
    descending: bool = True
    after: tuple[Any, str] | None = None
    before: tuple[Any, str] | None = None
    limit: int = 50


@dataclass(frozen=True)
class RunPage(Generic[R]):
    """One page of runs: instance rows, each with ``sort_key``; whether more lie either way.

    Attributes:
        total: How many runs match the filters (all pages).
        rows: The instance rows of this page, each with an extra ``sort_key``.
        has_before: A page exists before this one.
        has_after: A page exists after this one.
    """

    total: int
    rows: list[R]
    has_before: bool
    has_after: bool


RUN_SORTS = ("started", "duration", "spans", "errors")
"""The sort keys :meth:`ReadSession.list_runs` accepts."""


def _cursor_key(sort: str, key: Any) -> Any:
    """A cursor's sort key in the sort's type: text for ``started``, a number else."""
    if sort == "started":
        if isinstance(key, str):
            return key
    elif isinstance(key, int | float) and not isinstance(key, bool):
        return float(key) if sort == "duration" else int(key)
    raise ValueError("after/before: not a valid page cursor")


@dataclass(frozen=True)
class RunWalk:
    """How one page of the run list walks its ``(sort key, id)`` keyset, on every backend.

    Going back (``before``) walks the other way and flips the page afterwards.

    Attributes:
        backwards: The page is read from ``before`` towards the start.
        descending: The direction the rows are read in.
        cursor: The validated ``(sort key, id)`` to continue from, or None.
    """

    backwards: bool
    descending: bool
    cursor: tuple[Any, str] | None

    @classmethod
    def of(cls, query: RunQuery) -> RunWalk:
        """The walk of ``query``.

        Raises:
            ValueError: An unknown sort, or a cursor whose key does not fit the sort (a
                cursor made for another sort, or forged).
        """
        if query.sort not in RUN_SORTS:
            raise ValueError(f"sort: one of {', '.join(RUN_SORTS)}")
        backwards = query.before is not None and query.after is None
        cursor = query.before if backwards else query.after
        if cursor is not None:
            cursor = (_cursor_key(query.sort, cursor[0]), cursor[1])
        return cls(backwards, query.descending != backwards, cursor)

    @property
    def op(self) -> str:
        """The comparison that keeps rows beyond the cursor."""
        return "<" if self.descending else ">"

    @property
    def direction(self) -> str:
        """``ASC`` or ``DESC``."""
        return "DESC" if self.descending else "ASC"

    def page(self, total: int, rows: list[R], limit: int) -> RunPage[R]:
        """The page of ``rows`` (read with ``LIMIT limit + 1``, to know if more follow)."""
        more = len(rows) > limit
        shown = rows[:limit]
        if self.backwards:
            shown.reverse()
            return RunPage(total, shown, has_before=more, has_after=True)
        return RunPage(total, shown, has_before=self.cursor is not None, has_after=more)


def like_pattern(text: str) -> str:
    """A LIKE/ILIKE pattern matching ``text`` anywhere: ``%``, ``_`` and ``\\`` escaped
    with ``\\`` (SQLite needs ``ESCAPE '\\'``; it is PostgreSQL's default)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
