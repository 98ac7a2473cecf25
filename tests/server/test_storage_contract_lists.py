"""The storage contract, continued: every list filter and sort order of ``LISTS``, paging,
account isolation of every read, named locks, orphan adoption on every insert path and
idempotent replays, on every backend (the ``backend`` fixture: SQLite and PostgreSQL).

Expected rows are computed here in Python from the rows stored, by the rules declared in
:mod:`prefactor_server.storage.base` (``LISTS``, :func:`~prefactor_server.storage.base.sort_key`,
:func:`~prefactor_server.storage.base.is_orphan`), so a backend that filters, orders or
flags differently fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tests.server.test_storage_contract import _agent, _instance, _span

from prefactor_server.domain.accounts import create_account
from prefactor_server.storage import (
    LISTS,
    Account,
    ListQuery,
    ReadSession,
    Storage,
    WriteSession,
)
from prefactor_server.storage.base import RunQuery, sort_key

pytestmark = pytest.mark.timeout(60)


def _at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


# Rows with repeated values (ties broken by id) and NULLs in the nullable sort columns.
_AGENTS = [
    _agent(Account("", "", 0, None, "", ""), f"a{n}", name=name, status=status,
           team_id=team, owner_person_id=owner, risk_profile_id=risk,
           inserted_at=_at(ins), updated_at=_at(upd))
    for n, (name, status, team, owner, risk, ins, upd) in enumerate([
        ("delta", "active", "t1", "p1", None, 5, 9),
        ("alpha", "retired", "t2", None, "r1", 3, 9),
        ("charlie", "active", "t1", "p2", "r1", 5, 1),
        ("bravo", "active", None, "p1", "r2", 1, 4),
        ("alpha", "retired", "t2", "p2", None, 2, 2),
    ])
]  # fmt: skip
_INSTANCES = [
    _instance(Account("", "", 0, None, "", ""), f"i{n}", agent_id=agent, status=status,
              started_at=started, finished_at=finished, inserted_at=_at(ins),
              updated_at=_at(upd))
    for n, (agent, status, started, finished, ins, upd) in enumerate([
        ("a1", "complete", _at(3), _at(8), 3, 8),
        ("a2", "active", _at(1), None, 1, 4),
        ("a1", "pending", None, None, 6, 6),
        ("a1", "failed", _at(3), _at(4), 2, 4),
        ("a2", "terminated", _at(7), _at(9), 7, 9),
        ("a1", "active", _at(2), None, 2, 2),
    ])
]  # fmt: skip
_SPANS = [
    _span(Account("", "", 0, None, "", ""), f"s{n}", instance, agent_id=agent, status=status,
          schema_name=schema, started_at=started, finished_at=finished,
          inserted_at=_at(ins), updated_at=_at(upd))
    for n, (instance, agent, status, schema, started, finished, ins, upd) in enumerate([
        ("i0", "a1", "complete", "llm", _at(3), _at(5), 3, 5),
        ("i0", "a1", "active", "tool", _at(4), None, 4, 4),
        ("i1", "a2", "pending", "llm", None, None, 2, 2),
        ("i1", "a2", "failed", "retrieval", _at(1), _at(2), 1, 2),
        ("i3", "a1", "cancelled", "tool", None, _at(6), 6, 6),
        ("i0", "a1", "complete", "llm", _at(3), _at(4), 3, 7),
        ("i5", "a1", "active", "llm", _at(2), None, 2, 2),
    ])
]  # fmt: skip
_ROWS = {"agents": _AGENTS, "agent_instances": _INSTANCES, "agent_spans": _SPANS}


def _own(account: Account, rows: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    return [{**row, "account_id": account.id, **changes} for row in rows]


def _store(storage: Storage, account: Account, **changes: Any) -> None:
    def work(session: WriteSession) -> None:
        for agent in _own(account, _AGENTS, **changes.get("agents", {})):
            session.insert_agent(agent)
        for instance in _own(account, _INSTANCES, **changes.get("instances", {})):
            session.insert_instance(instance)
        for span in _own(account, _SPANS, **changes.get("spans", {})):
            session.insert_span(span)

    storage.write_sync(work)


@pytest.fixture(name="other")
def fixture_other(storage: Storage) -> Account:
    """An account (made first) storing the same ids with other values, so that a row
    leaking across accounts shows."""
    other = storage.write_sync(lambda s: create_account(s, "other"))
    changed = {"status": "cancelled", "agent_id": "a9", "inserted_at": _at(59)}
    _store(
        storage,
        other,
        agents={"status": "retired", "inserted_at": _at(59)},
        instances=changed,
        spans={**changed, "parent_span_id": "s9"},
    )
    return other


@pytest.fixture(name="account")
def fixture_account(storage: Storage, other: Account) -> Account:
    """An account holding the rows above."""
    account = storage.write_sync(lambda s: create_account(s, "acc"))
    _store(storage, account)
    return account


def _lister(table: str) -> Callable[[ReadSession, str, ListQuery], Any]:
    return {
        "agents": lambda s, a, q: s.list_agents(a, q),
        "agent_instances": lambda s, a, q: s.list_instances(a, q),
        "agent_spans": lambda s, a, q: s.list_spans(a, q),
    }[table]


def _expected(table: str, query: ListQuery) -> list[str]:
    rows = [
        row
        for row in _ROWS[table]
        if all(row[column] == value for column, value in query.filters.items())
    ]
    rows.sort(key=lambda row: (sort_key(row[query.sort_field]), row["id"]))
    if query.descending:
        rows.reverse()
    return [row["id"] for row in rows]


_SORTS = [
    (table, column, descending)
    for table, spec in LISTS.items()
    for column in spec.sortable
    for descending in (False, True)
]


@pytest.mark.parametrize(("table", "column", "descending"), _SORTS)
async def test_every_sort_order_of_every_list(
    storage: Storage, account: Account, table: str, column: str, descending: bool
) -> None:
    """Each sortable column in both directions (NULLs first ascending), ties by id."""
    query = ListQuery(sort_field=column, descending=descending, limit=100)
    page = await storage.read(lambda s: _lister(table)(s, account.id, query))
    assert [row["id"] for row in page.rows] == _expected(table, query)
    assert page.total == len(_ROWS[table])


_FILTERS = [
    (table, column, value)
    for table, spec in LISTS.items()
    for column in spec.filters
    for value in sorted({str(row[column]) for row in _ROWS[table] if row[column] is not None})
]


@pytest.mark.parametrize(("table", "column", "value"), _FILTERS)
async def test_every_filter_of_every_list(
    storage: Storage, account: Account, table: str, column: str, value: str
) -> None:
    """Each filter column with each value stored: exactly the matching rows, in order."""
    query = ListQuery(filters={column: value}, sort_field="inserted_at", descending=True)
    page = await storage.read(lambda s: _lister(table)(s, account.id, query))
    expected = _expected(table, query)
    assert expected  # the value is stored, so the filter has something to find
    assert ([row["id"] for row in page.rows], page.total) == (expected, len(expected))


async def test_filters_combine(storage: Storage, account: Account) -> None:
    """Two filters at once must both hold."""
    query = ListQuery(filters={"agent_id": "a1", "status": "active"})
    page = await storage.read(lambda s: s.list_spans(account.id, query))
    assert [row["id"] for row in page.rows] == _expected("agent_spans", query) == ["s1", "s6"]
    query = ListQuery(filters={"team_id": "t1", "owner_person_id": "p2"})
    agents = await storage.read(lambda s: s.list_agents(account.id, query))
    assert [row["id"] for row in agents.rows] == ["a2"]


@pytest.mark.parametrize("table", list(LISTS))
async def test_pages_cover_the_list_once(storage: Storage, account: Account, table: str) -> None:
    """Pages of two, by a sort with ties and NULLs, add up to the whole list; past the end
    a page is empty and still counts every row."""
    column = LISTS[table].sortable[-2]
    full = _expected(table, ListQuery(sort_field=column, descending=True))
    seen: list[str] = []
    for offset in range(0, len(full) + 2, 2):
        query = ListQuery(sort_field=column, descending=True, offset=offset, limit=2)
        page = await storage.read(lambda s, q=query: _lister(table)(s, account.id, q))
        assert page.total == len(full)
        seen.extend(row["id"] for row in page.rows)
    assert seen == full


async def test_deleted_agents_are_not_listed(storage: Storage, account: Account) -> None:
    """A deleted agent leaves the list and its total."""
    await storage.write(lambda s: s.update_agent(account.id, "a0", {"deleted_at": _at(30)}))
    page = await storage.read(lambda s: s.list_agents(account.id, ListQuery()))
    assert ([row["id"] for row in page.rows], page.total) == (["a1", "a2", "a3", "a4"], 4)


# -- account isolation ----------------------------------------------------------------


async def test_every_read_sees_only_its_account(
    storage: Storage, account: Account, other: Account
) -> None:
    """The other account stores the same ids: no read of this account returns its rows."""

    def reads(s: ReadSession) -> dict[str, Any]:
        agent = s.get_agent(account.id, "a0")
        instance = s.get_instance(account.id, "i0")
        span = s.get_span(account.id, "s0")
        return {
            "agent": agent and agent["status"],
            "instance": instance and (instance["status"], instance["agent_id"]),
            "span": span and (span["status"], span["agent_id"], span["orphaned"]),
            "counts": s.instance_counts(account.id, "a1", None)["active"],
            "span_counts": s.span_counts(account.id, ["i0"])["i0"]["complete"],
            "runs": s.list_runs(account.id, RunQuery(limit=100)).total,
            "run_spans": [r["id"] for r in s.run_span_rows(account.id, "i0", after_id=None,
                                                           limit=10)],
            "search": s.search_run_spans(account.id, "i0", "cancelled", 10),
        }  # fmt: skip

    assert await storage.read(reads) == {
        "agent": "active",
        "instance": ("complete", "a1"),
        "span": ("complete", "a1", False),
        "counts": 1,
        "span_counts": 2,
        "runs": len(_INSTANCES),
        "run_spans": ["s0", "s1", "s5"],
        "search": [],
    }
    counts = await storage.read(lambda s: s.instance_counts(other.id, "a9", None))
    assert counts["cancelled"] == len(_INSTANCES)


async def test_lookups_by_identifier_see_only_their_account(
    storage: Storage, account: Account, other: Account
) -> None:
    """Both accounts store the same identifiers under other ids and values: each find and
    get returns its own account's row, or None where only the other has one."""

    def store(session: WriteSession, owner: Account, tag: str) -> None:
        now = _at(1)
        base = {"account_id": owner.id, "inserted_at": now}
        session.insert_environment({**base, "id": "env", "name": f"env-{tag}"})
        session.insert_agent(
            {**_AGENTS[0], **base, "id": f"ag-{tag}", "name": tag, "external_identifier": "ext"}
        )
        session.insert_agent_version(
            {
                **base,
                "id": f"v-{tag}",
                "agent_id": "a0",
                "external_identifier": "1.0",
                "name": tag,
                "description": None,
                "runtime_environment": None,
            }
        )
        session.insert_schema_version(
            {
                **base,
                "id": f"sv-{tag}",
                "agent_id": "a0",
                "external_identifier": "s1",
                "body": {"tag": tag},
            }
        )
        session.insert_deployment(
            {
                **base,
                "id": f"d-{tag}",
                "agent_id": "a0",
                "environment_id": "env",
                "current_version_id": None,
            }
        )
        session.insert_span(_span(owner, f"only-{tag}", "i0", payload={"model": tag}))

    def lookups(session: WriteSession, owner: Account) -> dict[str, Any]:
        env = session.get_environment(owner.id, "env")
        agent = session.find_agent(owner.id, "ext")
        version = session.find_agent_version(owner.id, "a0", "1.0")
        schema = session.find_schema_version(owner.id, "a0", "s1")
        by_id = session.get_schema_version(owner.id, "sv-mine")
        deployment = session.find_deployment(owner.id, "a0", "env")
        return {
            "env": env and env["name"],
            "agent": agent and agent["id"],
            "version": version and version["id"],
            "schema": schema and schema["body"],
            "schema_by_id": by_id and by_id["id"],
            "deployment": deployment and deployment["id"],
            "span": session.span_instance_id(owner.id, "only-theirs"),
            "llm": [p for _, p, _ in session.llm_payloads(owner.id, ["i0"])],
        }

    await storage.write(lambda s: store(s, other, "theirs"))
    await storage.write(lambda s: store(s, account, "mine"))
    assert await storage.write(lambda s: lookups(s, account)) == {
        "env": "env-mine",
        "agent": "ag-mine",
        "version": "v-mine",
        "schema": {"tag": "mine"},
        "schema_by_id": "sv-mine",
        "deployment": "d-mine",
        "span": None,
        "llm": [{"model": "mine"}],
    }
    theirs = await storage.write(lambda s: lookups(s, other))
    assert (theirs["env"], theirs["schema_by_id"], theirs["span"]) == ("env-theirs", None, "i0")


