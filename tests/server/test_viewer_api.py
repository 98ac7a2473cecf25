"""The viewer's JSON reads and run list over HTTP (in-process, real SQLite file)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from prefactor_server.demo.synthetic import make_big_run, make_many_runs
from prefactor_server.storage.base import RunQuery
from prefactor_server.testing import LocalServer
from prefactor_server.viewer.run_list import decode_cursor

from .conftest import Api

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(name="viewer")
async def fixture_viewer(server: LocalServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in to the viewer (its cookie) and to the API (bearer token)."""
    async with httpx.AsyncClient(
        transport=server.transport,
        base_url=server.api_url,
        headers={"Authorization": f"Bearer {server.token}"},
        cookies={"prefactor_token": server.token},
    ) as client:
        yield client


def _run_ids(html: str) -> list[str]:
    return re.findall(r'data-run="([^"]+)"', html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return None if found is None else found.group(1).replace("&amp;", "&")


async def test_tree_is_compact_columns_gzipped(viewer: httpx.AsyncClient) -> None:
    """The tree carries every span once, with parents as indexes, gzip on the wire."""
    run_id = await make_big_run(viewer, spans=500, seed=2, payload_bytes=512)
    response = await viewer.get(
        f"/viewer/api/runs/{run_id}/tree", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    tree = response.json()
    assert tree["n"] == 500
    assert len(tree["id"]) == len(set(tree["id"])) == 500
    root = tree["id"].index(f"{run_id}-s0")
    assert tree["parent"][root] == -1
    child = tree["id"].index(f"{run_id}-s1")
    assert tree["parent"][child] == root
    assert tree["start"][root] <= tree["start"][child] <= tree["end"][child] <= tree["end"][root]
    failed = [i for i, s in enumerate(tree["status"]) if tree["statuses"][s] == "failed"]
    assert failed
    assert all(tree["errors"][str(i)].startswith("SyntheticError: step") for i in failed)
    llm = [i for i, t in enumerate(tree["type"]) if tree["types"][t] == "agent:llm"]
    assert all(tree["tokens"][i] > 0 for i in llm if i not in failed)
    assert {tree["models"][tree["model"][i]] for i in llm if i not in failed} == {
        "gpt-4o-mini",
        "claude-3-5-haiku",
        "gemini-1.5-flash",
    }
    # Payload text stays out of the tree: 500 spans of 512-byte payloads, far less here.
    assert len(response.content) < 500 * 512 / 2


async def test_tree_without_gzip_and_auth_errors(viewer: httpx.AsyncClient, api: Api) -> None:
    """Plain JSON without Accept-Encoding; 401 without the cookie; 404 for unknown runs."""
    instance = await api.register()
    raw = await viewer.get(
        f"/viewer/api/runs/{instance['id']}/tree", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in raw.headers
    assert raw.json()["n"] == 0
    viewer.cookies.clear()
    denied = await viewer.get(f"/viewer/api/runs/{instance['id']}/tree")
    assert denied.status_code == 401
    assert denied.json()["code"] == "unauthorized"
    viewer.cookies.set("prefactor_token", "test-token-123")
    missing = await viewer.get("/viewer/api/runs/nope/tree")
    assert missing.status_code == 404
    assert "nope" in missing.json()["message"]


async def test_span_detail_reads_llm_facts_and_conversation(
    viewer: httpx.AsyncClient, api: Api
) -> None:
    """A span's detail has its payloads, tokens, cost, model and messages."""
    instance = await api.register()
    created = await api.span(
        instance["id"],
        schema_name="agent:llm",
        status="complete",
        payload={"model": "gpt-4o", "prompt": "hi"},
        result_payload={
            "response": "hello",
            "choices": [{"message": {"role": "assistant", "content": "hello\nthere"}}],
        },
    )
    span_id = created.json()["details"]["id"]
    other = await api.span(
        instance["id"],
        status="complete",
        payload={
            "attributes": {"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 5},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi!"}]}],
        },
        result_payload={"output": "Hello!", "cost": 0.25},
    )
    other_id = other.json()["details"]["id"]

    detail = (await viewer.get(f"/viewer/api/runs/{instance['id']}/spans/{other_id}")).json()
    assert detail["span"]["id"] == other_id
    assert detail["llm"] == {
        "input_tokens": 7,
        "output_tokens": 5,
        "total_tokens": 12,
        "cost": 0.25,
        "models": [],
    }
    assert detail["messages"] == [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello!"},
    ]
    plain = (await viewer.get(f"/viewer/api/runs/{instance['id']}/spans/{span_id}")).json()
    assert plain["llm"]["models"] == ["gpt-4o"]
    assert plain["messages"] == []  # no request messages: not a conversation
    wrong_run = await viewer.get(f"/viewer/api/runs/{instance['id']}x/spans/{span_id}")
    assert wrong_run.status_code == 404


