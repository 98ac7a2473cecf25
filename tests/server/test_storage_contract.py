"""The storage contract: every method of the storage protocols, run against every backend.

Each test runs on SQLite and on PostgreSQL (the ``backend`` fixture of
``tests/conftest.py``; ``storage`` and ``account`` come from ``tests/server/conftest.py``).
A new backend joins by adding a parameter there and passing this file and its
continuations: ``test_storage_contract_lists.py`` (every list filter and sort, paging,
account isolation, locks, orphans, replays) and ``test_storage_contract_viewer_auth.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from prefactor_server.domain.accounts import create_account, create_token, hash_token
from prefactor_server.settings import Settings
from prefactor_server.storage import (
    Account,
    IdTaken,
    ListQuery,
    ReadSession,
    Storage,
    StorageClosedError,
    WriteSession,
    open_storage,
)

pytestmark = pytest.mark.timeout(60)


def _span(
    account: Account,
    span_id: str,
    instance_id: str = "i1",
    parent: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "id": span_id,
        "agent_instance_id": instance_id,
        "agent_id": "a1",
        "parent_span_id": parent,
        "orphaned": parent is not None,
        "schema_name": "s",
        "schema_title": "s",
        "status": "active",
        "payload": {"k": [1, 2]},
        "result_payload": None,
        "summary": None,
        "started_at": None,
        "finished_at": None,
        "inserted_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
        **fields,
    }


def _agent(account: Account, agent_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "id": agent_id,
        "name": agent_id,
        "description": None,
        "external_identifier": None,
        "owner_person_id": None,
        "risk_profile_id": None,
        "team_id": None,
        "status": "active",
        "deleted_at": None,
        "inserted_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
        **fields,
    }


def _instance(account: Account, instance_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": account.id,
        "id": instance_id,
        "agent_id": "a1",
        "agent_version_id": "v1",
        "environment_id": account.default_environment_id,
        "agent_deployment_id": "d1",
        "schema_version_id": "sv1",
        "status": "pending",
        "purpose": "live",
        "external_identifier": None,
        "termination_reason": None,
        "quality_payloads": {},
        "quality_summaries": {},
        "started_at": None,
        "finished_at": None,
        "inserted_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
        **fields,
    }


# -- transactions ---------------------------------------------------------------------


async def test_write_failure_rolls_back(storage: Storage, account: Account) -> None:
    """A write that raises leaves nothing behind."""

    def fail(session: WriteSession) -> None:
        session.insert_span(_span(account, "x"))
        session.put_idempotent(account.id, "a/x", "key-1", 201, b"{}")
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await storage.write(fail)
    assert await storage.read(lambda s: s.get_span(account.id, "x")) is None
    assert await storage.write(lambda s: s.get_idempotent(account.id, "a/x", "key-1")) is None


async def test_savepoint_keeps_earlier_work(storage: Storage, account: Account) -> None:
    """A failing savepoint rolls back only itself; the transaction commits the rest."""

    def work(session: WriteSession) -> None:
        with session.savepoint():
            session.insert_span(_span(account, "kept"))
        try:
            with session.savepoint():
                session.insert_span(_span(account, "dropped"))
                session.insert_span(_span(account, "kept"))
        except IdTaken:
            pass
        else:  # pragma: no cover - the duplicate id must raise
            raise AssertionError("duplicate id was accepted")
        session.insert_span(_span(account, "after"))

    await storage.write(work)
    assert await storage.read(lambda s: s.get_span(account.id, "kept")) is not None
    assert await storage.read(lambda s: s.get_span(account.id, "dropped")) is None
    assert await storage.read(lambda s: s.get_span(account.id, "after")) is not None


async def test_duplicate_span_outside_savepoint_raises_at_its_insert(
    storage: Storage, account: Account
) -> None:
    """Bulk ingestion inserts spans outside savepoints; a reused id still raises IdTaken
    at the insert that reuses it, and what came before it is kept."""
    await storage.write(lambda s: s.insert_span(_span(account, "old")))
    seen: list[str] = []

    def work(session: WriteSession) -> None:
        for span_id in ("new-1", "new-2", "old", "never"):
            try:
                session.insert_span(_span(account, span_id))
            except IdTaken:
                seen.append(span_id)
                return

    await storage.write(work)
    assert seen == ["old"]
    page = await storage.read(lambda s: s.list_spans(account.id, ListQuery()))
    assert sorted(row["id"] for row in page.rows) == ["new-1", "new-2", "old"]


async def test_closed_storage_refuses_work(storage: Storage) -> None:
    """After close, reads and writes raise StorageClosedError; close is idempotent."""
    storage.close()
    storage.close()
    with pytest.raises(StorageClosedError):
        await storage.read(lambda s: s.first_account())
    with pytest.raises(StorageClosedError):
        await storage.write(lambda s: s.first_account())


# -- accounts and tokens --------------------------------------------------------------


async def test_accounts_and_tokens(storage: Storage, account: Account) -> None:
    """Accounts by id and age; tokens by hash until revoked, listed without the hash."""
    second = storage.write_sync(lambda s: create_account(s, "second"))
    assert storage.read_sync(lambda s: s.get_account(account.id)) == account
    assert storage.read_sync(lambda s: s.get_account("missing")) is None
    assert storage.read_sync(lambda s: s.first_account()) == account
    record, plain = storage.write_sync(lambda s: create_token(s, second, "ci"))
    assert storage.read_sync(lambda s: s.account_for_token(hash_token(plain))) == second
    tokens = storage.read_sync(lambda s: s.list_tokens())
    assert [(row["id"], row["name"], row["revoked_at"]) for row in tokens] == [
        (record["id"], "ci", None)
    ]
    assert "token_hash" not in tokens[0]
    assert storage.write_sync(lambda s: s.revoke_token(record["id"], "2026-01-02T00:00:00Z"))
    assert not storage.write_sync(lambda s: s.revoke_token(record["id"], "2026-01-03T00:00:00Z"))
    assert storage.read_sync(lambda s: s.account_for_token(hash_token(plain))) is None
    storage.write_sync(lambda s: s.set_default_agent(second.id, "agent-x"))
    changed = storage.read_sync(lambda s: s.get_account(second.id))
    assert changed is not None
    assert changed.default_agent_id == "agent-x"


# -- agents, environments, versions, deployments --------------------------------------


async def test_agents(storage: Storage, account: Account) -> None:
    """Agents by id and external identifier; deleted ones are gone; ids are unique."""

    def work(session: WriteSession) -> None:
        session.insert_agent(_agent(account, "a1", external_identifier="ext-1", team_id="t1"))
        session.insert_agent(_agent(account, "a2", name="b-agent"))
        session.insert_agent(_agent(account, "gone", deleted_at="2026-01-01T00:00:00Z"))
        session.update_agent(account.id, "a2", {"description": "second", "status": "retired"})

    await storage.write(work)
    with pytest.raises(IdTaken):
        await storage.write(lambda s: s.insert_agent(_agent(account, "a1")))
    agent = await storage.read(lambda s: s.find_agent(account.id, "ext-1"))
    assert agent is not None
    assert agent["id"] == "a1"
    second = await storage.read(lambda s: s.get_agent(account.id, "a2"))
    assert second is not None
    assert (second["description"], second["status"]) == (
        "second",
        "retired",
    )
    assert await storage.read(lambda s: s.get_agent(account.id, "gone")) is None
    page = await storage.read(
        lambda s: s.list_agents(account.id, ListQuery(sort_field="name", descending=True))
    )
    assert (page.total, [row["id"] for row in page.rows]) == (2, ["a2", "a1"])
    filtered = await storage.read(
        lambda s: s.list_agents(account.id, ListQuery(filters={"team_id": "t1"}))
    )
    assert [row["id"] for row in filtered.rows] == ["a1"]


async def test_environments_versions_deployments(storage: Storage, account: Account) -> None:
    """Find-or-create lookups return what was stored, JSON fields decoded."""
    now = "2026-01-01T00:00:00.000000Z"

    def work(session: WriteSession) -> None:
        session.insert_environment(
            {"account_id": account.id, "id": "staging", "name": "staging", "inserted_at": now}
        )
        session.insert_agent_version(
            {
                "account_id": account.id,
                "id": "v1",
                "agent_id": "a1",
                "external_identifier": "1.0",
                "name": "one",
                "description": None,
                "runtime_environment": {"python": "3.12"},
                "inserted_at": now,
            }
        )
        session.insert_schema_version(
            {
                "account_id": account.id,
                "id": "sv1",
                "agent_id": "a1",
                "external_identifier": "schema-1",
                "body": {"span_types": {"x": {"title": "X"}}},
                "inserted_at": now,
            }
        )
        session.insert_deployment(
            {
                "account_id": account.id,
                "id": "d1",
                "agent_id": "a1",
                "environment_id": "staging",
                "current_version_id": "v0",
                "inserted_at": now,
            }
        )
        session.set_deployment_version(account.id, "d1", "v1")

    await storage.write(work)
    environment = await storage.read(lambda s: s.get_environment(account.id, "staging"))
    assert environment is not None
    assert environment["name"] == "staging"
    default = await storage.read(
        lambda s: s.get_environment(account.id, account.default_environment_id)
    )
    assert default is not None
    assert default["name"] == "local"
    version = await storage.write(lambda s: s.find_agent_version(account.id, "a1", "1.0"))
    assert version is not None
    assert version["id"] == "v1"
    assert await storage.write(lambda s: s.find_agent_version(account.id, "a2", "1.0")) is None
    schema = await storage.write(lambda s: s.find_schema_version(account.id, "a1", "schema-1"))
    assert schema is not None
    assert schema["body"] == {"span_types": {"x": {"title": "X"}}}
    by_id = await storage.read(lambda s: s.get_schema_version(account.id, "sv1"))
    assert by_id is not None
    assert by_id["body"] == schema["body"]
    deployment = await storage.write(lambda s: s.find_deployment(account.id, "a1", "staging"))
    assert deployment is not None
    assert deployment["current_version_id"] == "v1"
    assert await storage.write(lambda s: s.find_deployment(account.id, "a1", "prod")) is None


# -- instances ------------------------------------------------------------------------


async def test_instances(storage: Storage, account: Account) -> None:
    """Instances: insert (ids unique), update with JSON fields, counts, lists."""

    def work(session: WriteSession) -> None:
        session.insert_instance(_instance(account, "i1"))
        session.insert_instance(_instance(account, "i2", agent_id="a2"))
        session.insert_instance(_instance(account, "i3", status="active"))
        session.update_instance(
            account.id,
            "i1",
            {"status": "complete", "quality_payloads": {"q": {"score": 1}}},
        )

    await storage.write(work)
    with pytest.raises(IdTaken):
        await storage.write(lambda s: s.insert_instance(_instance(account, "i1")))
    record = await storage.read(lambda s: s.get_instance(account.id, "i1"))
    assert record is not None
    assert (record["status"], record["quality_payloads"], record["quality_summaries"]) == (
        "complete",
        {"q": {"score": 1}},
        {},
    )
    assert await storage.read(lambda s: s.get_instance(account.id, "nope")) is None
    counts = await storage.read(lambda s: s.instance_counts(account.id, "a1", None))
    assert (counts["complete"], counts["active"], counts["pending"], counts["terminated"]) == (
        1,
        1,
        0,
        0,
    )
    elsewhere = await storage.read(lambda s: s.instance_counts(account.id, "a1", "other-env"))
    assert sum(elsewhere.values()) == 0
    page = await storage.read(
        lambda s: s.list_instances(
            account.id, ListQuery(filters={"agent_id": "a1"}, descending=True, limit=1)
        )
    )
    assert (page.total, [row["id"] for row in page.rows]) == (2, ["i3"])
    second = await storage.read(
        lambda s: s.list_instances(
            account.id, ListQuery(filters={"agent_id": "a1"}, descending=True, offset=1)
        )
    )
    assert [row["id"] for row in second.rows] == ["i1"]
    by_status = await storage.read(
        lambda s: s.list_instances(account.id, ListQuery(sort_field="status"))
    )
    assert [row["id"] for row in by_status.rows] == ["i3", "i1", "i2"]


async def test_get_instances_reads_the_stored_ones_among_many_ids(storage: Storage) -> None:
    """One call reads what ``get_instance`` reads for each stored id of the account, across
    the statement's padded sizes and chunks; missing ids, repeated ids and another
    account's instances are left out."""
    first = storage.write_sync(lambda s: create_account(s, "one"))
    second = storage.write_sync(lambda s: create_account(s, "two"))
    stored = [f"i{n:03}" for n in range(40)]

    def work(session: WriteSession) -> None:
        for n, instance_id in enumerate(stored):
            session.insert_instance(_instance(first, instance_id, quality_payloads={"q": {"n": n}}))
        session.insert_instance(_instance(second, "theirs"))

    await storage.write(work)
    expected = {
        instance_id: await storage.read(lambda s, i=instance_id: s.get_instance(first.id, i))
        for instance_id in stored
    }
    assert expected["i007"] is not None
    assert expected["i007"]["quality_payloads"] == {"q": {"n": 7}}
    missing = [f"missing-{n}" for n in range(560)]
    for ids, found in (
        ([], {}),
        (["i005"], ["i005"]),
        (["i005", "nope", "i005", "theirs"], ["i005"]),
        (stored[:9], stored[:9]),  # past the smallest padded size
        ([*stored, "theirs", "nope"], stored),
        ([*missing, stored[3], *stored[30:]], [stored[3], *stored[30:]]),  # a second chunk
    ):
        got = storage.write_sync(lambda s, ids=ids: s.get_instances(first.id, ids))
        assert got == {instance_id: expected[instance_id] for instance_id in found}
    theirs = storage.write_sync(lambda s: s.get_instances(second.id, ["theirs", "i001"]))
    assert list(theirs) == ["theirs"]