# -- named locks ----------------------------------------------------------------------


async def test_lock_serialises_read_modify_write(storage: Storage, account: Account) -> None:
    """Writes holding the same named lock run one after the other: no increment is lost."""

    def bump(session: WriteSession) -> None:
        session.lock(f"{account.id}:counter")
        page = session.list_spans(account.id, ListQuery(filters={"agent_instance_id": "i5"}))
        count = int(page.rows[0]["summary"] or "0")
        session.update_span(account.id, "s6", {"summary": str(count + 1)})

    await asyncio.gather(*(storage.write(bump) for _ in range(6)))
    span = await storage.read(lambda s: s.get_span(account.id, "s6"))
    assert span is not None
    assert span["summary"] == "6"


# -- orphans ----------------------------------------------------------------------------


def _orphans(storage: Storage, account: Account, ids: list[str]) -> dict[str, Any]:
    """Each span's orphaned flag as get_span and list_spans report it (they must agree)."""

    def read(s: ReadSession) -> dict[str, Any]:
        single = {}
        for span_id in ids:
            span = s.get_span(account.id, span_id)
            single[span_id] = None if span is None else span["orphaned"]
        listed = {row["id"]: row["orphaned"] for row in s.list_spans(account.id, ListQuery(
            limit=100)).rows if row["id"] in ids}  # fmt: skip
        assert listed == {k: v for k, v in single.items() if v is not None}
        return single

    return storage.read_sync(read)