async def test_search_and_changes(viewer: httpx.AsyncClient, api: Api) -> None:
    """Search finds payload text; changes returns what was updated since a cursor."""
    instance = await api.register()
    run = f"/viewer/api/runs/{instance['id']}"
    first = (await api.span(instance["id"], payload={"needle": "100%_match"})).json()["details"]
    await api.span(instance["id"], payload={"other": "x"})
    found = (await viewer.get(f"{run}/search", params={"q": "100%_m"})).json()
    assert found == {"ids": [first["id"]], "truncated": False}
    assert (await viewer.get(f"{run}/search", params={"q": "100%Xm"})).json()["ids"] == []
    empty = await viewer.get(f"{run}/search", params={"q": " "})
    assert empty.status_code == 422
    assert empty.json()["message"].startswith("q:")

    tree = (await viewer.get(f"{run}/tree")).json()
    unchanged = (await viewer.get(f"{run}/changes", params={"since": tree["cursor"]})).json()
    assert {row["id"] for row in unchanged["spans"]} <= set(tree["id"])
    await api.finish_span(first["id"], status="complete")
    changed = (await viewer.get(f"{run}/changes", params={"since": tree["cursor"]})).json()
    row = next(row for row in changed["spans"] if row["id"] == first["id"])
    assert row["status"] == "complete"
    assert row["end"] is not None
    assert changed["cursor"] >= tree["cursor"]
    assert changed["run"]["span_counts"]["complete"] == 1
    bad = await viewer.get(f"{run}/changes", params={"since": "yesterday"})
    assert bad.status_code == 422


async def test_run_list_pages_reach_every_run_once_despite_inserts(
    viewer: httpx.AsyncClient,
) -> None:
    """Following Next links lists every run exactly once, even with new runs arriving."""
    ids = await make_many_runs(viewer, runs=120, seed=9)
    seen: list[str] = []
    url: str | None = "/?agent=synthetic-many"
    while url is not None:
        page = await viewer.get(url)
        assert page.status_code == 200
        seen.extend(_run_ids(page.text))
        url = _link(page.text, "next")
        if len(seen) == 50:  # new runs arrive between pages: they go on the first page
            await make_many_runs(viewer, runs=5, seed=10)
    assert seen == list(reversed(ids))


async def test_run_list_sorts_filters_and_columns(viewer: httpx.AsyncClient) -> None:
    """Sort by errors and span count, filter by status and text, LLM columns per run."""
    ids = await make_many_runs(viewer, runs=30, seed=4)
    by_errors = await viewer.get("/", params={"sort": "errors"})
    failed_first = _run_ids(by_errors.text)[: len(ids[::7])]
    assert set(failed_first) == set(ids[::7])  # every seventh run has one failed span
    only_failed = await viewer.get("/", params={"status": "failed"})
    assert set(_run_ids(only_failed.text)) == set(ids[::7])
    ascending = await viewer.get("/", params={"order": "asc"})
    assert _run_ids(ascending.text)[:30] == ids
    one = await viewer.get("/", params={"q": ids[3]})
    assert _run_ids(one.text) == [ids[3]]
    assert "gpt-4o-mini" in one.text
    bad = await viewer.get("/", params={"sort": "colour"})
    assert bad.status_code == 400
    assert "sort: one of" in bad.text
    future = await viewer.get("/", params={"from": "2999-01-01"})
    assert _run_ids(future.text) == []
    assert (await viewer.get("/", params={"from": "soon"})).status_code == 400


async def test_list_runs_backwards_and_by_duration(server: LocalServer, viewer: Any) -> None:
    """Storage: ``before`` walks back to the same rows; duration sorts finished runs."""
    await make_many_runs(viewer, runs=12, seed=6)
    account = await server.storage.read(lambda s: s.first_account())
    assert account is not None

    def pages(query: RunQuery) -> Any:
        return server.storage.read_sync(lambda s: s.list_runs(account.id, query))

    first = pages(RunQuery(limit=5))
    second = pages(RunQuery(limit=5, after=(first.rows[-1]["sort_key"], first.rows[-1]["id"])))
    back = pages(RunQuery(limit=5, before=(second.rows[0]["sort_key"], second.rows[0]["id"])))
    assert [r["id"] for r in back.rows] == [r["id"] for r in first.rows]
    assert (first.has_before, first.has_after, second.has_before) == (False, True, True)
    assert back.has_before is False
    durations = [r["sort_key"] for r in pages(RunQuery(sort="duration", limit=12)).rows]
    assert durations == sorted(durations, reverse=True)
    assert all(d > 0 for d in durations)


