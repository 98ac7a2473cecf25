"""Helpers for tests and demos: the server in-process or on a real port.

Example::

    server = LocalServer(tmp_path / "db.sqlite", token="test-token-123")
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as client:
        await client.get("/api/v1/ping", headers={"Authorization": f"Bearer {server.token}"})
    await server.aclose()

    async with LocalServer.run(tmp_path / "db.sqlite", token="test-token-123") as server:
        ...  # a real uvicorn on 127.0.0.1, at server.api_url

    with serve_process(tmp_path / "db.sqlite", token="test-token-123") as api_url:
        ...  # a real `prefactor serve` process on 127.0.0.1
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from prefactor_server.app import create_app
from prefactor_server.domain.accounts import create_account, create_token
from prefactor_server.settings import Settings
from prefactor_server.storage.base import Storage, WriteSession

__all__ = ["DEFAULT_TOKEN", "LocalServer", "serve_process"]

DEFAULT_TOKEN = "prefactor-test-token"
"""The token a :class:`LocalServer` accepts when none is given."""


class LocalServer:
    """The server on a real SQLite file, reachable in-process through ``transport``.

    Args:
        db_path: The SQLite file (created when missing), or a ``postgresql://`` URL.
        token: The bearer token accepted for the local account.
        **settings: Other :class:`~prefactor_server.settings.Settings` values.

    Attributes:
        app: The ASGI app.
        transport: An ``httpx.ASGITransport`` over the app.
        api_url: The base URL to use with ``transport`` (or the real URL under :meth:`run`).
        token: The accepted bearer token.
        settings: The settings the app was built with.
    """

    def __init__(self, db_path: str | Path, *, token: str = DEFAULT_TOKEN, **settings: Any) -> None:
        # The database as given: a str may be a PostgreSQL URL (a Path would fold its "//").
        # The token goes in after from_env: tests may use short fixed tokens (from_env holds
        # PREFACTOR_API_TOKEN to the longer floor of the serve/CLI path).
        self.settings = Settings.from_env({}, db_path=db_path, **settings).replace(api_token=token)
        self.app = create_app(self.settings)
        self.transport = httpx.ASGITransport(app=self.app)
        self.api_url = "http://prefactor.local"
        self.token = token
        self._closed = False

    @property
    def storage(self) -> Storage:
        """The app's storage (for tests that set up data directly)."""
        result: Storage = self.app.state.storage
        return result

    def client(self, **options: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on :attr:`transport`, signed in with :attr:`token`
        (``async with server.client() as client: ...``); ``options`` go to the client."""
        return httpx.AsyncClient(
            transport=self.transport,
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            **options,
        )

    def create_account(self, name: str) -> str:
        """Create another account and return a bearer token for it (cross-account tests)."""

        def make(session: WriteSession) -> str:
            account = create_account(session, name)
            return create_token(session, account, f"{name} token")[1]

        return self.storage.write_sync(make)

    def close(self) -> None:
        """Close the storage (idempotent)."""
        if not self._closed:
            self._closed = True
            self.storage.close()

    async def aclose(self) -> None:
        """Store the OTLP exports already answered, close the transport and the storage
        (idempotent)."""
        journal = getattr(self.app.state, "otlp_journal", None)
        if journal is not None and not self._closed:
            await journal.caught_up()
        await self.transport.aclose()
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> LocalServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @classmethod
    @asynccontextmanager
    async def run(
        cls, db_path: str | Path, *, token: str = DEFAULT_TOKEN, **settings: Any
    ) -> AsyncIterator[LocalServer]:
        """Serve the app with uvicorn on 127.0.0.1 and a free port until the block exits.

        The listening socket is bound before uvicorn starts, so ``api_url`` accepts
        connections as soon as the block is entered: no polling for readiness.
        """
        server = cls(db_path, token=token, **settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        # httptools and uvloop when installed (they are dependencies), else h11/asyncio.
        config = uvicorn.Config(
            server.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            http="auto",
            loop="auto",
        )
        uv = uvicorn.Server(config)
        # Own thread and event loop: the caller's loop stays free, and uvicorn installs no
        # signal handlers outside the main thread.
        thread = threading.Thread(
            target=uv.run, kwargs={"sockets": [sock]}, name="prefactor-uvicorn", daemon=True
        )
        thread.start()
        server.api_url = f"http://127.0.0.1:{port}"
        try:
            yield server
        finally:
            uv.should_exit = True
            await asyncio.to_thread(thread.join, 30)
            sock.close()
            await server.aclose()


@contextmanager
def serve_process(
    db_path: str | Path, *, token: str = DEFAULT_TOKEN, startup_timeout: float = 30.0
) -> Iterator[str]:
    """Run ``prefactor serve`` as a separate process on 127.0.0.1; yield its URL.

    The process is the installed CLI of this interpreter's environment. The block is
    entered once ``/api/v1/ping`` answers, and the process is stopped on exit.

    Raises:
        RuntimeError: If the server exits or does not answer within ``startup_timeout``
            (the message carries its stderr).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli = Path(sys.executable).with_name("prefactor")
    process = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--db", str(db_path)],
        env={**os.environ, "PREFACTOR_API_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while not _answers(url, token):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate(timeout=10)
                raise RuntimeError(f"prefactor serve did not come up: {err.decode()[-2000:]}")
            time.sleep(0.05)  # readiness of another process: a bounded poll
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def _answers(url: str, token: str) -> bool:
    try:
        response = httpx.get(
            f"{url}/api/v1/ping", headers={"Authorization": f"Bearer {token}"}, timeout=2
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200