# -- spans ----------------------------------------------------------------------------


async def test_spans_read_write(storage: Storage, account: Account) -> None:
    """Spans: insert, instance of a span, update (JSON decoded), counts, filtered lists."""

    def work(session: WriteSession) -> None:
        session.insert_span(_span(account, "s1"))
        session.insert_span(_span(account, "s2", status="complete", schema_name="llm"))
        session.insert_span(_span(account, "s3", instance_id="i2"))
        assert session.span_instance_id(account.id, "s3") == "i2"
        session.update_span(
            account.id, "s1", {"status": "failed", "result_payload": {"error": "boom"}}
        )

    await storage.write(work)
    assert await storage.write(lambda s: s.span_instance_id(account.id, "s1")) == "i1"
    assert await storage.write(lambda s: s.span_instance_id(account.id, "zz")) is None
    span = await storage.read(lambda s: s.get_span(account.id, "s1"))
    assert span is not None
    assert (span["status"], span["result_payload"], span["payload"], span["orphaned"]) == (
        "failed",
        {"error": "boom"},
        {"k": [1, 2]},
        False,
    )
    counts = await storage.read(lambda s: s.span_counts(account.id, ["i1", "i2", "i9"]))
    assert counts["i1"] == {"pending": 0, "active": 0, "complete": 1, "failed": 1, "cancelled": 0}
    assert counts["i2"]["active"] == 1
    assert sum(counts["i9"].values()) == 0
    assert await storage.read(lambda s: s.span_counts(account.id, [])) == {}
    for filters, expected in (
        ({"agent_instance_id": "i1"}, ["s1", "s2"]),
        ({"status": "complete"}, ["s2"]),
        ({"schema_name": "llm"}, ["s2"]),
        ({"agent_id": "a1", "agent_instance_id": "i2"}, ["s3"]),
    ):
        page = await storage.read(
            lambda s, f=filters: s.list_spans(account.id, ListQuery(filters=f))
        )
        assert [row["id"] for row in page.rows] == expected, filters
    by_status = await storage.read(
        lambda s: s.list_spans(account.id, ListQuery(sort_field="status", descending=True))
    )
    assert [row["id"] for row in by_status.rows] == ["s1", "s2", "s3"]


