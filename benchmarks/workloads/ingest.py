"""Server ingest: spans/s the server stores, with the client's cost kept out.

Request bodies are built before the clock starts, and a minimal keep-alive HTTP/1.1
client on raw asyncio streams sends them over several connections (no httpx per-request
work on the measured path). A 2xx answer means the items are committed: the server
answers a write after its transaction commits.

Modes: ``bulk`` (POST /api/v1/bulk, 1000 merged span creates per request, as our SDK
sends them, answered in full), ``bulk_minimal`` (the same with ``Prefer: return=minimal``),
``bulk_sdk`` (the same with the preferences our SDK sends, ``Prefer: return=minimal,
omit=success``: only what did not plainly succeed is listed) and ``single`` (POST
/api/v1/agent_spans, one span per request).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

import _wl


def _register(api_url: str, token: str) -> str:
    body = json.dumps(_wl.register_body("bench-ingest")).encode()
    request = urllib.request.Request(
        f"{api_url}/api/v1/agent_instance/register",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        instance_id: str = json.loads(response.read())["details"]["id"]
    return instance_id


_PREFER = {
    "bulk_minimal": "Prefer: return=minimal\r\n",
    "bulk_sdk": "Prefer: return=minimal, omit=success\r\n",
}


def _span(instance_id: str, prefix: str, index: int) -> dict[str, Any]:
    return {
        "id": f"{prefix}{index:08d}",
        "agent_instance_id": instance_id,
        "schema_name": _wl.SPAN_TYPE,
        "status": "complete",
        "payload": _wl.PARAMS,
        "result_payload": _wl.RESULT,
        "started_at": "2026-01-01T00:00:00.000000+00:00",
        "finished_at": "2026-01-01T00:00:00.001000+00:00",
        # Our SDK's key of a span's create: "c-" and the span id.
        "idempotency_key": f"c-{prefix}{index:08d}",
    }


def _request(host: str, path: str, token: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def _connection(host: str, port: int, requests: list[bytes], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while requests:
            writer.write(requests.pop())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status >= 300:
                errors.append(str(status))
    finally:
        writer.close()


async def main() -> None:
    a = _wl.args()
    api_url: str = a["api_url"]
    token: str = a["token"]
    mode: str = a["mode"]
    spans: int = a["spans"]
    connections: int = a["connections"]
    batch: int = a.get("batch", 1000)
    parts = urlsplit(api_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    instance_id = _register(api_url, token)
    prefix = uuid.uuid4().hex[:12]
    requests: list[bytes] = []
    if mode == "single":
        for i in range(spans):
            body = json.dumps({"details": _span(instance_id, prefix, i)}).encode()
            requests.append(_request(host, "/api/v1/agent_spans", token, body))
    else:
        extra = _PREFER.get(mode, "")
        for start in range(0, spans, batch):
            items = [
                {"_type": "agent_spans/create", **_span(instance_id, prefix, i)}
                for i in range(start, min(start + batch, spans))
            ]
            body = json.dumps({"items": items}).encode()
            requests.append(_request(host, "/api/v1/bulk", token, body, extra))
    requests.reverse()
    errors: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, requests, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    stored = _wl.span_count(api_url, token, instance_id)
    _wl.emit(
        {
            "mode": mode,
            "spans": spans,
            "stored": stored,
            "connections": connections,
            "seconds": elapsed,
            "spans_per_s": stored / elapsed,
            "errors": len(errors),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