@pytest.mark.parametrize("bulk", [False, True], ids=["insert_span", "insert_spans"])
async def test_orphan_rule(storage: Storage, bulk: bool) -> None:
    """Orphaned: the parent id names no span of the same account and instance. A parent
    stored later (by either insert path) adopts its own instance's children only."""
    account = storage.write_sync(lambda s: create_account(s, "one"))
    other = storage.write_sync(lambda s: create_account(s, "two"))

    def insert(session: WriteSession, owner: Account, spans: list[dict[str, Any]]) -> None:
        if bulk:
            session.insert_spans(owner.id, spans)
        else:
            for span in spans:
                session.insert_span(span)

    def first(session: WriteSession) -> None:
        insert(session, other, [_span(other, "p")])  # same id, another account
        insert(session, account, [_span(account, "q", "i2")])  # same id, another instance
        insert(
            session,
            account,
            [
                _span(account, "c1", "i1", parent="p"),
                _span(account, "c2", "i1", parent="q"),
                _span(account, "c3", "i2", parent="p"),
                # Parent stored just before. (insert_span stores the flag its caller
                # looked up; insert_spans decides it itself.)
                _span(account, "c4", "i1", parent="c1", orphaned=False),
            ],
        )

    await storage.write(first)
    names = ["c1", "c2", "c3", "c4"]
    assert _orphans(storage, account, names) == {"c1": True, "c2": True, "c3": True, "c4": False}
    await storage.write(lambda s: insert(s, account, [_span(account, "p", "i1")]))
    assert _orphans(storage, account, names) == {"c1": False, "c2": True, "c3": True, "c4": False}