async def test_orphans_are_adopted_and_ids_scoped_per_account(storage: Storage) -> None:
    """A span naming a later parent stops being orphaned; accounts may reuse ids."""
    first = storage.write_sync(lambda s: create_account(s, "one"))
    second = storage.write_sync(lambda s: create_account(s, "two"))

    def work(session: WriteSession) -> None:
        session.insert_span(_span(first, "child", parent="parent"))
        session.insert_span(_span(first, "lost", parent="never"))
        session.insert_span(_span(second, "parent"))
        session.insert_span(_span(first, "other", instance_id="i2", parent="parent"))

    await storage.write(work)
    child = await storage.read(lambda s: s.get_span(first.id, "child"))
    assert child is not None
    assert child["orphaned"] is True
    # The parent arrives in a later transaction.
    await storage.write(lambda s: s.insert_span(_span(first, "parent")))
    child = await storage.read(lambda s: s.get_span(first.id, "child"))
    lost = await storage.read(lambda s: s.get_span(first.id, "lost"))
    other = await storage.read(lambda s: s.get_span(first.id, "other"))
    assert child is not None
    assert child["orphaned"] is False
    assert child["payload"] == {"k": [1, 2]}
    assert lost is not None
    assert lost["orphaned"] is True
    assert other is not None
    assert other["orphaned"] is True
    listed = await storage.read(lambda s: s.list_spans(first.id, ListQuery()))
    assert {row["id"]: row["orphaned"] for row in listed.rows} == {
        "child": False,
        "lost": True,
        "other": True,
        "parent": False,
    }
    page = await storage.read(lambda s: s.list_spans(second.id, ListQuery()))
    assert page.total == 1