def test_cursor_round_trip_and_garbage() -> None:
    """A cursor decodes to its key and id; anything else is a named error."""
    from prefactor_server.viewer.run_list import encode_cursor

    assert decode_cursor(encode_cursor(1.5, "abc"), "after") == (1.5, "abc")
    for bad in ("", "!!!", "bm90IGpzb24", encode_cursor("x", "y")[:-2]):
        with pytest.raises(ValueError, match="after: not a valid page cursor"):
            decode_cursor(bad, "after")


@pytest.mark.parametrize(
    ("sort", "key"),
    [("started", 5), ("duration", "2026-01-01"), ("spans", True), ("tokens", "many")],
)
async def test_run_list_refuses_a_cursor_of_another_sort(
    viewer: httpx.AsyncClient, sort: str, key: Any
) -> None:
    """A cursor whose key does not fit the sort (made for another sort, or forged) is a
    400 naming the cursor on every backend, never a server error."""
    from prefactor_server.viewer.run_list import encode_cursor

    await make_many_runs(viewer, runs=2, seed=3)
    for name in ("after", "before"):
        page = await viewer.get("/", params={"sort": sort, name: encode_cursor(key, "x")})
        assert page.status_code == 400, (name, page.text[:200])
        assert "not a valid page cursor" in page.text


async def test_unknown_page_is_html_but_unknown_api_path_is_json(
    viewer: httpx.AsyncClient,
) -> None:
    """Browsers get the viewer's 404 page; API clients keep the JSON envelope."""
    page = await viewer.get("/nowhere", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at /nowhere" in page.text
    api = await viewer.get("/api/v1/nowhere", headers={"Accept": "text/html"})
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"


async def test_pages_are_gzipped(viewer: httpx.AsyncClient) -> None:
    """HTML pages come compressed when the browser accepts gzip."""
    await make_many_runs(viewer, runs=20, seed=8)
    response = await viewer.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    raw = await viewer.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert _run_ids(response.text) == _run_ids(raw.text)  # the same page, decoded


async def test_run_list_sorts_by_tokens_and_cost_with_cursors(
    viewer: httpx.AsyncClient, api: Api
) -> None:
    """Sorting by tokens or cost orders runs by their totals and pages like the others."""
    ids = await make_many_runs(viewer, runs=60, seed=12)
    quiet = await api.register()  # no LLM spans: zero tokens, last when descending
    seen: list[str] = []
    url: str | None = "/?sort=tokens"
    while url is not None:
        page = await viewer.get(url)
        seen.extend(_run_ids(page.text))
        url = _link(page.text, "next")
    assert sorted(seen) == sorted([*ids, quiet["id"]])  # every run once
    assert seen[-1] == quiet["id"]
    by_cost = await viewer.get("/", params={"sort": "cost", "order": "asc"})
    assert _run_ids(by_cost.text)[0] == quiet["id"]
    second = await viewer.get(_link((await viewer.get("/?sort=tokens")).text, "next") or "")
    back = await viewer.get(_link(second.text, "prev") or "")
    assert _run_ids(back.text) == seen[:50]


async def test_tree_is_rebuilt_when_the_run_changes(viewer: httpx.AsyncClient, api: Api) -> None:
    """A cached tree is served while nothing changed, and rebuilt after a span finishes."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    url = f"/viewer/api/runs/{instance['id']}/tree"
    first = (await viewer.get(url)).json()
    assert (await viewer.get(url)).json() == first
    assert first["statuses"][first["status"][0]] == "active"
    await api.finish_span(span["id"], status="failed", result_payload={"error": "boom"})
    after = (await viewer.get(url)).json()
    assert after["statuses"][after["status"][0]] == "failed"
    assert after["errors"] == {"0": "boom"}
    await api.span(instance["id"], status="complete")
    assert (await viewer.get(url)).json()["n"] == 2


async def test_tree_pages_chain_and_name_outside_parents(viewer: httpx.AsyncClient) -> None:
    """Pages follow ``next`` to the end; a parent in another page is named by id."""
    run_id = await make_big_run(viewer, spans=450, seed=4, payload_bytes=64)
    url = f"/viewer/api/runs/{run_id}/tree"
    ids: list[str] = []
    parents: dict[str, str | None] = {}
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 200, **({"after": after} if after else {})}
        page = (await viewer.get(url, params=params)).json()
        pages += 1
        for i, span_id in enumerate(page["id"]):
            local = page["parent"][i]
            parents[span_id] = page["id"][local] if local >= 0 else page["parent_ref"].get(str(i))
        ids.extend(page["id"])
        after = page["next"]
        if after is None:
            break
    assert pages == 3
    assert len(ids) == len(set(ids)) == 450
    assert ids == sorted(ids)
    assert parents[f"{run_id}-s0"] is None
    assert all(parents[f"{run_id}-s{i}"] is not None for i in range(1, 450))
    bad = await viewer.get(url, params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("limit:")
