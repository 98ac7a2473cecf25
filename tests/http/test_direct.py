"""The client's direct HTTP/1.1 path for POSTs, against real sockets on 127.0.0.1.

A small asyncio server records every request's bytes and answers what each test
scripts, so the tests see what goes over the wire: heads, bodies, connections.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from prefactor_http import (
    HttpClientConfig,
    PrefactorHttpClient,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorTimeoutError,
    PrefactorTransportError,
    PrefactorValidationError,
)

TOKEN = "pf_direct_token"
OK = b'{"status":"success"}'

pytestmark = pytest.mark.timeout(30)


def answer(
    body: bytes = OK, status: str = "200 OK", *, headers: tuple[str, ...] = (), length: bool = True
) -> bytes:
    """An HTTP/1.1 answer's bytes."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Received:
    """A request as it arrived: its head lines, body, and which connection carried it."""

    line: str
    headers: dict[str, str]
    body: bytes
    connection: int
    names: list[str] = field(default_factory=list)  # every header name sent, lower case


Script = Callable[[Received], bytes | None]
"""What the server answers to a request: bytes to send (None: close without answering)."""


@dataclass
class RecordingServer:
    """An HTTP/1.1 server on 127.0.0.1 that records requests and answers from ``script``."""

    script: Script = lambda _request: answer()
    close_after_answer: bool = False
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                line, *rest = head[:-4].decode().split("\r\n")
                headers = {}
                for item in rest:
                    name, _, value = item.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                names = [item.partition(":")[0].strip().lower() for item in rest]
                request = Received(line, headers, body, number, names)
                self.requests.append(request)
                self.arrived.set()
                out = self.script(request)
                if out is None:
                    return
                if out == b"hold":
                    await self.hold.wait()
                    return
                writer.write(out)
                await writer.drain()
                if self.close_after_answer:
                    return
        finally:
            writer.close()
            await writer.wait_closed()
            self.closed.set()


@pytest.fixture(name="server")
async def fixture_server() -> AsyncIterator[RecordingServer]:
    recording = RecordingServer()
    listener = await asyncio.start_server(recording.handle, "127.0.0.1", 0)
    recording.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield recording
        recording.hold.set()


def config(url: str, **options: float) -> HttpClientConfig:
    return HttpClientConfig(api_url=url, api_token=TOKEN, **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def test_a_post_goes_out_whole_with_the_clients_headers(server: RecordingServer) -> None:
    async with PrefactorHttpClient(config(server.url + "/base/")) as client:
        data = await client.request(
            "POST", "/api/v1/bulk", json_data={"items": []}, idempotency_key="key-1"
        )
    assert data == {"status": "success"}
    (request,) = server.requests
    assert request.line == "POST /base/api/v1/bulk HTTP/1.1"
    assert request.body == b'{"items":[]}'
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == str(len(request.body))
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["x-prefactor-sdk"].startswith("prefactor-http@")
    assert request.headers["accept-encoding"] == "identity"


async def test_requests_share_one_kept_alive_connection(server: RecordingServer) -> None:
    async with PrefactorHttpClient(config(server.url)) as client:
        for n in range(3):
            await client.request("POST", "/api/v1/x", content=b'{"n":%d}' % n, retry=False)
    assert [r.connection for r in server.requests] == [1, 1, 1]


async def test_concurrent_requests_open_their_own_connections(server: RecordingServer) -> None:
    async with PrefactorHttpClient(config(server.url)) as client:
        await asyncio.gather(
            *(client.request("POST", "/api/v1/x", content=b"{}", retry=False) for _ in range(3))
        )
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert server.connections == 3
    assert server.requests[-1].connection in (1, 2, 3)


async def test_a_connection_the_server_closes_is_not_reused(server: RecordingServer) -> None:
    server.script = lambda _r: answer(headers=("Connection: close",))
    server.close_after_answer = True
    async with PrefactorHttpClient(config(server.url)) as client:
        for _ in range(2):
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert [r.connection for r in server.requests] == [1, 2]


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"a":\r\n3;ext=1\r\n[1]\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n',
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer(b'{"a":[1]}'),
        answer(gzip.compress(b'{"a":[1]}'), headers=("Content-Encoding: gzip",)),
        answer(zlib.compress(b'{"a":[1]}'), headers=("Content-Encoding: deflate",)),
        # Raw deflate data without zlib's framing, which some servers send (httpx reads it).
        answer(_raw_deflate(b'{"a":[1]}'), headers=("Content-Encoding: deflate",)),
    ],
    ids=["chunked", "informational-head-first", "gzip", "deflate", "raw-deflate"],
)
async def test_answers_are_read_in_each_framing(server: RecordingServer, raw: bytes) -> None:
    server.script = lambda _r: raw
    async with PrefactorHttpClient(config(server.url)) as client:
        assert await client.request("POST", "/api/v1/x", content=b"{}", retry=False) == {"a": [1]}
        # The connection stays usable after a complete answer.
        assert await client.request("POST", "/api/v1/x", content=b"{}", retry=False) == {"a": [1]}
    assert server.connections == 1