async def test_insert_spans_skips_stored_ids_and_settles_orphans(storage: Storage) -> None:
    """insert_spans stores only new ids, marks spans whose parent is unknown as orphans,
    and adopts stored orphans of the same instance when their parent arrives."""
    account = storage.write_sync(lambda s: create_account(s, "one"))

    def first(session: WriteSession) -> int:
        return session.insert_spans(
            account.id,
            [
                _span(account, "child", parent="root"),  # parent not yet stored
                _span(account, "leaf", parent="child"),  # parent in the same call
                _span(account, "other", instance_id="i2", parent="root"),
            ],
        )

    def second(session: WriteSession) -> int:
        return session.insert_spans(account.id, [_span(account, "child"), _span(account, "root")])

    assert await storage.write(first) == 3
    orphans = await storage.read(
        lambda s: {span_id: s.get_span(account.id, span_id) for span_id in ("child", "leaf")}
    )
    assert orphans["child"] is not None
    assert orphans["child"]["orphaned"] is True
    assert orphans["leaf"] is not None
    assert orphans["leaf"]["orphaned"] is False
    assert await storage.write(second) == 1  # "child" is stored already
    settled = await storage.read(
        lambda s: {span_id: s.get_span(account.id, span_id) for span_id in ("child", "other")}
    )
    assert settled["child"] is not None
    assert settled["child"]["orphaned"] is False
    # A span of another instance naming the same parent id is not adopted.
    assert settled["other"] is not None
    assert settled["other"]["orphaned"] is True


