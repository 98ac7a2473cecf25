"""The client's direct path for POSTs: HTTP/1.1 on its own keep-alive connections.

``PrefactorHttpClient`` sends its POSTs (every write of the API, among them the SDK's
bulk requests of up to a thousand items) this way when it talks to the network itself:
no transport given and no proxy in the environment. Everything else (GETs, a proxied
network, a test transport) goes through ``httpx``.

Why: a POST through ``httpx.AsyncClient`` costs about 1.5-2 ms of the event loop's CPU
whatever its size (about 2,200 Python calls: the client's request building, the
connection pool, ``anyio``'s cancel scopes and ``sniffio`` look-ups per read and write,
``h11``), against about 0.4 ms for the same body on an asyncio stream; the SDK's engine
runs on the agent's own loop, so that is the agent's time, in steps it cannot split.

The protocol is ``h11``'s (the HTTP/1.1 state machine under ``httpcore``): it writes the
request (validating its headers, holding a streamed body to its ``Content-Length``) and
reads the answer (``Content-Length``, chunked or to the end of the connection,
informational heads, keep-alive or close). Around it this module keeps what ``httpx``
gives: the TLS context (``httpx.create_ssl_context()``, shared with the client's
``httpx.AsyncClient``: certificate verification and ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
as ``httpx`` reads them), connect / read / write timeouts (each read and each write of a
request has ``timeout`` seconds, as ``httpx.Timeout`` gives them), connections kept alive
and reused (one request at a time on each; a connection idle for more than 5 s, or that
the server closed or wrote to while idle, is dropped before use, as ``httpx`` does),
``Content-Encoding`` gzip or deflate decoded (the path asks for
``identity`` unless the caller asks otherwise), and ``httpx``'s exception classes for what
goes wrong (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
``ReadError``, ``WriteError``, ``RemoteProtocolError``, ``LocalProtocolError``,
``DecodingError``), so the client maps them to its own errors and retries exactly as for
``httpx``.
"""

from __future__ import annotations

import asyncio
import re
import select
import socket
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncIterable, Mapping
from typing import NamedTuple

import h11
import httpx

__all__ = ["DirectAnswer", "DirectConnections"]

MAX_IDLE = 8
"""Idle connections kept for reuse; more concurrent requests than this open more
connections, closed again when they finish."""

MAX_CONNECTIONS = 100
"""Requests under way at once, each on its own connection (``httpx``'s
``max_connections``); more wait for one to finish, ``timeout`` seconds at most
(``httpx.PoolTimeout``)."""