async def test_an_answer_without_a_length_ends_with_its_connection(server: RecordingServer) -> None:
    server.script = lambda _r: answer(b'{"a":2}', length=False)
    server.close_after_answer = True
    async with PrefactorHttpClient(config(server.url)) as client:
        for _ in range(2):
            assert await client.request("POST", "/api/v1/x", content=b"{}", retry=False) == {"a": 2}
    assert server.connections == 2


async def test_error_statuses_and_retry_after_as_through_httpx(server: RecordingServer) -> None:
    server.script = lambda _r: answer(
        b'{"code":"invalid_request","message":"bad field","errors":{"x":["bad"]}}',
        "422 Unprocessable Entity",
    )
    async with PrefactorHttpClient(config(server.url)) as client:
        with pytest.raises(PrefactorValidationError) as caught:
            await client.request("POST", "/api/v1/x", content=b"{}")
    assert caught.value.status_code == 422
    assert caught.value.errors == {"x": ["bad"]}

    server.script = lambda _r: answer(b'{"code":"busy"}', "503 Busy", headers=("Retry-After: 7",))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    options = {"max_retries": 2, "max_retry_delay": 60.0}
    async with PrefactorHttpClient(config(server.url, **options), sleep=sleep) as client:
        with pytest.raises(PrefactorRetryExhaustedError) as exhausted:
            await client.request("POST", "/api/v1/x", content=b"{}")
    assert exhausted.value.attempts == 3
    assert waits == [7.0, 7.0]


async def test_a_streamed_body_goes_out_in_its_pieces(server: RecordingServer) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"items":', b"[1,2,3]", b"}"):
            yield piece

    async with PrefactorHttpClient(config(server.url)) as client:
        await client.request(
            "POST", "/api/v1/x", content=pieces(), headers={"Content-Length": "17"}, retry=False
        )
    assert server.requests[0].body == b'{"items":[1,2,3]}'
    assert server.requests[0].headers["content-length"] == "17"


@pytest.mark.parametrize("declared", ["16", "18"])
async def test_a_streamed_body_must_match_its_length(
    server: RecordingServer, declared: str
) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"items":[1,2,3]}'

    async with PrefactorHttpClient(config(server.url)) as client:
        with pytest.raises(PrefactorTransportError, match="Content-Length"):
            await client.request(
                "POST",
                "/api/v1/x",
                content=pieces(),
                headers={"Content-Length": declared},
                retry=False,
            )


async def test_failures_map_to_the_clients_errors(server: RecordingServer) -> None:
    server.script = lambda _r: None  # closes without answering
    async with PrefactorHttpClient(config(server.url)) as client:
        with pytest.raises(PrefactorTransportError, match="without answering") as closed:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        assert isinstance(closed.value.cause, httpx.RemoteProtocolError)

        server.script = lambda _r: b"SMTP ready\r\n\r\n"
        with pytest.raises(PrefactorTransportError, match="invalid HTTP"):
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)

        server.script = lambda _r: answer(b"not deflate", headers=("Content-Encoding: deflate",))
        with pytest.raises(PrefactorTransportError) as undecodable:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        assert isinstance(undecodable.value.cause, httpx.DecodingError)

        server.script = lambda _r: b"hold"  # never answers
    async with PrefactorHttpClient(config(server.url, request_timeout=0.2)) as client:
        with pytest.raises(PrefactorTimeoutError) as timed_out:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        assert isinstance(timed_out.value.cause, httpx.ReadTimeout)