async def test_orphans_adopted_across_insert_paths(storage: Storage, account: Account) -> None:
    """A child stored one way is adopted by a parent stored the other way, in the same
    transaction or a later one."""

    def same_transaction(session: WriteSession) -> None:
        session.insert_spans(account.id, [_span(account, "k1", "i7", parent="m1")])
        session.insert_span(_span(account, "m1", "i7"))
        session.insert_span(_span(account, "k2", "i7", parent="m2"))
        session.insert_spans(account.id, [_span(account, "m2", "i7")])

    await storage.write(same_transaction)
    await storage.write(lambda s: s.insert_span(_span(account, "k3", "i7", parent="m3")))
    assert _orphans(storage, account, ["k1", "k2", "k3"]) == {
        "k1": False,
        "k2": False,
        "k3": True,
    }
    await storage.write(lambda s: s.insert_spans(account.id, [_span(account, "m3", "i7")]))
    assert _orphans(storage, account, ["k3"]) == {"k3": False}


async def test_get_span_in_a_write_sees_spans_of_the_same_write(
    storage: Storage, account: Account
) -> None:
    """A span inserted in a write is read back (whole, decoded) later in that write."""

    def work(session: WriteSession) -> tuple[Any, Any, str | None]:
        session.insert_span(
            _span(account, "new", "i0", parent="s0", orphaned=False, payload={"x": [1]})
        )
        span = session.get_span(account.id, "new")
        page = session.list_spans(account.id, ListQuery(filters={"agent_instance_id": "i0"}))
        return (
            span and (span["payload"], span["orphaned"]),
            [row["id"] for row in page.rows],
            session.span_instance_id(account.id, "new"),
        )

    assert await storage.write(work) == (
        ({"x": [1]}, False),
        ["new", "s0", "s1", "s5"],
        "i0",
    )