async def test_insert_spans_counts_only_new_ids_of_its_own_call(storage: Storage) -> None:
    """A repeated id within one call is stored once (the first), ids stored before are
    skipped, and a span another write of the same transaction made is not counted."""
    account = storage.write_sync(lambda s: create_account(s, "one"))
    await storage.write(lambda s: s.insert_spans(account.id, [_span(account, "old")]))

    def mixed(session: WriteSession) -> int:
        session.insert_span(_span(account, "single"))  # buffered by the bulk path
        return session.insert_spans(
            account.id,
            [
                _span(account, "new", summary="first"),
                _span(account, "old", summary="resent"),
                _span(account, "new", summary="second"),
                _span(account, "kid", parent="new"),
            ],
        )

    assert await storage.write(mixed) == 2
    stored = await storage.read(
        lambda s: {span_id: s.get_span(account.id, span_id) for span_id in ("new", "old", "kid")}
    )
    assert stored["new"] is not None
    assert stored["new"]["summary"] == "first"
    assert stored["old"] is not None
    assert stored["old"]["summary"] is None
    assert stored["kid"] is not None
    assert stored["kid"]["orphaned"] is False
    listed = await storage.read(lambda s: s.list_spans(account.id, ListQuery()))
    assert sorted(row["id"] for row in listed.rows) == ["kid", "new", "old", "single"]