READ_BYTES = 64 * 1024
"""The most read from a connection at a time (as ``httpcore``)."""

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept for reuse (``httpx``'s ``keepalive_expiry``): past
that, one a firewall or NAT dropped silently would hold the next request until its read
timeout."""

MAX_HEAD = 100 * 1024
"""The largest answer head read (as ``httpcore``; ``h11``'s own default is 16 KB)."""

_PLAIN_PATH = re.compile(r"/[!-~]*")
_clock = time.monotonic


class DirectAnswer(NamedTuple):
    """An answer: its status, ``Retry-After`` (when sent) and decoded body."""

    status: int
    retry_after: str | None
    body: bytes


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (or its end), without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _proxied() -> bool:
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class _Connection:
    """One connection and its ``h11`` state."""

    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def usable(self) -> bool:
        """False when the server closed it or sent anything while it was idle (e.g. a
        ``408`` before closing it: an answer to no request), it was idle too long, or it
        failed; as ``httpcore``, which drops an idle connection it finds readable or
        expired."""
        reader, writer = self.reader, self.writer
        if reader.at_eof() or reader.exception() or writer.is_closing():
            return False
        if _clock() - self.idle_since > KEEPALIVE_EXPIRY:
            return False
        if getattr(reader, "_buffer", None):  # arrived, taken in by the loop
            return False
        sock = writer.get_extra_info("socket")
        return sock is None or not _readable(sock)

    def close(self) -> None:
        self.writer.close()


class DirectConnections:
    """Keep-alive HTTP/1.1 connections to one origin, for POSTs of encoded bodies.

    Args:
        url: The API's base URL (for errors: ``httpx`` exceptions carry a request).
        host: Host to connect to.
        port: Port to connect to.
        host_header: The ``Host`` header's value.
        base_path: The URL's path, put before each request's path.
        ssl_context: TLS context for ``https``; None for plain HTTP.
        connect_timeout: Seconds to establish a connection (TLS handshake included).
        timeout: Seconds for each read and each write of a request.
    """

    def __init__(
        self,
        url: str,
        host: str,
        port: int,
        host_header: str,
        base_path: str,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self._url = url
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._host_header = host_header
        self._base_path = base_path
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._closed = False
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    @classmethod
    def for_url(
        cls,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None,
        connect_timeout: float,
        timeout: float,
    ) -> DirectConnections | None:
        """The direct path to ``base_url``, or None when requests must go through
        ``httpx``: a transport was given, a proxy is set in the environment (``httpx``
        reads the same variables), or the URL carries credentials (``httpx`` sends them
        as basic auth) or a query."""
        if transport is not None or _proxied():
            return None
        url = httpx.URL(base_url)
        if url.userinfo or url.query or url.scheme not in ("http", "https"):
            return None
        tls = url.scheme == "https"
        host = url.raw_host.decode("ascii")
        default = 443 if tls else 80
        port = url.port or default
        shown = f"[{host}]" if ":" in host else host
        return cls(
            url=base_url.rstrip("/"),
            host=host,
            port=port,
            host_header=shown if port == default else f"{shown}:{port}",
            base_path=url.raw_path.decode("ascii").rstrip("/"),
            ssl_context=httpx.create_ssl_context() if tls else None,
            connect_timeout=connect_timeout,
            timeout=timeout,
        )

    @staticmethod
    def takes(path: str) -> bool:
        """Whether ``path`` can go in the request line as it is (printable ASCII without
        spaces); others go through ``httpx``, which escapes them."""
        return _PLAIN_PATH.fullmatch(path) is not None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (None for plain HTTP): give it to ``httpx`` too."""
        return self._ssl

    async def post(
        self,
        path: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterable[bytes] | None,
    ) -> DirectAnswer:
        """POST ``body`` to ``path`` and read the whole answer.

        A streamed body (an async iterable of pieces) needs its length in a
        ``Content-Length`` header; its pieces are written as they come.

        Raises:
            httpx.RequestError: What went wrong, as ``httpx`` would raise it.
        """
        request = self._request_event(path, headers, body)
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await slots.acquire()
            except TimeoutError as exc:
                raise httpx.PoolTimeout(
                    "timed out waiting for a connection", request=self._request(path)
                ) from exc
        else:
            await slots.acquire()
        try:
            return await self._exchange(request, path, body)
        finally:
            slots.release()

    async def _exchange(
        self, request: h11.Request, path: str, body: bytes | AsyncIterable[bytes] | None
    ) -> DirectAnswer:
        """The request on a connection (an idle one, else a new one), and its answer."""
        connection = self._take_idle()
        if connection is None:
            connection = await self._connect(path)
        keep = False
        try:
            try:
                await self._write(connection, request, body, path)
                answer = await self._read(connection, path)
            except h11.LocalProtocolError as exc:
                raise httpx.LocalProtocolError(str(exc), request=self._request(path)) from exc
            except h11.RemoteProtocolError as exc:
                raise self._protocol(path, f"the server sent invalid HTTP/1.1: {exc}") from exc
            state = connection.h11
            if state.our_state is h11.DONE and state.their_state is h11.DONE:
                state.start_next_cycle()
                keep = True
        finally:
            if keep and not self._closed and len(self._idle) < MAX_IDLE:
                connection.idle_since = _clock()
                self._idle.append(connection)
            else:
                connection.close()
        return answer

    async def aclose(self) -> None:
        """Close the idle connections; requests under way close theirs as they finish."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # -- the request -------------------------------------------------------------------

    def _request_event(
        self, path: str, headers: Mapping[str, str], body: bytes | AsyncIterable[bytes] | None
    ) -> h11.Request:
        """The request's head (``h11`` validates its names and values)."""
        fields = [("Host", self._host_header)]
        encoding = False
        declared = None
        for name, value in headers.items():
            folded = name.lower()
            if folded == "content-length":
                declared = value
                continue
            if folded == "host":  # the caller's replaces the default, as in httpx
                fields[0] = (name, value)
                continue
            encoding = encoding or folded == "accept-encoding"
            fields.append((name, value))
        if not encoding:
            fields.append(("Accept-Encoding", "identity"))
        if isinstance(body, bytes) or body is None:
            fields.append(("Content-Length", str(0 if body is None else len(body))))
        elif declared is None:
            raise httpx.LocalProtocolError(
                "a streamed body needs its Content-Length", request=self._request(path)
            )
        else:
            fields.append(("Content-Length", declared))
        try:
            return h11.Request(method="POST", target=self._base_path + path, headers=fields)
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=self._request(path)) from exc

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _connect(self, path: str) -> _Connection:
        if self._closed:
            raise httpx.ConnectError("the connections are closed", request=self._request(path))
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("timed out connecting", request=self._request(path)) from exc
        except OSError as exc:  # refused, unreachable, a failed TLS handshake (SSLError)
            raise httpx.ConnectError(str(exc), request=self._request(path)) from exc
        return _Connection(reader, writer)

    async def _write(
        self,
        connection: _Connection,
        request: h11.Request,
        body: bytes | AsyncIterable[bytes] | None,
        path: str,
    ) -> None:
        """Hand the request to the socket, waiting (``timeout`` at most each time) while
        its buffer is full. ``h11`` passes a body's bytes through without copying them."""
        state, writer = connection.h11, connection.writer
        buffered = writer.transport.get_write_buffer_size
        try:
            writer.writelines(state.send_with_data_passthrough(request) or ())
            if isinstance(body, bytes):
                writer.writelines(state.send_with_data_passthrough(h11.Data(data=body)) or ())
            elif body is not None:
                async for piece in body:
                    writer.writelines(state.send_with_data_passthrough(h11.Data(data=piece)) or ())
                    if buffered():
                        async with asyncio.timeout(self._timeout):
                            await writer.drain()
            writer.writelines(state.send_with_data_passthrough(h11.EndOfMessage()) or ())
            if buffered():
                async with asyncio.timeout(self._timeout):
                    await writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out writing", request=self._request(path)) from exc
        except OSError as exc:
            raise httpx.WriteError(
                str(exc) or type(exc).__name__, request=self._request(path)
            ) from exc

    # -- the answer --------------------------------------------------------------------

    async def _read(self, connection: _Connection, path: str) -> DirectAnswer:
        """Read the answer to the end (informational heads skipped) and decode it."""
        state, reader = connection.h11, connection.reader
        status = 0  # no head yet
        fields: dict[bytes, bytes] = {}
        parts: list[bytes] = []
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                try:
                    async with asyncio.timeout(self._timeout):
                        data = await reader.read(READ_BYTES)
                except TimeoutError as exc:
                    raise httpx.ReadTimeout(
                        "timed out reading", request=self._request(path)
                    ) from exc
                except OSError as exc:
                    raise httpx.ReadError(
                        str(exc) or type(exc).__name__, request=self._request(path)
                    ) from exc
                if not data and not status:
                    raise self._protocol(path, "the server closed the connection without answering")
                state.receive_data(data)
            elif isinstance(event, h11.Response):
                status, fields = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise self._protocol(
                    path, "the server closed the connection in the middle of the answer"
                )
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        coding = fields.get(b"content-encoding", b"identity").strip().lower()
        if body and coding in (b"gzip", b"deflate"):  # nothing to decode otherwise (httpx)
            body = self._inflate(body, coding, path)
        retry_after = fields.get(b"retry-after")
        return DirectAnswer(
            status,
            None if retry_after is None else retry_after.decode("latin-1"),
            body,
        )

    def _inflate(self, body: bytes, coding: bytes, path: str) -> bytes:
        """A gzip or deflate body decoded; deflate with zlib's framing (RFC 9110) or,
        as some servers send it and as ``httpx`` also reads it, without."""
        try:
            if coding == b"gzip":
                return zlib.decompress(body, 16 + zlib.MAX_WBITS)
            try:
                return zlib.decompress(body, zlib.MAX_WBITS)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc), request=self._request(path)) from exc

    def _protocol(self, path: str, message: str) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(message, request=self._request(path))

    def _request(self, path: str) -> httpx.Request:
        return httpx.Request("POST", self._url + path)
