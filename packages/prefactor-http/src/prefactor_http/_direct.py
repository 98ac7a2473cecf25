"""The client's direct path for POSTs: HTTP/1.1 on its own keep-alive connections.

``PrefactorHttpClient`` sends its POSTs (every write of the API, among them the SDK's
bulk requests of up to a thousand items) this way when it talks to the network itself:
no transport given and no proxy in the environment. Everything else (GETs, a proxied
network, a test transport) goes through ``httpx``.

Why: a POST through ``httpx.AsyncClient`` costs about 1.5-2 ms of the event loop's CPU
whatever its size (about 2,200 Python calls: the client's request building, the
connection pool, ``anyio``'s cancel scopes, ``h11``'s header validation), against about
0.4 ms for the same body on an asyncio stream; the SDK's engine runs on the agent's own
loop, so that is the agent's time, in steps it cannot split.

What it keeps of ``httpx``: the TLS context (``httpx.create_ssl_context()``, shared with
the client's ``httpx.AsyncClient``: certificate verification and ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` as ``httpx`` reads them), connect / read / write timeouts (each read and
write of a request has ``timeout`` seconds, as ``httpx.Timeout`` gives them), connections
kept alive and reused (one request at a time on each; a connection the server closed
while idle is dropped before use), and ``httpx``'s exception classes for what goes wrong
(``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``ReadError``,
``WriteError``, ``RemoteProtocolError``, ``LocalProtocolError``), so the client maps them to
its own errors and retries exactly as for ``httpx``.

Answers: ``Content-Length``, chunked, or read to the end of the connection;
``Content-Encoding`` gzip or deflate is decoded (the path asks for ``identity`` unless the
caller asks otherwise); informational (1xx) heads are skipped.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterable, Mapping
from typing import NamedTuple

import httpx

__all__ = ["DirectAnswer", "DirectConnections"]

MAX_IDLE = 8
"""Idle connections kept for reuse; more concurrent requests than this open more
connections, closed again when they finish."""

_HEAD_LIMIT = 64 * 1024
"""The longest answer head read (status line and headers), as ``h11``'s default."""

_BAD_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_PLAIN_PATH = re.compile(r"/[!-~]*")


class DirectAnswer(NamedTuple):
    """An answer: its status, ``Retry-After`` (when sent) and decoded body."""

    status: int
    retry_after: str | None
    body: bytes


