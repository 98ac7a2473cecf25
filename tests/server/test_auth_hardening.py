"""Tokens at rest, the brake on guessing, login CSRF, security headers, the Host header."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from prefactor_server.app import create_app
from prefactor_server.domain.accounts import RevokedTokenError
from prefactor_server.domain.auth_guard import FAILURE_LIMIT, AuthGuard
from prefactor_server.settings import MIN_API_TOKEN_CHARS, Settings, SettingsError
from prefactor_server.testing import LocalServer

TOKEN = "Kq7vZ2mLx9Pw4RtN8yBcH3"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="served")
async def fixture_served(database: str | Path) -> AsyncIterator[tuple[LocalServer, Clock]]:
    clock = Clock()
    server = LocalServer(database, token=TOKEN)
    server.app.state.guard = AuthGuard(server.storage, clock=clock)
    try:
        yield server, clock
    finally:
        await server.aclose()


def _client(server: LocalServer, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=server.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=server.api_url)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- tokens at rest -------------------------------------------------------------------------


def _all_text(db_path: Path) -> str:
    with closing(sqlite3.connect(db_path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"')
        )


async def test_database_keeps_nothing_of_the_plain_tokens(tmp_path: Path) -> None:
    """The first 6 characters of every token were stored in plain text."""
    db_path = tmp_path / "db.sqlite"
    server = LocalServer(db_path, token=TOKEN)
    other = server.create_account("other")
    await server.aclose()
    text = _all_text(db_path)
    for token in (TOKEN, other):
        pieces = {token[i : i + 6] for i in range(len(token) - 5)}
        assert not [piece for piece in pieces if piece in text], token


def test_migration_drops_the_stored_token_prefixes(tmp_path: Path) -> None:
    """A database made before the fix loses its prefix column (and its values)."""
    db_path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    from prefactor_server.storage.sqlite.migrations import MIGRATIONS, apply_migrations

    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        for migration in MIGRATIONS[:2]:
            db.executescript(migration.sql)
            db.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (migration.name,))
        db.execute("INSERT INTO tokens VALUES ('t1', 'a1', 'old', 'hash', 'pf_sec', 'then', NULL)")
        apply_migrations(db, "now")
        columns = [row[1] for row in db.execute("PRAGMA table_info(tokens)")]
        assert "prefix" not in columns
        assert "pf_sec" not in repr(db.execute("SELECT * FROM tokens").fetchall())


def test_database_file_is_private(tmp_path: Path) -> None:
    """The file was created world-readable (0644 under the usual umask)."""
    db_path = tmp_path / "private.sqlite"
    server = LocalServer(db_path, token=TOKEN)
    server.create_account("other")
    try:
        for path in (db_path, db_path.with_name(db_path.name + "-wal")):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, (path, oct(mode))
    finally:
        server.close()


@pytest.mark.parametrize("token", ["abcdefgh", "pf_dev_token", "x" * (MIN_API_TOKEN_CHARS - 1)])
def test_short_api_token_is_refused_with_a_clear_message(token: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"PREFACTOR_API_TOKEN": token})
    assert "PREFACTOR_API_TOKEN" in str(raised.value)
    assert str(MIN_API_TOKEN_CHARS) in str(raised.value)
    assert Settings.from_env({"PREFACTOR_API_TOKEN": "y" * MIN_API_TOKEN_CHARS}).api_token


def test_restart_with_a_revoked_api_token_says_what_happened(database: str | Path) -> None:
    """It failed with "UNIQUE constraint failed" (each backend)."""
    settings = Settings.from_env({}, db_path=database, api_token=TOKEN)
    app = create_app(settings)
    rows = app.state.storage.read_sync(lambda session: session.list_tokens())
    token_id = next(row["id"] for row in rows if row["name"] == "PREFACTOR_API_TOKEN")
    assert app.state.storage.write_sync(lambda session: session.revoke_token(token_id, "now"))
    app.state.storage.close()
    with pytest.raises(RevokedTokenError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "revoked" in message
    assert token_id in message
    assert "PREFACTOR_API_TOKEN" in message
    assert "UNIQUE" not in message


# -- the brake on guessing ------------------------------------------------------------------


async def test_wrong_tokens_are_slowed_down_per_address(
    served: tuple[LocalServer, Clock],
) -> None:
    server, clock = served
    other_token = server.create_account("other")
    async with _client(server) as http, _client(server, "10.9.8.7") as elsewhere:
        assert (await http.get("/api/v1/ping", headers=_bearer(TOKEN))).status_code == 200
        for attempt in range(FAILURE_LIMIT):
            wrong = await http.get("/api/v1/ping", headers=_bearer(f"guess-{attempt}"))
            assert wrong.status_code == 401
        blocked = await http.get("/api/v1/ping", headers=_bearer("guess-next"))
        assert blocked.status_code == 429
        assert blocked.json()["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # While waiting, even a right token never used from here is not checked ...
        assert (await http.get("/api/v1/ping", headers=_bearer(other_token))).status_code == 429
        # ... but the real user's token that worked before keeps working,
        assert (await http.get("/api/v1/ping", headers=_bearer(TOKEN))).status_code == 200
        # and other addresses are not affected.
        assert (await elsewhere.get("/api/v1/ping", headers=_bearer("guess"))).status_code == 401
        ok = await elsewhere.get("/api/v1/ping", headers=_bearer(other_token))
        assert ok.status_code == 200
        clock.now += 61
        assert (await http.get("/api/v1/ping", headers=_bearer(other_token))).status_code == 200
        assert (await http.get("/api/v1/ping", headers=_bearer("again"))).status_code == 401


async def test_the_brake_survives_a_restart(database: str | Path) -> None:
    """The counts are in the database, not in the process (each backend)."""
    db_path = database
    clock = Clock()
    for round_ in range(2):
        server = LocalServer(db_path, token=TOKEN)
        server.app.state.guard = AuthGuard(server.storage, clock=clock)
        async with server, _client(server) as http:
            statuses = [
                (await http.get("/api/v1/ping", headers=_bearer(f"g{round_}-{i}"))).status_code
                for i in range(FAILURE_LIMIT // 2 + 1)
            ]
        assert statuses[-1] == (429 if round_ else 401), statuses


async def test_login_form_guesses_count_too(served: tuple[LocalServer, Clock]) -> None:
    server, _ = served
    async with _client(server) as http:
        for attempt in range(FAILURE_LIMIT):
            page = await http.post("/login", data={"token": f"guess-{attempt}"})
            assert page.status_code == 401
        blocked = await http.post("/login", data={"token": TOKEN})
        assert blocked.status_code == 429
        assert "prefactor_token" not in blocked.cookies
        assert "try again" in blocked.text


# -- login CSRF -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://prefactor.local:8080"},
        {"Referer": "http://evil.example/page.html"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_cross_site_login_and_logout_are_refused(
    served: tuple[LocalServer, Clock], headers: dict[str, str]
) -> None:
    server, _ = served
    async with _client(server) as http:
        login = await http.post("/login", data={"token": TOKEN}, headers=headers)
        assert login.status_code == 403
        assert "prefactor_token" not in login.cookies
        http.cookies.set("prefactor_token", TOKEN)
        logout = await http.post("/logout", headers=headers)
        assert logout.status_code == 403
        assert "set-cookie" not in logout.headers


async def test_same_origin_login_still_works(served: tuple[LocalServer, Clock]) -> None:
    server, _ = served
    async with _client(server) as http:
        for headers in ({}, {"Origin": server.api_url, "Sec-Fetch-Site": "same-origin"}):
            login = await http.post("/login", data={"token": TOKEN}, headers=headers)
            assert login.status_code == 303, login.text
            assert login.cookies.get("prefactor_token") == TOKEN


# -- headers --------------------------------------------------------------------------------


async def test_security_headers(served: tuple[LocalServer, Clock]) -> None:
    server, _ = served
    async with _client(server) as http:
        http.cookies.set("prefactor_token", TOKEN)
        for path in ("/login", "/", "/api/v1/ping", "/runs/nope"):
            response = await http.get(path, headers=_bearer(TOKEN))
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["cache-control"] == "no-store", path
            policy = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy, path
            assert "object-src 'none'" in policy, path
            assert response.headers["x-frame-options"] == "DENY"
        asset = await http.get("/static/viewer.css")
        assert asset.status_code == 200
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert "no-store" not in asset.headers.get("cache-control", "")


async def test_host_header_is_not_reflected(served: tuple[LocalServer, Clock]) -> None:
    server, _ = served
    evil = {"Host": "evil.example"}
    async with _client(server) as http:
        http.cookies.set("prefactor_token", TOKEN)
        page = await http.get("/", headers=evil)
        assert page.status_code == 200
        assert "evil.example" not in page.text
        redirect = await http.get("/api/v1/agent_instance/", headers={**evil, **_bearer(TOKEN)})
        assert redirect.status_code in (307, 308)
        assert "evil.example" not in redirect.headers["location"]
        assert redirect.headers["location"].startswith("/api/v1/agent_instance")
        login = await http.get("/runs/x?y=1", headers=evil)
        assert "evil.example" not in login.headers.get("location", "")
