"""A small OpenAI-compatible chat completions server on 127.0.0.1 for the instrumentation
tests: plain answers, streamed answers (SSE), tool calls, and errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

MODEL = "fake-gpt"
ANSWER = "Rain, 12°C."
USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1767225600,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        if delta or finish
        else [],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        request = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        last = request["messages"][-1].get("content") or ""
        if "fail" in last:
            self._json(
                400,
                {"error": {"message": "the model refused", "type": "invalid_request_error"}},
            )
        elif request.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(_chunk({"role": "assistant", "content": ""}))
            for word in ANSWER.split(" "):
                self.wfile.write(_chunk({"content": word + " "}))
            self.wfile.write(_chunk({}, "stop"))
            if (request.get("stream_options") or {}).get("include_usage"):
                self.wfile.write(_chunk({}, None, USAGE))
            self.wfile.write(b"data: [DONE]\n\n")
        elif request.get("tools"):
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
            self._json(
                200,
                _completion(
                    {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
                ),
            )
        else:
            self._json(200, _completion({"role": "assistant", "content": ANSWER}, "stop"))


@contextmanager
def fake_openai() -> Iterator[str]:
    """Serve the fake API on a free port of 127.0.0.1; yield its base URL (``.../v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
