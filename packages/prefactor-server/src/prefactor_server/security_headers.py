"""Response headers that keep browsers from misusing the API's and the viewer's answers.

Every answer gets ``X-Content-Type-Options: nosniff``. Everything except the viewer's
static assets also gets ``Cache-Control: no-store`` (pages and JSON carry the account's
data), a Content-Security-Policy with ``frame-ancestors 'none'`` (no framing, so no
clickjacking of Sign out) and ``Referrer-Policy: same-origin``. A redirect to this very
server is made relative, so the client's ``Host`` header never comes back in
``Location`` (Starlette builds its trailing-slash redirects from it).
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SecurityHeaders"]

# The viewer's pages have no inline script, handler or style attribute (scripts set styles
# through the CSSOM), so neither scripts nor styles need 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_STATIC = "/static/"


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(_STATIC)
        host = Headers(scope=scope).get("host")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
                    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Referrer-Policy", "same-origin")
                location = headers.get("location")
                if location is not None and host:
                    headers["location"] = _relative(location, host)
            await send(message)

        await self.app(scope, receive, with_headers)


def _relative(location: str, host: str) -> str:
    for scheme in ("http://", "https://"):
        prefix = scheme + host
        if location.startswith(prefix) and location[len(prefix) : len(prefix) + 1] in ("/", ""):
            return location[len(prefix) :] or "/"
    return location
