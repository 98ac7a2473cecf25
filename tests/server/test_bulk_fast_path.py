"""The bulk fast path of terminal span creates (``domain/span_batch.py``) answers and stores
exactly what the general path does: the same requests run through both (the fast path
switched off for one) give byte-equal outputs and equal stored spans, on both backends,
for good items and for every kind of bad one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from prefactor_server import _time
from prefactor_server.domain.span_batch import MergedCreates

if TYPE_CHECKING:
    from conftest import Api

NOW = "2026-05-04T03:02:01.123456Z"
LLM = {"model": "m-1", "prompt": "Why?"}
DEEP: Any = "bottom"
for _ in range(140):
    DEEP = {"d": DEEP}


def _nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (itself the first)."""
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return dict(value)


# Many brackets, yet only three levels deep (some brackets inside strings).
WIDE = {"messages": [{"role": "user", "content": "{[" * 40} for _ in range(150)]}


def _item(key: str, instance: str, **fields: Any) -> dict[str, Any]:
    return {"_type": "agent_spans/create", "idempotency_key": key, "agent_instance_id": instance,
            "schema_name": "agent:llm", "status": "complete", "payload": LLM,
            "result_payload": {"response": "because"}, **fields}  # fmt: skip


def _requests(p: str, i: str, j: str) -> list[list[dict[str, Any]]]:
    """Request bodies' items; ``p`` prefixes ids and keys, ``i`` and ``j`` are instances."""
    stamp = {"started_at": "2026-01-01T00:00:00.000001Z", "finished_at": "2026-01-01T00:00:01Z"}
    return [
        [_item(f"{p}key-z", i, id=f"{p}-z")],
        [
            _item(f"{p}key-a", i, id=f"{p}-a", **stamp),
            _item(
                f"{p}key-b",
                i,
                id=f"{p}-b",
                parent_span_id=f"{p}-a",
                schema_name="agent:retrieval",
                status="failed",
                started_at="2026-01-01T00:00:00.5+00:00",
            ),
            _item(
                f"{p}key-c",
                i,
                id=f"{p}-c",
                started_at="2026-01-01T02:00:00.000000+02:00",
                finished_at="2026-01-01T02:00:00.250000+02:00",
            ),
            _item(f"{p}key-d", i, id=f"{p}-d", status="cancelled", result_payload={"error": 1}),
            {
                "_type": "agent_spans/create",
                "idempotency_key": f"{p}key-e",
                "details": _item("unused-key", i, id=f"{p}-e", parent_span_id=f"{p}-z"),
            },
            _item(f"{p}key-f", i, id=f"{p}-f", status="active", result_payload=None),
            _item(f"{p}key-g", i, id=f"{p}-g", parent_span_id=f"{p}-not-yet"),
            _item(
                f"{p}key-h",
                i,
                id=f"{p}-h",
                payload={**LLM, "z": [1, 2**63, {"é": None}], "a": -0.0},
                result_payload={"response": "✓", "n": 2**64 - 1},
            ),
            _item(
                f"{p}key-i",
                i,
                id=f"{p}-i",
                parent_span_id=f"{p}-f",
                payload=None,
                schema_name="agent:retrieval",
            ),
            _item(f"{p}key-j", j, id=f"{p}-j"),
            _item(f"{p}key-l", j, id=f"{p}-l", parent_span_id=f"{p}-j", extra={"x": [[[1]]]}),
            _item(f"{p}key-m", i, id=f"{p}-m", summary="ignored", started_at=None),
            # As deep as storable (128 levels below the item), and wide.
            _item(f"{p}key-k", i, id=f"{p}-k", payload={**LLM, "deep": _nested(127)}),
            _item(
                f"{p}key-n", i, id=f"{p}-n", payload={**LLM, **WIDE},
                result_payload={"response": "r", **WIDE},
            ),
        ],
        # The date and time of a timestamp found valid just before, with a bad fraction.
        [
            _item(f"{p}key-ap", i, id=f"{p}-ap"),
            _item(f"{p}key-aq", i, id=f"{p}-aq", started_at="2026-01-01T00:00:07.000001+00:00"),
            _item(f"{p}key-ar", i, id=f"{p}-ar", started_at="2026-01-01T00:00:07.0000x1+00:00"),
        ],
    ]  # fmt: skip


