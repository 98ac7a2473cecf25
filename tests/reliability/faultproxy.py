"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, between an SDK and a real server.

It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` and chunked request
bodies) to sit in front of the Prefactor API on real sockets, forwards each request
upstream with httpx, and can, per request and at a chosen rate:

* ``status_500`` / ``status_502`` / ``status_503`` / ``status_429``: answer an error
  envelope without forwarding (429 and 503 carry ``Retry-After``);
* ``hang``: read the request, never forward it, and answer nothing for ``hang_seconds``
  (longer than the client's timeout), then drop the connection;
* ``slow``: wait ``slow_seconds`` before forwarding, then answer normally;
* ``reset``: forward (the server commits), send the status line, headers and half of the
  body, then reset the connection (TCP RST);
* ``lose_response``: forward (the server commits) and reset the connection before a
  single byte of the answer is sent, so the client never hears back.

Besides the per-request faults it can ``refuse()`` connections (stop listening and drop
open connections: the port answers ``ECONNREFUSED``) and ``accept()`` them again on the
same port. Rates and modes are switchable while it runs. Counters say what happened.

Example::

    proxy = FaultProxy("http://127.0.0.1:8000", seed=7)
    await proxy.start()
    proxy.set_faults(status_503=0.3, lose_response=0.1)
    ...  # point the SDK at proxy.url
    await proxy.refuse(); await proxy.accept()
    await proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

import httpx

__all__ = ["FAULTS", "FaultProxy", "FaultRates"]

FAULTS = (
    "status_500",
    "status_502",
    "status_503",
    "status_429",
    "hang",
    "slow",
    "reset",
    "lose_response",
)
_STATUS_FAULTS = {"status_500": 500, "status_502": 502, "status_503": 503, "status_429": 429}
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
    }
)
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass
class FaultRates:
    """Probability of each fault per request (their sum must be at most 1).

    Attributes:
        rates: Fault name (one of ``FAULTS``) → probability.
        paths: Only requests whose path starts with one of these are faulted
            (all requests when empty).
        retry_after: The ``Retry-After`` seconds sent with injected 429 and 503.
        hang_seconds: How long a hung request is held before the connection is dropped.
        slow_seconds: The delay of a slow answer.
    """

    rates: dict[str, float] = field(default_factory=dict)
    paths: tuple[str, ...] = ()
    retry_after: float = 0.0
    hang_seconds: float = 3.0
    slow_seconds: float = 0.2

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")


class _BadRequest(Exception):
    pass


class FaultProxy:
    """See the module docstring.

    Args:
        upstream: The real server's base URL (``http://127.0.0.1:PORT``).
        port: The port to listen on (0: a free one, kept across ``refuse``/``accept``).
        seed: Seed of the fault draws, so a run is reproducible.

    Attributes:
        counts: Outcome name → how many requests had it (``pass`` for clean ones,
            ``upstream_down`` for 502s answered because the server was unreachable,
            ``refused`` for connections dropped by ``refuse()``).
        forwarded: How many requests reached the server (whatever the client saw).
    """

    def __init__(self, upstream: str, *, port: int = 0, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port
        self.faults = FaultRates()
        self.counts: Counter[str] = Counter()
        self.forwarded = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def listening(self) -> bool:
        """True while the proxy accepts connections."""
        return self._server is not None

    async def start(self) -> None:
        """Start listening on 127.0.0.1."""
        await self.accept()

    async def accept(self) -> None:
        """(Re)start listening on the same port."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.upstream,
                timeout=httpx.Timeout(60.0, connect=5.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True, limit=_MAX_HEADER_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stop listening and drop every open connection: new connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
            self.counts["refused"] += 1
        if server is not None:
            # Python 3.12+ waits here for open connections; they were just reset.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        if self._http is not None:
            # Upstream keep-alive connections too, so nothing survives the "outage".
            await self._http.aclose()
            self._http = None

    async def stop(self) -> None:
        """Stop listening, drop connections, cancel handlers, close the upstream client."""
        await self.refuse()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults -------------------------------------------------------------------------

    def set_faults(self, faults: FaultRates | None = None, **rates: float) -> None:
        """Switch the fault plan at run time: ``set_faults(status_503=0.3)``; no args: none."""
        self.faults = faults if faults is not None else FaultRates(rates=dict(rates))

    def _draw(self, path: str) -> str:
        plan = self.faults
        if not plan.rates or (plan.paths and not path.startswith(plan.paths)):
            return "pass"
        roll = self._random.random()
        for name in FAULTS:
            rate = plan.rates.get(name, 0.0)
            if roll < rate:
                return name
            roll -= rate
        return "pass"

    # -- one connection ---------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            # Bounded: a connection carries at most this many requests (keep-alive).
            for _ in range(1_000_000):
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._serve(writer, *request):
                    return
        except (
            _BadRequest,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _serve(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> bool:
        """Answer one request; return False when the connection must end."""
        path = target.split("?", 1)[0]
        outcome = self._draw(path)
        plan = self.faults
        if outcome in _STATUS_FAULTS:
            self.counts[outcome] += 1
            status = _STATUS_FAULTS[outcome]
            extra = []
            if status in (429, 503):
                extra.append(("Retry-After", _retry_after(plan.retry_after)))
            envelope = (
                b'{"status":"error","code":"injected","message":"injected %d by the fault proxy"}'
                % status
            )
            await _write_response(writer, status, extra, envelope)
            return True
        if outcome == "hang":
            self.counts[outcome] += 1
            await asyncio.sleep(plan.hang_seconds)
            _reset(writer)
            return False
        if outcome == "slow":
            await asyncio.sleep(plan.slow_seconds)
        http = self._http
        if http is None:  # refused meanwhile
            _reset(writer)
            return False
        forward = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        try:
            response = await http.request(method, target, headers=forward, content=body)
        except httpx.HTTPError:
            self.counts["upstream_down"] += 1
            envelope = b'{"status":"error","code":"bad_gateway","message":"upstream unreachable"}'
            await _write_response(writer, 502, [], envelope)
            return True
        self.forwarded += 1
        self.counts[outcome] += 1
        answer = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        if outcome == "lose_response":
            _reset(writer)
            return False
        if outcome == "reset":
            content = response.content
            head = _head(response.status_code, answer, len(content))
            writer.write(head + content[: len(content) // 2])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            _reset(writer)
            return False
        await _write_response(writer, response.status_code, answer, response.content)
        return True


# -- HTTP/1.1 plumbing ------------------------------------------------------------------


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None  # the client closed a kept-alive connection
        raise _BadRequest("truncated request head") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest(f"bad request line {lines[0]!r}") from None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    lowered = {k.lower(): v for k, v in headers}
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        length = int(lowered.get("content-length", "0") or "0")
        if length > _MAX_BODY_BYTES:
            raise _BadRequest("request body too large for the proxy")
        body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for _ in range(1_000_000):
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers (rare) up to the empty line.
            for _ in range(100):
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    break
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY_BYTES:
            raise _BadRequest("request body too large for the proxy")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    raise _BadRequest("too many chunks")


def _head(status: int, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers = [*headers, ("Content-Type", "application/json")]
    writer.write(_head(status, headers, len(body)) + body)
    await writer.drain()


def _retry_after(seconds: float) -> str:
    # Retry-After is whole seconds on the wire (delta-seconds).
    return str(max(0, round(seconds)))


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), dropping anything not yet sent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