async def test_a_refused_connection_is_a_transport_error() -> None:
    listener = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with PrefactorHttpClient(config(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(PrefactorTransportError) as refused:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert isinstance(refused.value.cause, httpx.ConnectError)


async def test_a_header_that_would_split_the_head_is_refused(server: RecordingServer) -> None:
    async with PrefactorHttpClient(config(server.url)) as client:
        with pytest.raises(PrefactorTransportError, match=r"(?i)illegal header"):
            await client.request(
                "POST", "/api/v1/x", content=b"{}", headers={"X-Evil": "a\r\nHost: b"}, retry=False
            )
    assert server.requests == []


async def test_a_proxy_in_the_environment_is_used(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx sends the request to the proxy in absolute form: the direct path stands aside.
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("NO_PROXY", "")
    async with PrefactorHttpClient(config("http://prefactor.invalid")) as client:
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert server.requests[0].line == "POST http://prefactor.invalid/api/v1/x HTTP/1.1"


async def test_a_given_transport_gets_the_posts(server: RecordingServer) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"via": "transport"})

    transport = httpx.MockTransport(handler)
    async with PrefactorHttpClient(config(server.url), transport=transport) as client:
        assert await client.request("POST", "/api/v1/x", content=b"{}") == {"via": "transport"}
    assert len(seen) == 1
    assert server.requests == []


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(name="certificate")
def fixture_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - .ci/system-deps installs it
        pytest.fail("openssl is needed for the TLS tests (.ci/system-deps installs it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(name="tls_server")
async def fixture_tls_server(
    certificate: tuple[Path, Path],
) -> AsyncIterator[RecordingServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    recording = RecordingServer()
    listener = await asyncio.start_server(recording.handle, "127.0.0.1", 0, ssl=context)
    recording.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield recording


async def test_tls_verifies_the_server_against_the_trusted_certificates(
    tls_server: RecordingServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}"
    async with PrefactorHttpClient(config(url)) as client:
        with pytest.raises(PrefactorTransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert tls_server.requests == []

    # Trusted through the environment, as httpx reads it (SSL_CERT_FILE).
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with PrefactorHttpClient(config(url)) as client:
        assert await client.request("POST", "/api/v1/x", content=b"{}", retry=False) == {
            "status": "success"
        }
        # GETs go through httpx, with the same trust.
        tls_server.script = lambda _r: answer(b'{"pong":true}')
        assert await client.validate_token() == {"pong": True}
    assert [r.line.split()[0] for r in tls_server.requests] == ["POST", "GET"]
    assert json.loads(tls_server.requests[0].body) == {}


async def test_a_path_that_needs_escaping_goes_through_httpx(server: RecordingServer) -> None:
    async with PrefactorHttpClient(config(server.url)) as client:
        await client.request("POST", "/api/v1/agent_instance/a b/finish", content=b"{}")
    assert server.requests[0].line == "POST /api/v1/agent_instance/a%20b/finish HTTP/1.1"


async def test_a_connection_closed_while_idle_is_replaced(server: RecordingServer) -> None:
    # The server drops the connection after answering, without saying so (as a server
    # does when its keep-alive timeout passes): the next request still gets through, on
    # a new connection (found closed before use, or retried after the attempt failed).
    server.close_after_answer = True
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with PrefactorHttpClient(config(server.url), sleep=sleep) as client:
        await client.request("POST", "/api/v1/x", content=b"{}")
        await server.closed.wait()
        assert await client.request("POST", "/api/v1/x", content=b"{}") == {"status": "success"}
    assert [r.connection for r in server.requests] == [1, 2]
    assert len(waits) <= 1


async def test_a_cancelled_request_does_not_leave_its_connection_for_reuse(
    server: RecordingServer,
) -> None:
    server.script = lambda r: b"hold" if r.connection == 1 else answer()
    async with PrefactorHttpClient(config(server.url)) as client:
        first = asyncio.create_task(client.request("POST", "/api/v1/x", content=b"{}"))
        await server.arrived.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await client.request("POST", "/api/v1/x", content=b"{}") == {"status": "success"}
    assert [r.connection for r in server.requests] == [1, 2]


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_pause_is_awaited_as_each_answer_arrives(
    server: RecordingServer, through_httpx: bool
) -> None:
    answers = iter([answer(b'{"code":"busy"}', "503 Busy"), answer()])
    server.script = lambda _r: next(answers)
    pauses: list[int] = []

    async def pause() -> None:
        pauses.append(len(server.requests))

    async def sleep(_seconds: float) -> None:
        pass

    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with PrefactorHttpClient(config(server.url), transport=transport, sleep=sleep) as client:
        data = await client.request("POST", "/api/v1/x", content=b"{}", pause=pause)
    assert data == {"status": "success"}
    assert pauses == [1, 2]  # once per attempt, after its answer arrived


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_a_connection_with_an_unasked_answer_while_idle_is_not_reused(
    through_httpx: bool,
) -> None:
    # Some servers say why they drop an idle keep-alive connection (``408``) before
    # closing it: that answer belongs to no request, and the connection is not reused
    # (httpcore finds it readable while idle), so the next POST succeeds on a new one.
    idle = asyncio.Event()
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(answer())
        await writer.drain()
        if len(connections) == 1:
            await idle.wait()
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        writer.close()
        await writer.wait_closed()
        idle.set()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with listener, PrefactorHttpClient(config(url), transport=transport) as client:
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        idle.set()
        idle.clear()
        await idle.wait()  # the 408 is sent and the connection closed
        data = await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert data == {"status": "success"}
    assert connections == [1, 2]


def test_an_unasked_answer_the_loop_has_not_read_yet_is_seen_too() -> None:
    # The same, with the 408 still in the socket when the next POST starts (the loop
    # had no turn since it arrived): found there, as httpcore finds it.
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    idle, sent = threading.Event(), threading.Event()
    connections: list[int] = []

    def serve() -> None:
        for number in (1, 2):
            conn, _ = listener.accept()
            connections.append(number)
            with conn:
                received = b""
                while not received.endswith(b"{}"):
                    received += conn.recv(65536)
                conn.sendall(answer())
                if number == 1:
                    idle.wait(10)
                    conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
                    conn.shutdown(socket.SHUT_WR)
                    sent.set()

    async def main() -> dict[str, object]:
        async with PrefactorHttpClient(config(url)) as client:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
            idle.set()
            sent.wait(10)  # blocks the loop: what arrived stays in the socket
            return await client.request("POST", "/api/v1/x", content=b"{}", retry=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert asyncio.run(main()) == {"status": "success"}
    finally:
        idle.set()
        thread.join(10)
        listener.close()
    assert connections == [1, 2]


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_a_host_header_given_replaces_the_default(
    server: RecordingServer, through_httpx: bool
) -> None:
    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with PrefactorHttpClient(config(server.url), transport=transport) as client:
        await client.request(
            "POST", "/api/v1/x", content=b"{}", headers={"Host": "api.example"}, retry=False
        )
    assert server.requests[0].headers["host"] == "api.example"


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_extra_headers_never_replace_nor_double_the_clients_own(
    server: RecordingServer, through_httpx: bool
) -> None:
    # Header names are case-insensitive: "authorization" is the client's Authorization.
    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with PrefactorHttpClient(config(server.url), transport=transport) as client:
        await client.request(
            "POST",
            "/api/v1/x",
            content=b"{}",
            idempotency_key="key-1",
            headers={
                "authorization": "Bearer someone-else",
                "CONTENT-TYPE": "text/plain",
                "Idempotency-key": "key-2",
                "Prefer": "return=minimal",
            },
            retry=False,
        )
    (request,) = server.requests
    for own in ("authorization", "content-type", "idempotency-key"):
        assert request.names.count(own) == 1, own
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["prefer"] == "return=minimal"


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_an_answer_with_a_large_head_is_read(
    server: RecordingServer, through_httpx: bool
) -> None:
    # httpcore reads answer heads up to 100 KB (h11 alone stops at 16 KB).
    server.script = lambda _r: answer(headers=("X-Large: " + "a" * 80_000,))
    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with PrefactorHttpClient(config(server.url), transport=transport) as client:
        data = await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert data == {"status": "success"}


async def test_a_connection_idle_longer_than_httpxs_expiry_is_not_reused(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx drops a connection idle for more than 5 s (``keepalive_expiry``): one a
    # firewall or NAT dropped without a word would otherwise hold the next POST until
    # its read timeout.
    from prefactor_http import _direct

    now = [1000.0]
    monkeypatch.setattr(_direct, "_clock", lambda: now[0])
    async with PrefactorHttpClient(config(server.url)) as client:
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        now[0] += 4.9
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        now[0] += 5.1
        await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
    assert [r.connection for r in server.requests] == [1, 1, 2]


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
async def test_an_empty_answer_marked_gzip_is_an_empty_body(
    server: RecordingServer, through_httpx: bool
) -> None:
    # No body to decode: the answer is what it says (here not JSON, a contract error
    # with its status, not retried), as httpx reads it, not a transport failure.
    server.script = lambda _r: answer(b"", "204 No Content", headers=("Content-Encoding: gzip",))
    transport = httpx.AsyncHTTPTransport() if through_httpx else None
    async with PrefactorHttpClient(config(server.url), transport=transport) as client:
        with pytest.raises(PrefactorResponseContractError) as caught:
            await client.request("POST", "/api/v1/x", content=b"{}")
    assert caught.value.status_code == 204
    assert len(server.requests) == 1


async def test_concurrent_requests_wait_for_a_connection_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As httpx's pool (100 connections at most), the direct path opens no more than
    # MAX_CONNECTIONS at once: a burst of requests waits for a free one instead of
    # opening a socket each (and running out of file descriptors).
    from prefactor_http import _direct

    monkeypatch.setattr(_direct, "MAX_CONNECTIONS", 2)
    two_arrived, release = asyncio.Event(), asyncio.Event()
    connections: list[int] = []
    arrived: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                await reader.readexactly(2)
                arrived.append(1)
                if len(arrived) == 2:
                    two_arrived.set()
                await release.wait()
                writer.write(answer())
                await writer.drain()
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener, PrefactorHttpClient(config(url)) as client:
        requests = [
            asyncio.create_task(client.request("POST", "/api/v1/x", content=b"{}", retry=False))
            for _ in range(3)
        ]
        await two_arrived.wait()
        release.set()
        assert await asyncio.gather(*requests) == [{"status": "success"}] * 3
    assert len(connections) == 2


async def test_a_request_that_waits_too_long_for_a_connection_times_out(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefactor_http import _direct

    monkeypatch.setattr(_direct, "MAX_CONNECTIONS", 1)
    started, go_on = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"{"
        started.set()  # the first request has its connection
        await go_on.wait()
        yield b"}"

    async with PrefactorHttpClient(config(server.url, request_timeout=0.2)) as client:
        first = asyncio.create_task(
            client.request(
                "POST",
                "/api/v1/x",
                content=slow_body(),
                headers={"Content-Length": "2"},
                retry=False,
            )
        )
        await started.wait()
        with pytest.raises(PrefactorTimeoutError) as caught:
            await client.request("POST", "/api/v1/x", content=b"{}", retry=False)
        assert isinstance(caught.value.__cause__, httpx.PoolTimeout)
        go_on.set()
        assert await first == {"status": "success"}
    assert len(server.requests) == 1
