"""Viewer sign-in: the API token, checked once at login, kept in an HttpOnly cookie.

The cookie holds the token itself (this is a local tool on 127.0.0.1, like a database
browser), marked HttpOnly so page scripts cannot read it and SameSite=Strict so other
sites cannot make the browser use it.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from prefactor_server.domain.accounts import hash_token
from prefactor_server.storage.base import Account, Storage

__all__ = ["COOKIE", "account_for", "clear_cookie", "safe_next", "set_cookie"]

COOKIE = "prefactor_token"
_MAX_AGE = 30 * 24 * 3600


async def account_for(storage: Storage, token: str | None) -> Account | None:
    """The account a token belongs to, or None for a missing, unknown or revoked one."""
    if not token:
        return None
    digest = hash_token(token)
    return await storage.read(lambda session: session.account_for_token(digest))


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