def _proxied() -> bool:
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        """False when the server closed it while it was idle (or it failed)."""
        reader = self.reader
        return not (reader.at_eof() or reader.exception() or self.writer.is_closing())

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
        self._head = f"Host: {host_header}\r\n".encode("ascii")
        self._base_path = base_path
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._closed = False

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
        head, length = self._request_head(path, headers, body)
        connection = self._take_idle()
        if connection is None:
            connection = await self._connect(path)
        keep = False
        try:
            await self._write(connection.writer, head, body, length, path)
            answer, keep = await self._read(connection.reader, path)
        finally:
            if keep and not self._closed and len(self._idle) < MAX_IDLE:
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

    def _request_head(
        self, path: str, headers: Mapping[str, str], body: bytes | AsyncIterable[bytes] | None
    ) -> tuple[bytes, int]:
        """The request's head, and the length of its body."""
        lines = [f"POST {self._base_path}{path} HTTP/1.1\r\n".encode("ascii"), self._head]
        declared = None
        encoding = False
        for name, value in headers.items():
            folded = name.lower()
            if folded == "content-length":
                declared = value
                continue
            encoding = encoding or folded == "accept-encoding"
            if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
                raise httpx.LocalProtocolError(
                    f"illegal header {name!r}", request=self._request(path)
                )
            lines.append(f"{name}: {value}\r\n".encode())
        if not encoding:
            lines.append(b"Accept-Encoding: identity\r\n")
        if isinstance(body, bytes) or body is None:
            length = 0 if body is None else len(body)
        else:
            if declared is None or not declared.isdigit():
                raise httpx.LocalProtocolError(
                    "a streamed body needs its Content-Length", request=self._request(path)
                )
            length = int(declared)
        lines.append(b"Content-Length: %d\r\n\r\n" % length)
        return b"".join(lines), length

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
                    limit=_HEAD_LIMIT,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("timed out connecting", request=self._request(path)) from exc
        except OSError as exc:  # refused, unreachable, a failed TLS handshake (SSLError)
            raise httpx.ConnectError(str(exc), request=self._request(path)) from exc
        return _Connection(reader, writer)

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        expected: int,
        path: str,
    ) -> None:
        transport = writer.transport
        try:
            if body is None or isinstance(body, bytes):
                # A big body is not copied behind the head (a fresh buffer of several
                # hundred kilobytes costs page faults); the socket has TCP_NODELAY.
                if body and len(body) > 16384:
                    writer.write(head)
                    writer.write(body)
                else:
                    writer.write(head + body if body else head)
                if transport.get_write_buffer_size():
                    async with asyncio.timeout(self._timeout):
                        await writer.drain()
                return
            sent = 0
            writer.write(head)
            async for piece in body:
                sent += len(piece)
                if sent > expected:
                    raise httpx.LocalProtocolError(
                        "the body is longer than its Content-Length", request=self._request(path)
                    )
                writer.write(piece)
                if transport.get_write_buffer_size():
                    async with asyncio.timeout(self._timeout):
                        await writer.drain()
            if sent != expected:
                raise httpx.LocalProtocolError(
                    "the body is shorter than its Content-Length", request=self._request(path)
                )
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out writing", request=self._request(path)) from exc
        except OSError as exc:
            raise httpx.WriteError(
                str(exc) or type(exc).__name__, request=self._request(path)
            ) from exc

    # -- the answer --------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader, path: str) -> tuple[DirectAnswer, bool]:
        """The answer, and whether the connection can carry another request."""
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                status, fields, keep = await self._read_head(reader, path)
                deadline.reschedule(asyncio.get_running_loop().time() + self._timeout)
                encoding = fields.get(b"transfer-encoding")
                length = fields.get(b"content-length")
                if status in (204, 304):
                    body = b""
                elif encoding is not None:
                    if encoding.strip().lower() != b"chunked":
                        raise self._protocol(
                            path, "the server sent an unsupported Transfer-Encoding"
                        )
                    body = await self._read_chunks(reader, deadline, path)
                elif length is not None:
                    if not length.strip().isdigit():
                        raise self._protocol(path, "the server sent a malformed Content-Length")
                    body = await reader.readexactly(int(length))
                else:
                    keep = False
                    body = await reader.read()  # delimited by the end of the connection
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out reading", request=self._request(path)) from exc
        except asyncio.IncompleteReadError as exc:
            raise self._protocol(
                path,
                "the server closed the connection in the middle of the answer"
                if exc.partial or exc.expected
                else "the server closed the connection without answering",
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise self._protocol(
                path, "the server sent an answer head or chunk line too long"
            ) from exc
        except OSError as exc:
            raise httpx.ReadError(
                str(exc) or type(exc).__name__, request=self._request(path)
            ) from exc
        coding = fields.get(b"content-encoding", b"identity").strip().lower()
        if coding in (b"gzip", b"deflate"):
            try:
                body = zlib.decompress(body, 47 if coding == b"gzip" else 15)
            except zlib.error as exc:
                raise httpx.DecodingError(str(exc), request=self._request(path)) from exc
        retry_after = fields.get(b"retry-after")
        return DirectAnswer(
            status, None if retry_after is None else retry_after.decode("latin-1"), body
        ), keep

    async def _read_head(
        self, reader: asyncio.StreamReader, path: str
    ) -> tuple[int, dict[bytes, bytes], bool]:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise self._protocol(path, "the server sent an answer that is not HTTP/1.x")
            status = int(code)
            if status >= 200:
                break
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise self._protocol(path, "the server sent a malformed answer header")
            fields[name.strip().lower()] = value.strip()
        keep = version == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        return status, fields, keep

    async def _read_chunks(
        self, reader: asyncio.StreamReader, deadline: asyncio.Timeout, path: str
    ) -> bytes:
        parts: list[bytes] = []
        loop = asyncio.get_running_loop()
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise self._protocol(path, "the server sent a malformed chunk size") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise self._protocol(path, "the server sent a chunk without its line end")
            deadline.reschedule(loop.time() + self._timeout)

    def _protocol(self, path: str, message: str) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(message, request=self._request(path))

    def _request(self, path: str) -> httpx.Request:
        return httpx.Request("POST", self._url + path)