def _bad_items(p: str, i: str, j: str) -> list[dict[str, Any]]:
    """Items the fast path must leave to the general path (most of them answer 422 or 409)."""
    return [
        _item(f"{p}key-o", i, payload={"model": "m"}),
        _item(f"{p}key-p", i, result_payload={"response": 5}),
        _item(f"{p}key-q", i, id=f"{p}-q", status="failed", result_payload={"response": 5}),
        _item(f"{p}key-r", i, parent_span_id=f"{p}-j"),
        _item(f"{p}key-s", i, id=f"{p}-a"),
        _item(f"{p}key-t", i, id=f"{p}-t", started_at="yesterday"),
        _item(f"{p}key-u", i, id=f"{p}-u", finished_at="2026-01-01T00:00:00.000000"),
        _item(f"{p}key-v", i, id=f"{p}-v", finished_at="2026-02-30T00:00:00.000000Z"),
        _item(f"{p}key-w", i, id=f"{p}-w", payload={**LLM, "deep": DEEP}),
        _item(f"{p}key-x", i, id=f"{p}-x", result_payload={"response": "r", "n": 2**64}),
        _item(f"{p}key-y", i, id=f"{p}-y", schema_name="agent:unknown"),
        _item(f"{p}key-aa", i, id=f"{p}-aa", status="done"),
        _item(f"{p}key-ab", i, id="bad id!"),
        _item(f"{p}key-ac", i, id=f"{p}-ac", payload=[1]),
        _item(f"{p}key-ad", i, id=f"{p}-ad", result_payload="text"),
        _item(f"{p}key-ae", i, id=f"{p}-ae", schema_name=""),
        _item(f"{p}key-af", f"{p}-no-instance", id=f"{p}-af"),
        _item(f"{p}key-ag", i, id=f"{p}-ag", agent_instance_id=[i]),
        _item(f"{p}key-ah", i, id=f"{p}-ah", parent_span_id=7),
        _item(f"{p}key-ai", i, id=f"{p}-ai", status=["complete"]),
        _item(f"{p}key-aj", i, id=f"{p}-aj", started_at=17),
        _item(f"{p}key-ak", i, id=f"{p}-ak", schema_name="agent:retrieval", status="pending"),
        # One level too deep: in the payload, in a wrapped item's payload, in the result,
        # in a field the fast path does not know.
        _item(f"{p}key-al", i, id=f"{p}-al", payload={**LLM, "deep": _nested(128)}),
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"{p}key-am",
            "details": _item("unused-key", i, id=f"{p}-am", payload={**LLM, "deep": _nested(127)}),
        },
        _item(
            f"{p}key-an", i, id=f"{p}-an", result_payload={"response": "r", "deep": _nested(128)}
        ),
        _item(f"{p}key-ao", i, id=f"{p}-ao", extra={"deep": _nested(128)}),
    ]