async def test_insert_spans_adopts_only_the_children_of_its_own_spans(storage: Storage) -> None:
    """Whether the account has more orphans than the call has spans or fewer, a call
    adopts exactly the stored orphans whose parent it stores (in their own instance)."""
    account = storage.write_sync(lambda s: create_account(s, "one"))
    kids = [_span(account, f"kid-{n}", parent=f"p{n}") for n in (1, 2, 3)]
    await storage.write(lambda s: s.insert_spans(account.id, kids))

    async def orphaned() -> list[str]:
        def read(session: ReadSession) -> list[str]:
            spans = [session.get_span(account.id, f"kid-{n}") for n in (1, 2, 3)]
            return [span["id"] for span in spans if span is not None and span["orphaned"]]

        return await storage.read(read)

    # One span stored, three orphans waiting (its child the last of them by parent id).
    assert await storage.write(lambda s: s.insert_spans(account.id, [_span(account, "p3")])) == 1
    assert await orphaned() == ["kid-1", "kid-2"]
    # Three spans stored (one a parent), two orphans waiting.
    more = [_span(account, "p1"), _span(account, "x"), _span(account, "y", parent="x")]
    assert await storage.write(lambda s: s.insert_spans(account.id, more)) == 3
    assert await orphaned() == ["kid-2"]


# -- idempotency ----------------------------------------------------------------------


async def test_idempotency_is_scoped_by_action(storage: Storage, account: Account) -> None:
    """Stored responses are found by account, action and key only."""
    await storage.write(lambda s: s.put_idempotent(account.id, "a/x", "k", 201, b"{}"))
    assert await storage.write(lambda s: s.get_idempotent(account.id, "a/x", "k")) == (201, b"{}")
    assert await storage.write(lambda s: s.get_idempotent(account.id, "a/y", "k")) is None
    other = storage.write_sync(lambda s: create_account(s, "other"))
    assert await storage.write(lambda s: s.get_idempotent(other.id, "a/x", "k")) is None


async def test_idempotency_many(storage: Storage, account: Account) -> None:
    """Many keys in one go: only the stored ones come back; a get then put in one
    transaction stores the answer."""

    def first(session: WriteSession) -> dict[tuple[str, str], tuple[int, bytes]]:
        found = session.get_idempotent_many(account.id, [("a/x", "k1"), ("a/x", "k2")])
        session.put_idempotent_many(account.id, [("a/x", "k1", 201, b"one")])
        return found

    assert await storage.write(first) == {}
    found = await storage.write(
        lambda s: s.get_idempotent_many(account.id, [("a/x", "k1"), ("a/x", "k2"), ("a/y", "k1")])
    )
    assert found == {("a/x", "k1"): (201, b"one")}