# -- idempotent replays -----------------------------------------------------------------


async def test_insert_spans_replayed_stores_nothing_twice(
    storage: Storage, account: Account
) -> None:
    """The same export sent twice: the second stores nothing and changes nothing; a
    repeated id inside one call counts once (the first)."""
    batch = [
        _span(account, "x1", "i8", summary="first"),
        _span(account, "x2", "i8", parent="x1"),
        _span(account, "x1", "i8", summary="repeat"),
    ]
    assert await storage.write(lambda s: s.insert_spans(account.id, batch)) == 2
    changed = [{**span, "summary": "changed"} for span in batch]
    assert await storage.write(lambda s: s.insert_spans(account.id, changed)) == 0
    page = await storage.read(
        lambda s: s.list_spans(account.id, ListQuery(filters={"agent_instance_id": "i8"}))
    )
    assert [(row["id"], row["summary"], row["orphaned"]) for row in page.rows] == [
        ("x1", "first", False),
        ("x2", None, False),
    ]


async def test_agent_version_fields_round_trip(storage: Storage, account: Account) -> None:
    """An agent version reads back with its JSON field decoded (or None when absent)."""

    def work(session: WriteSession) -> tuple[Any, Any]:
        for version_id, runtime in (("v1", {"python": "3.12", "n": [1]}), ("v2", None)):
            session.insert_agent_version(
                {
                    "account_id": account.id,
                    "id": version_id,
                    "agent_id": "a0",
                    "external_identifier": version_id,
                    "name": None,
                    "description": None,
                    "runtime_environment": runtime,
                    "inserted_at": _at(1),
                }
            )
        one = session.find_agent_version(account.id, "a0", "v1")
        two = session.find_agent_version(account.id, "a0", "v2")
        return one and one["runtime_environment"], two and two["runtime_environment"]

    assert await storage.write(work) == ({"python": "3.12", "n": [1]}, None)


async def test_spans_inserted_one_by_one_adopt_with_orphans_left_over(
    storage: Storage, account: Account
) -> None:
    """An account keeps orphans whose parents never come; single-span inserts (buffered
    until the write ends on SQLite) still adopt exactly their own children, whether the
    account has more orphans than the write has spans or fewer."""

    def orphans(session: WriteSession) -> None:
        session.insert_spans(
            account.id,
            [
                _span(account, "o1", "i9", parent="x1"),
                _span(account, "o2", "i9", parent="x2"),
                _span(account, "o3", "i9", parent="never"),
            ],
        )

    await storage.write(orphans)
    # One span against three orphans.
    await storage.write(lambda s: s.insert_span(_span(account, "x1", "i9")))
    names = ["o1", "o2", "o3"]
    assert _orphans(storage, account, names) == {"o1": False, "o2": True, "o3": True}

    def two(session: WriteSession) -> None:  # three spans against two orphans
        session.insert_span(_span(account, "y1", "i9"))
        session.insert_span(_span(account, "x2", "i9"))
        session.insert_span(_span(account, "y2", "i9", parent="y1", orphaned=False))

    await storage.write(two)
    assert _orphans(storage, account, names) == {"o1": False, "o2": False, "o3": True}