async def _run(
    client: httpx.AsyncClient, api: Api, prefix: str, headers: dict[str, str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Send the requests (twice: the second time all replays) and read back the spans;
    everything that names this run's instances or prefix is normalised."""
    i, j = (await api.register())["id"], (await api.register())["id"]
    texts = []
    requests = _requests(prefix, i, j)
    # Each bad item between two good ones: the first reads the instance into the
    # request's cache (so the fast path sees the bad item), the last is never run.
    for n, bad in enumerate(_bad_items(prefix, i, j)):
        before = _item(f"{prefix}key-{n}-before", i, id=f"{prefix}-{n}-before")
        after = _item(f"{prefix}key-{n}-after", i, id=f"{prefix}-{n}-after")
        requests.append([before, bad, after])
    # A terminated instance: every create on it answers with control (the general path).
    done = await api.register()
    stop = await client.post(f"/api/v1/agent_instance/{done['id']}/terminate", json={"reason": "r"})
    assert stop.status_code == 200, stop.text
    requests.append([_item(f"{prefix}key-ctl", done["id"], id=f"{prefix}-ctl")])
    for _ in range(2):
        for items in requests:
            response = await client.post("/api/v1/bulk", json={"items": items}, headers=headers)
            assert response.status_code == 200, response.text
            texts.append(response.text)
    spans = []
    for instance in (i, j):
        params: dict[str, Any] = {"agent_instance_id": instance, "pagination[page_size]": 100}
        listed = await client.get("/api/v1/agent_spans", params=params)
        spans.extend(listed.json()["summaries"])

    def normal(text: str) -> str:
        for name, value in ((i, "<I>"), (j, "<J>"), (done["id"], "<T>"), (prefix, "<P>")):
            text = text.replace(name, value)
        return text

    stored = [orjson.loads(normal(orjson.dumps(span).decode())) for span in spans]
    return [normal(text) for text in texts], sorted(stored, key=lambda span: span["id"])


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
async def test_fast_path_answers_as_the_general_path(
    api: Api, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, minimal: bool
) -> None:
    monkeypatch.setattr(_time, "now", lambda: NOW)
    headers = {"Prefer": "return=minimal"} if minimal else {}
    fast = MergedCreates.create
    taken: list[str] = []

    def counted(
        self: MergedCreates, item: dict[str, Any], key: str
    ) -> tuple[bytes | None, bytes] | None:
        done = fast(self, item, key)
        if done is not None:
            taken.append(item["idempotency_key"])
        return done

    monkeypatch.setattr(MergedCreates, "create", lambda self, item, key: None)
    general = await _run(client, api, "gen0", headers)
    assert not taken
    monkeypatch.setattr(MergedCreates, "create", counted)
    quick = await _run(client, api, "fst0", headers)
    assert quick == general
    # The fast path took every valid terminal create on a live instance already read in
    # the request (a replay reads nothing), and nothing else. "key-s" takes a stored id:
    # the buffered insert collides at the end of the request, which runs again without
    # buffering, and then the general path answers 409 (the first "4-after" was in the
    # first try; the second pass runs key-s through the general path, which reads the
    # instance, as 4-before is a replay).
    assert [key.removeprefix("fst0key-") for key in taken] == [
        "b", "c", "d", "e", "h", "i", "l", "m", "k", "n", "aq", "q", "2-after", "s", "4-after",
        "21-after", "4-after",
    ]  # fmt: skip
    assert len(quick[1]) == 47


async def test_span_types_are_those_of_each_items_instance(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Consecutive creates of the same span type name on instances of different schemas:
    each is checked against its own instance's schema (the fast path remembers the last
    instance and type it took, and only for that instance)."""
    i = (await api.register())["id"]
    other = {"external_identifier": "other-schema", "span_schemas": {"agent:other": {}}}
    k = (await api.register(agent_schema_version=other))["id"]
    # The first item on each instance reads it (the general path), the next ones on it
    # may take the fast path.
    items = [_item("mixed-key-1", i, id="mixed-1"), _item("mixed-key-2", i, id="mixed-2"),
             _item("mixed-key-3", k, id="mixed-3", schema_name="agent:other"),
             _item("mixed-key-4", k, id="mixed-4", schema_name="agent:other"),
             _item("mixed-key-5", i, id="mixed-5"), _item("mixed-key-6", k, id="mixed-6"),
             _item("mixed-key-7", i, id="mixed-7")]  # fmt: skip
    outputs = (await client.post("/api/v1/bulk", json={"items": items})).json()["outputs"]
    assert list(outputs) == [f"mixed-key-{n}" for n in range(1, 7)]
    assert {outputs[f"mixed-key-{n}"]["status"] for n in range(1, 6)} == {"success"}
    assert outputs["mixed-key-6"]["status"] == "error"
    assert "agent:llm" in outputs["mixed-key-6"]["message"]
