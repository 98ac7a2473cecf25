"""The storage contract, continued: the failed-authentication counter and token look-up
(issue 10), OTLP's set insert is in ``test_storage_contract.py``, and the viewer's reads
(issue 16) — on every backend (the ``backend`` fixture: SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.server.test_storage_contract import _agent, _instance, _span

from prefactor_server.domain.accounts import create_token, hash_token
from prefactor_server.storage import Account, Storage, WriteSession
from prefactor_server.storage.base import RunQuery

pytestmark = pytest.mark.timeout(60)


def _at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


# -- tokens and failed authentications ------------------------------------------------


async def test_find_token_sees_revoked_tokens(storage: Storage, account: Account) -> None:
    """find_token answers by hash whether revoked or not, without the hash."""
    record, plain = storage.write_sync(lambda s: create_token(s, account, "ci"))
    found = storage.read_sync(lambda s: s.find_token(hash_token(plain)))
    assert found is not None
    assert (found["id"], found["account_id"], found["revoked_at"]) == (
        record["id"],
        account.id,
        None,
    )
    assert "token_hash" not in found
    storage.write_sync(lambda s: s.revoke_token(record["id"], _at(5)))
    revoked = storage.read_sync(lambda s: s.find_token(hash_token(plain)))
    assert revoked is not None
    assert revoked["revoked_at"] == _at(5)
    assert storage.read_sync(lambda s: s.find_token(hash_token("not-a-token"))) is None


async def test_auth_failures_count_per_client_within_a_window(storage: Storage) -> None:
    """Failures add up per client; an ended window starts again and old rows go."""
    assert storage.read_sync(lambda s: s.auth_failures("10.0.0.1")) is None

    def fail(client: str, now: float) -> tuple[int, float]:
        return storage.write_sync(lambda s: s.record_auth_failure(client, now, 60.0))

    assert fail("10.0.0.1", 1000.0) == (1, 1000.0)
    assert fail("10.0.0.1", 1010.5) == (2, 1000.0)
    assert fail("10.0.0.2", 1020.0) == (1, 1020.0)
    assert storage.read_sync(lambda s: s.auth_failures("10.0.0.1")) == (2, 1000.0)
    # 10.0.0.1's window ended at 1060: its next failure starts a new one.
    assert fail("10.0.0.1", 1061.0) == (1, 1061.0)
    # Another client's failure clears 10.0.0.2's ended window too.
    fail("10.0.0.3", 1081.0)
    assert storage.read_sync(lambda s: s.auth_failures("10.0.0.2")) is None
    assert storage.read_sync(lambda s: s.auth_failures("10.0.0.1")) == (1, 1061.0)


async def test_concurrent_auth_failures_all_count(storage: Storage) -> None:
    """Failures recorded at once (PostgreSQL: concurrent transactions) are all counted."""
    import asyncio

    results = await asyncio.gather(
        *(storage.write(lambda s: s.record_auth_failure("c", 500.0, 60.0)) for _ in range(12))
    )
    assert sorted(count for count, _ in results) == list(range(1, 13))
    assert storage.read_sync(lambda s: s.auth_failures("c")) == (12, 500.0)


# -- the viewer's reads ---------------------------------------------------------------


@pytest.fixture(name="runs")
def fixture_runs(storage: Storage, account: Account) -> Account:
    """Runs r1..r5 of agents a1 ("Alpha") and a2 ("Beta"), spans s1..s8."""

    def work(session: WriteSession) -> None:
        session.insert_agent(_agent(account, "a1", name="Alpha"))
        session.insert_agent(_agent(account, "a2", name="Beta"))
        runs = [
            ("r1", "a1", "complete", _at(1), _at(11)),  # 10 s
            ("r2", "a1", "failed", _at(2), _at(4)),  # 2 s
            ("r3", "a2", "active", _at(3), None),
            ("r4", "a2", "complete", _at(4), _at(34)),  # 30 s
            ("r5", "a1", "pending", None, None),  # inserted at 00:00:05
        ]
        for run_id, agent, status, started, finished in runs:
            session.insert_instance(
                _instance(
                    account,
                    run_id,
                    agent_id=agent,
                    status=status,
                    started_at=started,
                    finished_at=finished,
                    inserted_at=started or _at(5),
                    external_identifier=f"ext-{run_id}",
                )
            )
        spans: list[dict[str, Any]] = [
            _span(account, "s1", "r1", payload={"model": "gpt-x"}, updated_at=_at(20)),
            _span(account, "s2", "r1", "s1", payload={"q": "plain"}, updated_at=_at(12)),
            _span(account, "s3", "r2", status="failed", result_payload={"error": "Boom 50%_off"}),
            _span(account, "s4", "r2", status="failed", summary="Needle in it"),
            _span(account, "s5", "r2", result_payload={"usage": {"total_tokens": 7}}),
            _span(account, "s6", "r3", payload={"text": "100% sure"}),
            _span(account, "s7", "r4", status="complete"),
            _span(account, "s8", "r4", status="failed", schema_name="tool"),
        ]
        for span in spans:
            session.insert_span(span)

    storage.write_sync(work)
    return account


def _page(storage: Storage, account: Account, **fields: Any) -> tuple[list[str], Any]:
    page = storage.read_sync(lambda s: s.list_runs(account.id, RunQuery(**fields)))
    return [row["id"] for row in page.rows], page


@pytest.mark.parametrize(
    ("sort", "descending", "order"),
    [
        ("started", True, ["r5", "r4", "r3", "r2", "r1"]),
        ("started", False, ["r1", "r2", "r3", "r4", "r5"]),
        ("duration", True, ["r4", "r1", "r2", "r5", "r3"]),  # never finished: -1, ties by id
        ("spans", True, ["r2", "r4", "r1", "r3", "r5"]),
        ("errors", True, ["r2", "r4", "r5", "r3", "r1"]),
    ],
)
async def test_list_runs_sorts_and_pages_both_ways(
    storage: Storage, runs: Account, sort: str, descending: bool, order: list[str]
) -> None:
    """Every sort key, walked forward two at a time with cursors, then back."""
    ids, page = _page(storage, runs, sort=sort, descending=descending)
    assert ids == order
    assert page.total == 5
    seen: list[str] = []
    after = None
    while True:
        ids, page = _page(storage, runs, sort=sort, descending=descending, after=after, limit=2)
        seen.extend(ids)
        assert page.has_before == (after is not None)
        if not page.has_after:
            break
        last = page.rows[-1]
        after = (last["sort_key"], last["id"])
    assert seen == order
    first = page.rows[0]
    ids, back = _page(
        storage, runs, sort=sort, descending=descending, before=(first["sort_key"], first["id"]),
        limit=2,
    )  # fmt: skip
    assert ids == order[-len(page.rows) - 2 : -len(page.rows)]
    assert back.has_after


@pytest.mark.parametrize(
    ("sort", "key"), [("started", 3), ("duration", "x"), ("spans", "2"), ("errors", None)]
)
async def test_list_runs_refuses_a_cursor_key_of_another_type(
    storage: Storage, runs: Account, sort: str, key: Any
) -> None:
    """A cursor key that does not fit the sort raises ValueError (no backend guesses)."""
    for cursor in ({"after": (key, "r1")}, {"before": (key, "r1")}):
        with pytest.raises(ValueError, match="not a valid page cursor"):
            _page(storage, runs, sort=sort, **cursor)
    # An int where a duration (a float) is kept is the same number.
    assert _page(storage, runs, sort="duration", after=(0, "r9"))[0] == ["r5", "r3"]


async def test_list_runs_filters(storage: Storage, runs: Account) -> None:
    """Agent, status, start range and text (ids, agent name, span text; any case)."""
    assert _page(storage, runs, agent_id="a2")[0] == ["r4", "r3"]
    assert _page(storage, runs, status="complete")[0] == ["r4", "r1"]
    assert _page(storage, runs, started_from=_at(2), started_to=_at(4))[0] == ["r3", "r2"]
    assert _page(storage, runs, started_from=_at(5))[0] == ["r5"]  # by its insert time
    assert _page(storage, runs, text="BETA")[0] == ["r4", "r3"]
    assert _page(storage, runs, text="ext-r1")[0] == ["r1"]
    assert _page(storage, runs, text="needle")[0] == ["r2"]
    assert _page(storage, runs, text="GPT-X")[0] == ["r1"]
    # % and _ are literal characters, not wildcards.
    assert _page(storage, runs, text="100%")[0] == ["r3"]
    assert _page(storage, runs, text="50%_off")[0] == ["r2"]
    assert _page(storage, runs, text="0%s")[0] == []
    ids, page = _page(storage, runs, text="nothing like it")
    assert (ids, page.total, page.has_after) == ([], 0, False)


async def test_list_runs_rows_carry_instance_fields(storage: Storage, runs: Account) -> None:
    """Rows are whole instance records (decoded JSON fields) plus the sort key."""
    _, page = _page(storage, runs, sort="duration", limit=1)
    row = page.rows[0]
    assert row["id"] == "r4"
    assert row["quality_payloads"] == {}
    assert row["external_identifier"] == "ext-r4"
    assert row["sort_key"] == pytest.approx(30.0)


async def test_run_span_rows(storage: Storage, runs: Account) -> None:
    """Compact rows in id order, paged; payloads only where they may hold LLM facts."""
    rows = storage.read_sync(lambda s: s.run_span_rows(runs.id, "r2", after_id=None, limit=10))
    assert [row["id"] for row in rows] == ["s3", "s4", "s5"]
    by_id = {row["id"]: row for row in rows}
    assert by_id["s3"]["result_payload"] == {"error": "Boom 50%_off"}  # failed: kept
    assert by_id["s3"]["payload"] is None  # no hint
    assert by_id["s5"]["result_payload"] == {"usage": {"total_tokens": 7}}
    assert by_id["s4"]["summary"] == "Needle in it"
    assert set(by_id["s4"]) >= {
        "parent_span_id", "schema_name", "schema_title", "status", "started_at",
        "finished_at", "updated_at",
    }  # fmt: skip
    later = storage.read_sync(lambda s: s.run_span_rows(runs.id, "r2", after_id="s3", limit=1))
    assert [row["id"] for row in later] == ["s4"]
    first = storage.read_sync(lambda s: s.run_span_rows(runs.id, "r1", after_id=None, limit=5))
    assert first[0]["payload"] == {"model": "gpt-x"}
    assert first[1]["payload"] is None
    changed = storage.read_sync(
        lambda s: s.run_span_rows(runs.id, "r1", after_id=None, limit=5, updated_since=_at(12))
    )
    assert [row["id"] for row in changed] == ["s2", "s1"]  # by update time
    assert (
        storage.read_sync(
            lambda s: s.run_span_rows(runs.id, "r1", after_id=None, limit=5, updated_since=_at(13))
        )[0]["id"]
        == "s1"
    )


async def test_search_run_spans(storage: Storage, runs: Account) -> None:
    """Type, summary, status, params, result; any case; % and _ literal; limited."""

    def search(run: str, text: str, limit: int = 10) -> list[str]:
        return storage.read_sync(lambda s: s.search_run_spans(runs.id, run, text, limit))

    assert search("r2", "NEEDLE") == ["s4"]
    assert search("r2", "boom") == ["s3"]
    assert search("r2", "failed") == ["s3", "s4"]
    assert search("r2", "failed", limit=1) == ["s3"]
    assert search("r4", "tool") == ["s8"]
    assert search("r2", "50%_") == ["s3"]
    assert search("r2", "5_%") == []
    assert search("r1", "needle") == []  # another run's span


async def test_llm_payloads(storage: Storage, runs: Account) -> None:
    """(run, params, result) of the spans that mention a model, token or cost."""
    found = storage.read_sync(lambda s: s.llm_payloads(runs.id, ["r1", "r2", "r3", "missing"]))
    assert sorted(found, key=lambda item: item[0]) == [
        ("r1", {"model": "gpt-x"}, None),
        ("r2", None, {"usage": {"total_tokens": 7}}),
    ]
    assert storage.read_sync(lambda s: s.llm_payloads(runs.id, [])) == []
