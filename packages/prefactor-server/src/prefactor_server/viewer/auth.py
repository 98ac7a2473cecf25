"""Viewer sign-in: the API token, checked once at login, kept in an HttpOnly cookie.

The cookie holds the token itself (this is a local tool on 127.0.0.1, like a database
browser), marked HttpOnly so page scripts cannot read it and SameSite=Strict so other
sites cannot make the browser use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from prefactor_server.api._common import client_address
from prefactor_server.api.otlp_journal import read_after_exports
from prefactor_server.domain.auth_guard import AuthGuard
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import Account

__all__ = ["COOKIE", "account_for", "clear_cookie", "cross_site", "safe_next", "set_cookie"]

COOKIE = "prefactor_token"
_MAX_AGE = 30 * 24 * 3600


async def account_for(request: Request, token: str | None) -> Account | None:
    """The account a token belongs to, or None for a missing, unknown or revoked one.

    Wrong tokens count against the client's address like the API's (see
    :mod:`prefactor_server.domain.auth_guard`).

    Raises:
        ApiError: 429 ``rate_limited`` while the address has to wait.
    """
    if not token:
        return None
    guard: AuthGuard = request.app.state.guard
    try:
        account = await guard.authenticate(token, client_address(request))
    except ApiError as exc:
        if exc.status_code == 401:
            return None
        raise
    await read_after_exports(request, account)
    return account


def cross_site(request: Request) -> bool:
    """Whether a form post comes from another site (login CSRF, forced logout).

    Browsers send ``Origin`` with every POST (``null`` from sandboxed or file pages), and
    ``Sec-Fetch-Site``; the origin must be this server's own, as the browser addressed
    it. Requests without either (curl, scripts) are not a browser's and pass.
    """
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return parts.scheme not in ("http", "https") or parts.netloc != request.headers.get("host")


def set_cookie(response: Response, request: Request, token: str) -> None:
    """Keep ``token`` in the viewer's cookie."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_cookie(response: Response) -> None:
    """Forget the token."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
