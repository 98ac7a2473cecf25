"""``POST /v1/traces`` through the lean routes (``api/lean.py``) answers exactly as the
FastAPI route does: the same exports (protobuf and JSON, compressed or not, a resend,
partial success) and refusals (authentication, the rate limit, media type and encoding,
body caps, undecodable bodies) sent to two fresh servers, one with the lean route
switched off, give the same status, headers and body, and the same spans are stored."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.lean_support import count_lean_answers
from tests.otel.support import otlp_protobuf, record_trace

from prefactor_server.api import lean, otlp
from prefactor_server.testing import LocalServer

TOKEN = "otlp-lean-token-1"
ROUTE = ("POST", otlp.PATH)
CAP = 16384


def _json_export(trace: str, spans: int, bad: int = 0) -> bytes:
    good = [
        {"traceId": trace, "spanId": f"{n + 1:016x}", "name": f"step {n}",
         "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225601000000000",
         "attributes": [{"key": "llm.token_count.prompt", "value": {"intValue": str(n)}}]}
        for n in range(spans)
    ]  # fmt: skip
    refused = [{"traceId": "0" * 32, "spanId": "1" * 16, "name": "no trace"}] * bad
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": good + refused}]}]})


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


Requests = list[tuple[dict[str, str], bytes | None]]


def _requests(protobuf: bytes) -> Requests:
    """(headers, body) of each request; the body None means a chunked body over the cap."""
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip"}
    pb = {**auth, "Content-Type": "application/x-protobuf"}
    js = {**auth, "Content-Type": "application/json; charset=utf-8"}
    export = _json_export("a" * 32, 3)
    return [
        (pb, protobuf),
        (pb, protobuf),  # a resend: nothing stored twice
        ({**pb, "Content-Encoding": "gzip"}, gzip.compress(protobuf)),
        (js, export),
        ({**js, "Content-Encoding": "deflate"}, zlib.compress(_json_export("b" * 32, 2))),
        (js, _json_export("c" * 32, 2, bad=2)),  # partial success
        (pb, _json_export("d" * 32, 1, bad=1)),  # the same, refused, in protobuf
        (pb, b"\xff\xff not protobuf"),
        (js, b"{not json"),
        ({**pb, "Content-Type": "text/plain"}, protobuf),
        ({**pb, "Content-Encoding": "br"}, protobuf),
        ({**pb, "Content-Encoding": "gzip"}, b"not gzip"),
        ({**pb, "Content-Encoding": "gzip"}, gzip.compress(b"\0" * (CAP * 4))),  # a small bomb
        (pb, b"\0" * (CAP + 1)),  # over the body cap (Content-Length)
        (pb, None),  # over the body cap, chunked
        ({"Content-Type": "application/x-protobuf"}, protobuf),  # no token
        ({**pb, "Authorization": "Bearer "}, protobuf),
        *[({**pb, "Authorization": f"Bearer wrong-{n}"}, protobuf) for n in range(10)],
        (pb, protobuf),  # the token worked from this address before: still accepted
        ({**pb, "Authorization": "Bearer wrong-again"}, protobuf),  # 429 with Retry-After
    ]


async def _answers(
    path: Path, requests: Requests
) -> tuple[list[tuple[int, dict[str, str], bytes]], list[Any]]:
    server = LocalServer(path, token=TOKEN, max_body_bytes=CAP)
    answers = []
    async with server, server.client() as client:
        bare = httpx.AsyncClient(transport=server.transport, base_url=server.api_url)
        async with bare:
            for headers, body in requests:
                content = _chunks(b"\0" * (CAP * 2)) if body is None else body
                response = await bare.post(otlp.PATH, content=content, headers=headers)
                answers.append((response.status_code, dict(response.headers), response.content))
        listed = await client.get("/api/v1/agent_spans", params={"pagination[page_size]": 100})
        assert listed.status_code == 200, listed.text
        stored = sorted(
            (span["id"], span["status"], span["payload"], span["result_payload"])
            for span in listed.json()["summaries"]
        )
    return answers, stored


@pytest.fixture(name="served")
def fixture_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the requests the lean route answers."""
    return count_lean_answers(monkeypatch, ROUTE)


async def test_lean_otlp_route_answers_as_fastapi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: list[str]
) -> None:
    trace = record_trace()
    requests = _requests(otlp_protobuf(trace))
    fast, fast_stored = await _answers(tmp_path / "lean.db", requests)
    assert len(served) == len(requests)
    monkeypatch.delitem(lean.ROUTES, ROUTE)
    slow, slow_stored = await _answers(tmp_path / "fastapi.db", requests)
    assert len(served) == len(requests)
    assert fast == slow
    assert fast_stored == slow_stored
    assert len(fast_stored) == len(trace) + 3 + 2 + 2
    statuses = [status for status, _, _ in fast]
    assert statuses == [200, 200, 200, 200, 200, 200, 400, 400, 400, 415, 415, 400, 413, 413,
                        413, 401, 401, *[401] * 10, 200, 429]  # fmt: skip
    assert orjson.loads(fast[5][2])["partialSuccess"]["rejectedSpans"] == "2"
    assert fast[-1][1]["retry-after"]
