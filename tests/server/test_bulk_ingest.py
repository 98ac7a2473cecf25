"""The bulk ingest path's shortcuts keep every item's answer: span inserts written together
at the end of the request (a collision found then answers 409 for exactly that item), and
the lean idempotency rows of terminal span creates (a replay answers byte for byte what
the first request answered, on both backends), and on SQLite the span creates keyed
``c-`` + the span id (our SDK's keys) that keep no row at all: the span stands for it
(``storage/sqlite/idempotency.py``)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from prefactor_server.testing import LocalServer

if TYPE_CHECKING:
    from conftest import Api

SCHEMA = {"external_identifier": "ingest-schema", "span_schemas": {"step": {"type": "object"}}}
MINIMAL = {"Prefer": "return=minimal"}
# Key order, unicode, floats, a large int and nesting must all come back as they went in.
PAYLOAD = {"z": 1, "a": [1.5, -0.0, 1e-7, "é ✓", None, True], "m": {"y": {"x": 2**62}}}


def _create(key: str, instance_id: str, **fields: Any) -> dict[str, Any]:
    details = {"agent_instance_id": instance_id, "schema_name": "step", "status": "complete",
               "payload": PAYLOAD, "result_payload": {"out": "ok"}, **fields}  # fmt: skip
    return {"_type": "agent_spans/create", "idempotency_key": key, "details": details}


async def _bulk(
    client: httpx.AsyncClient, items: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> httpx.Response:
    response = await client.post("/api/v1/bulk", json={"items": items}, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def _stored_ids(client: httpx.AsyncClient, instance_id: str) -> list[str]:
    ids: list[str] = []
    while True:
        params: dict[str, str | int] = {"agent_instance_id": instance_id,
                                        "pagination[page_size]": 100,
                                        "pagination[offset]": len(ids)}  # fmt: skip
        spans = (await client.get("/api/v1/agent_spans", params=params)).json()["summaries"]
        ids.extend(span["id"] for span in spans)
        if len(spans) < 100:
            return sorted(ids)


async def test_taken_span_id_between_good_items(api: Api, client: httpx.AsyncClient) -> None:
    """A client id already stored answers 409 for that item; the items before it are
    stored, the ones after are not run, and the stored span is left as it was."""
    instance = await api.register(agent_schema_version=SCHEMA)
    iid = instance["id"]
    await _bulk(client, [_create("first-0001", iid, id="taken-span", payload={"v": 1})])
    items = [
        _create("second-001", iid, id="good-before"),
        _create("second-002", iid, id="taken-span", payload={"v": 2}),
        _create("second-003", iid, id="never-made"),
    ]
    outputs = (await _bulk(client, items)).json()["outputs"]
    assert list(outputs) == ["second-001", "second-002"]
    assert outputs["second-001"]["details"]["id"] == "good-before"
    assert outputs["second-002"]["status"] == "error"
    assert outputs["second-002"]["code"] == "conflict"
    assert await _stored_ids(client, iid) == ["good-before", "taken-span"]
    kept = (await client.get("/api/v1/agent_spans/taken-span")).json()["details"]
    assert kept["payload"] == {"v": 1}
    # Sent again: the stored item replays, the collision answers the same 409 again.
    again = (await _bulk(client, items)).json()["outputs"]
    assert again == outputs


@pytest.mark.parametrize("count", [2, 3, 514, 1000])
async def test_whole_requests_are_written(api: Api, client: httpx.AsyncClient, count: int) -> None:
    """Requests of many sizes (written in chunks of several sizes) store every span once,
    readable as sent; one taken id in the last span answers 409 for that item alone."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    await _bulk(client, [_create("taken-0001", iid, id=f"span-{count - 1:04d}")])
    items = [
        _create(f"key-{n:04d}", iid, id=f"span-{n:04d}", payload={"n": n}) for n in range(count)
    ]
    outputs = (await _bulk(client, items)).json()["outputs"]
    assert len(outputs) == count
    assert outputs[f"key-{count - 1:04d}"]["code"] == "conflict"
    made = [key for key, output in outputs.items() if output["status"] == "success"]
    assert made == [f"key-{n:04d}" for n in range(count - 1)]
    assert await _stored_ids(client, iid) == [f"span-{n:04d}" for n in range(count)]
    for n in {0, count // 2, max(count - 2, 0)} - {count - 1}:
        span = (await client.get(f"/api/v1/agent_spans/span-{n:04d}")).json()["details"]
        assert span["payload"] == {"n": n}
    assert (await _bulk(client, items[:-1])).json()["outputs"] == {
        key: outputs[key] for key in made
    }


async def test_same_new_id_twice_in_one_request(api: Api, client: httpx.AsyncClient) -> None:
    """The second create of an id made earlier in the same request is a 409."""
    instance = await api.register(agent_schema_version=SCHEMA)
    iid = instance["id"]
    items = [_create("twice-0001", iid, id="twin"), _create("twice-0002", iid, id="twin"),
             _create("twice-0003", iid, id="after")]  # fmt: skip
    outputs = (await _bulk(client, items)).json()["outputs"]
    assert list(outputs) == ["twice-0001", "twice-0002"]
    assert outputs["twice-0002"]["code"] == "conflict"
    assert await _stored_ids(client, iid) == ["twin"]


async def test_replays_answer_exactly_the_first_answer(api: Api, client: httpx.AsyncClient) -> None:
    """Terminal creates (kept as references), an active create, an orphan and a finish:
    a replay gives back the same bytes, full or minimal, in bulk or at the single endpoint."""
    instance = await api.register(agent_schema_version=SCHEMA)
    iid = instance["id"]
    items = [
        _create("replay-001", iid, id="root"),
        _create("replay-002", iid, id="child", parent_span_id="root", status="failed"),
        _create("replay-003", iid, id="orphan", parent_span_id="later-parent"),
        _create("replay-004", iid, id="open", status="active", result_payload=None),
        {"_type": "agent_spans/finish", "idempotency_key": "replay-005",
         "agent_span_id": "open", "status": "complete", "result_payload": {"r": [1, 2]}},
        _create("replay-006", iid, id="later-parent"),
    ]  # fmt: skip
    full = await _bulk(client, items)
    minimal = await _bulk(client, items, MINIMAL)
    assert orjson.loads(full.content)["outputs"]["replay-003"]["details"]["orphaned"] is True
    # The orphan has been adopted since, and "open" finished: replays still say what the
    # first answers said.
    assert (await client.get("/api/v1/agent_spans/orphan")).json()["details"]["orphaned"] is False
    for _ in range(2):
        assert (await _bulk(client, items)).content == full.content
        assert (await _bulk(client, items, MINIMAL)).content == minimal.content
    first = orjson.loads(full.content)["outputs"]
    for key, output in first.items():
        if key == "replay-005":
            continue
        details = {**items[0]["details"], "id": "other-id", "idempotency_key": key}
        single = await client.post("/api/v1/agent_spans", json={"details": details})
        assert single.status_code == 200
        assert single.json() == output
    assert await _stored_ids(client, iid) == ["child", "later-parent", "open", "orphan", "root"]


async def test_replay_keeps_control_of_a_terminated_instance(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A span created on a terminated instance answers with control; so does its replay."""
    instance = await api.register(agent_schema_version=SCHEMA)
    iid = instance["id"]
    stop = await client.post(f"/api/v1/agent_instance/{iid}/terminate", json={"reason": "stop"})
    assert stop.status_code == 200, stop.text
    items = [_create(f"ctl-{uuid.uuid4().hex[:8]}", iid, id="late")]
    first = await _bulk(client, items)
    assert orjson.loads(first.content)["outputs"][items[0]["idempotency_key"]]["control"] == {
        "terminate": True,
        "reason": "stop",
    }
    assert (await _bulk(client, items)).content == first.content


# -- creates keyed c-<span id> ------------------------------------------------------------


def _keyed(instance: str, span_id: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"_type": "agent_spans/create", "idempotency_key": key or f"c-{span_id}",
            "id": span_id, "agent_instance_id": instance, "schema_name": "step",
            "status": "complete", "payload": {"q": span_id}, "result_payload": {"n": 1},
            **fields}  # fmt: skip


def _stored_keys(server: LocalServer) -> set[str] | None:
    """The idempotency keys SQLite keeps rows for (None on PostgreSQL)."""
    if server.settings.database_url is not None:
        return None
    with closing(sqlite3.connect(Path(server.settings.db_path))) as db:
        return {row[0] for row in db.execute("SELECT key FROM idempotency")}


@pytest.mark.parametrize("padding", [0, 30])
async def test_keyed_creates_replay_like_stored_answers(
    api: Api, client: httpx.AsyncClient, server: LocalServer, padding: int
) -> None:
    """Terminal creates keyed c-<id> (the span stands for the row on SQLite), an orphan, an
    open span, a key naming another id, another instance: replays answer byte for byte, in
    bulk and at the single endpoint, whatever the body says now. Padded with more creates,
    the request's keys are looked up by their range on SQLite."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    other_instance = (await api.register(agent_schema_version=SCHEMA))["id"]
    items = [
        _keyed(iid, "root-span"),
        _keyed(iid, "child-span", parent_span_id="root-span", status="failed"),
        _keyed(iid, "orphan-span", parent_span_id="later-span"),  # keeps its full answer
        *[_keyed(iid, f"mid-span-{n:02d}") for n in range(padding)],
        _keyed(iid, "open-span", status="active", result_payload=None),  # so does an open one
        _keyed(iid, "mismatch-span", key="c-not-this-one"),  # a key that names another id
        _keyed(other_instance, "elsewhere"),
        _keyed(iid, "later-span"),
    ]
    full = await _bulk(client, items)
    assert {out["status"] for out in full.json()["outputs"].values()} == {"success"}
    minimal = await _bulk(client, items, MINIMAL)
    # The orphan was adopted by "later-span" since: its replay says what it said first.
    orphan = (await client.get("/api/v1/agent_spans/orphan-span")).json()["details"]
    assert orphan["orphaned"] is False
    for _ in range(2):
        assert (await _bulk(client, items)).content == full.content
        assert (await _bulk(client, items, MINIMAL)).content == minimal.content
    first = full.json()["outputs"]
    for item in items:
        details = {**item, "id": "different", "payload": {"other": True}}
        del details["_type"]
        single = await client.post("/api/v1/agent_spans", json={"details": details})
        assert single.status_code == 200, single.text
        assert single.json() == first[item["idempotency_key"]]
    stored = _stored_keys(server)
    if stored is not None:
        # Rows only for the answers a span cannot stand for.
        assert stored >= {"c-orphan-span", "c-open-span", "c-not-this-one"}
        assert not stored & {"c-root-span", "c-child-span", "c-elsewhere", "c-later-span"}


@pytest.mark.parametrize("stored", [40, 400])
async def test_many_keys_replay_among_stored_ones(
    api: Api, client: httpx.AsyncClient, stored: int
) -> None:
    """A request of stored and new keys whose range holds few (40) or many (400, more than
    the SQLite range look-up reads) other stored spans and rows: the stored keys replay
    (spans standing for their keys, rows of keys naming other ids, a row of an open span)
    and only the new ones are created; the key c-<id> of a span made under another key is
    new, and collides with the stored id (409)."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    made = [_keyed(iid, f"many-{n:04d}") for n in range(stored)]
    made[1] = _keyed(iid, "many-0001", key="c-many-0001-x")  # a row, its key in the range
    made[2] = _keyed(iid, "many-0002", status="active", result_payload=None)  # a row
    for start in range(0, stored, 100):
        await _bulk(client, made[start : start + 100])
    old = [made[0], made[1], made[2], made[stored // 2], made[-1]]
    new = [_keyed(iid, f"many-{n:04d}-new") for n in range(0, stored, stored // 20)]
    items = [*old[:3], *new, *old[3:], _keyed(iid, "many-0001")]
    first = (await _bulk(client, old)).json()["outputs"]  # their replays
    outputs = (await _bulk(client, items)).json()["outputs"]
    assert list(outputs) == [item["idempotency_key"] for item in items]
    assert outputs["c-many-0001"]["code"] == "conflict"
    for item in old:
        assert outputs[item["idempotency_key"]] == first[item["idempotency_key"]]
    for item in new:
        assert outputs[item["idempotency_key"]]["details"]["id"] == item["id"]
    assert len(await _stored_ids(client, iid)) == stored + len(new)
    assert (await _bulk(client, items)).json()["outputs"] == outputs


async def test_keyed_creates_replay_among_keys_of_other_forms(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Keys c-<id> between keys of other forms, below and above "c-" (the request's keys
    span more than the c- keys on SQLite): the stored spans still answer for theirs."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    spans = [_keyed(iid, f"kept-span-{n:02d}") for n in range(20)]
    first = (await _bulk(client, spans)).json()["outputs"]
    around = [_keyed(iid, "low-span", key="b-zz-low-key"), *spans,
              _keyed(iid, "high-span", key="d-zz-high-key")]  # fmt: skip
    outputs = (await _bulk(client, around)).json()["outputs"]
    for item in spans:
        assert outputs[item["idempotency_key"]] == first[item["idempotency_key"]]
    assert outputs["b-zz-low-key"]["details"]["id"] == "low-span"
    assert outputs["d-zz-high-key"]["details"]["id"] == "high-span"


async def test_a_keyed_look_up_finds_only_the_create_that_used_the_key(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A span made under another key does not answer for c-<id>: that key is new, and its
    create collides with the stored id (409) as before."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    made = await _bulk(client, [_keyed(iid, "span-aaa", key="plain-key-1")])
    assert made.json()["outputs"]["plain-key-1"]["status"] == "success"
    again = (await _bulk(client, [_keyed(iid, "span-aaa")])).json()["outputs"]
    assert again["c-span-aaa"]["code"] == "conflict"
    # Another action's key of the same text is another key.
    finish = await client.post(
        "/api/v1/agent_spans/span-aaa/finish", json={"idempotency_key": "c-span-aaa"}
    )
    assert finish.status_code == 409, finish.text


async def test_answers_stored_after_their_spans_were_written(
    api: Api, client: httpx.AsyncClient
) -> None:
    """An item after the creates that writes in a savepoint writes the buffered spans
    first; their answers are then kept as rows, and replay the same."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    items = [
        _keyed(iid, "before-one"),
        _keyed(iid, "before-two", parent_span_id="before-one"),
        {"_type": "agent_instances/finish", "idempotency_key": "finish-instance-1",
         "agent_instance_id": iid, "status": "complete"},
        _keyed(iid, "after-one"),
    ]  # fmt: skip
    first = await _bulk(client, items)
    assert {out["status"] for out in first.json()["outputs"].values()} == {"success"}
    assert (await _bulk(client, items)).content == first.content
    for span_id in ("before-one", "before-two", "after-one"):
        details = {**_keyed(iid, span_id, payload={"x": 1})}
        del details["_type"]
        single = await client.post("/api/v1/agent_spans", json={"details": details})
        assert single.status_code == 200, single.text
        assert single.json()["details"]["payload"] == {"q": span_id}


async def test_keyed_creates_written_again_without_buffering(
    api: Api, client: httpx.AsyncClient, server: LocalServer
) -> None:
    """A request whose buffered insert collides runs again unbuffered: the creates before
    the taken id are written one by one, the fast path's still standing for their keys
    (no row on SQLite), and replay byte for byte in bulk and at the single endpoint."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    await _bulk(client, [_keyed(iid, "taken-spn", key="other-key-1")])
    items = [_keyed(iid, "first-spn"), _keyed(iid, "second-sp", parent_span_id="first-spn"),
             _keyed(iid, "taken-spn"), _keyed(iid, "never-run")]  # fmt: skip
    for headers in (MINIMAL, None):
        outputs = (await _bulk(client, items, headers)).json()["outputs"]
        assert list(outputs) == ["c-first-spn", "c-second-sp", "c-taken-spn"]
        assert outputs["c-taken-spn"]["code"] == "conflict"
    assert await _stored_ids(client, iid) == ["first-spn", "second-sp", "taken-spn"]
    first = (await _bulk(client, items[:2])).content
    assert (await _bulk(client, items[:2])).content == first
    for item in items[:2]:
        details = {**item, "payload": {"changed": True}}
        del details["_type"]
        single = await client.post("/api/v1/agent_spans", json={"details": details})
        assert single.status_code == 200, single.text
        assert single.json() == orjson.loads(first)["outputs"][item["idempotency_key"]]
    stored = _stored_keys(server)
    if stored is not None:  # the first item read the instance (general path): a row
        assert "c-second-sp" not in stored


async def test_orphan_and_its_parent_in_one_request(api: Api, client: httpx.AsyncClient) -> None:
    """A child sent before its parent in the same request, nothing written in between, is
    adopted (SQLite wrote both in one go and looked for stored orphans only)."""
    iid = (await api.register(agent_schema_version=SCHEMA))["id"]
    items = [_keyed(iid, "first-one"), _keyed(iid, "kid-span", parent_span_id="mom-span"),
             _keyed(iid, "mom-span")]  # fmt: skip
    outputs = (await _bulk(client, items)).json()["outputs"]
    assert outputs["c-kid-span"]["details"]["orphaned"] is True
    kid = (await client.get("/api/v1/agent_spans/kid-span")).json()["details"]
    assert kid["orphaned"] is False