async def test_concurrent_replays_answer_once(storage: Storage, account: Account) -> None:
    """Two writes with the same key at the same time: one runs, the other gets its answer."""
    runs: list[int] = []

    def once(session: WriteSession) -> tuple[int, bytes]:
        stored = session.get_idempotent(account.id, "a/x", "same-key")
        if stored is not None:
            return stored
        runs.append(1)
        session.insert_span(_span(account, f"span-{len(runs)}"))
        body = f"run {len(runs)}".encode()
        session.put_idempotent(account.id, "a/x", "same-key", 201, body)
        return 201, body

    answers = await asyncio.gather(*(storage.write(once) for _ in range(4)))
    assert len(runs) == 1
    assert answers == [(201, b"run 1")] * 4
    page = await storage.read(lambda s: s.list_spans(account.id, ListQuery()))
    assert page.total == 1


# -- migrations -----------------------------------------------------------------------


def test_migrations_are_recorded(database: str | Path, backend: str) -> None:
    """Opening twice applies each migration once and records it by name."""
    settings = Settings.from_env({}, db_path=database)
    open_storage(settings).close()
    open_storage(settings).close()
    if backend == "postgresql":
        import psycopg

        from prefactor_server.storage.postgres.migrations import MIGRATIONS

        assert settings.database_url is not None
        with psycopg.connect(settings.database_url) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
    else:
        import sqlite3

        from prefactor_server.storage.sqlite.migrations import MIGRATIONS as SQLITE

        MIGRATIONS = SQLITE
        with sqlite3.connect(settings.db_path) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
    assert sorted(names) == [migration.name for migration in MIGRATIONS]


async def test_failed_authentications_are_counted_per_window(storage: Storage) -> None:
    """record_auth_failure counts per client within a window; an ended window restarts."""
    assert await storage.read(lambda s: s.auth_failures("10.0.0.1")) is None
    for expected in (1, 2, 3):
        count = await storage.write(lambda s: s.record_auth_failure("10.0.0.1", 100.0, 60.0))
        assert count == (expected, 100.0)
    assert await storage.write(lambda s: s.record_auth_failure("10.0.0.2", 130.0, 60.0)) == (
        1,
        130.0,
    )
    assert await storage.read(lambda s: s.auth_failures("10.0.0.1")) == (3, 100.0)
    # 161 s: the first client's window (100–160) is over; the second's is not.
    assert await storage.write(lambda s: s.record_auth_failure("10.0.0.1", 161.0, 60.0)) == (
        1,
        161.0,
    )
    assert await storage.read(lambda s: s.auth_failures("10.0.0.2")) == (1, 130.0)


async def test_tokens_are_found_by_hash_revoked_or_not(storage: Storage) -> None:
    from prefactor_server.domain.accounts import create_token, hash_token

    def make(session: WriteSession) -> str:
        account = create_account(session, "acme")
        return str(create_token(session, account, "ci", "a-token-of-twenty-chars")[0]["id"])

    token_id = await storage.write(make)
    digest = hash_token("a-token-of-twenty-chars")
    found = await storage.read(lambda s: s.find_token(digest))
    assert found is not None
    assert found["id"] == token_id
    assert found["revoked_at"] is None
    assert "token_hash" not in found
    await storage.write(lambda s: s.revoke_token(token_id, "2026-01-01T00:00:00Z"))
    revoked = await storage.read(lambda s: s.find_token(digest))
    assert revoked is not None
    assert revoked["revoked_at"] == "2026-01-01T00:00:00Z"
    assert await storage.read(lambda s: s.account_for_token(digest)) is None
    assert await storage.read(lambda s: s.find_token(hash_token("other"))) is None
