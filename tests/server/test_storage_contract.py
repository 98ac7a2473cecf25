"""The storage contract, run against every backend (only SQLite for now).

A PostgreSQL backend joins by adding a parameter to the ``storage`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prefactor_server.domain.accounts import create_account
from prefactor_server.storage import (
    Account,
    IdTaken,
    ListQuery,
    SqliteStorage,
    Storage,
    WriteSession,
)
from prefactor_server.storage.migrations import MIGRATIONS


@pytest.fixture(name="storage", params=["sqlite"])
def fixture_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh storage of each backend."""
    assert request.param == "sqlite"
    storage = SqliteStorage(tmp_path / "contract.db")
    try:
        yield storage
    finally:
        storage.close()


def _span(
    account: Account, span_id: str, instance_id: str = "i1", parent: str | None = None
) -> dict[str, object]:
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
        "inserted_at": "t",
        "updated_at": "t",
    }


async def test_write_failure_rolls_back(storage: Storage) -> None:
    """A write that raises leaves nothing behind."""
    account = storage.write_sync(lambda s: create_account(s, "acc"))

    def fail(session: WriteSession) -> None:
        session.insert_span(_span(account, "x"))
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await storage.write(fail)
    assert await storage.read(lambda s: s.get_span(account.id, "x")) is None


async def test_savepoint_keeps_earlier_work(storage: Storage) -> None:
    """A failing savepoint rolls back only itself; the transaction commits the rest."""
    account = storage.write_sync(lambda s: create_account(s, "acc"))

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

    await storage.write(work)
    assert await storage.read(lambda s: s.get_span(account.id, "kept")) is not None
    assert await storage.read(lambda s: s.get_span(account.id, "dropped")) is None


async def test_orphans_are_adopted_and_ids_scoped_per_account(storage: Storage) -> None:
    """A span naming a later parent stops being orphaned; accounts may reuse ids."""
    first = storage.write_sync(lambda s: create_account(s, "one"))
    second = storage.write_sync(lambda s: create_account(s, "two"))

    def work(session: WriteSession) -> None:
        session.insert_span(_span(first, "child", parent="parent"))
        session.insert_span(_span(first, "parent"))
        session.insert_span(_span(second, "parent"))

    await storage.write(work)
    child = await storage.read(lambda s: s.get_span(first.id, "child"))
    assert child is not None
    assert child["orphaned"] is False
    assert child["payload"] == {"k": [1, 2]}
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


async def test_idempotency_is_scoped_by_action(storage: Storage) -> None:
    """Stored responses are found by account, action and key only."""
    account = storage.write_sync(lambda s: create_account(s, "acc"))
    await storage.write(lambda s: s.put_idempotent(account.id, "a/x", "k", 201, b"{}"))
    assert await storage.write(lambda s: s.get_idempotent(account.id, "a/x", "k")) == (201, b"{}")
    assert await storage.write(lambda s: s.get_idempotent(account.id, "a/y", "k")) is None


def test_migrations_are_recorded(tmp_path: Path) -> None:
    """Opening twice applies each migration once and records it by name."""
    SqliteStorage(tmp_path / "m.db").close()
    storage = SqliteStorage(tmp_path / "m.db")
    try:
        import sqlite3

        with sqlite3.connect(tmp_path / "m.db") as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
        assert names == [migration.name for migration in MIGRATIONS]
    finally:
        storage.close()


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
