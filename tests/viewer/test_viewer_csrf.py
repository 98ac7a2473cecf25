"""Login CSRF and forced logout in a real Chromium: a page of another origin posts the forms.

The attacker's page is served from another port of 127.0.0.1: another origin but the same
site, so the SameSite=Strict cookie alone does not stop it (cookies ignore ports).
Before issue 10 the cross-site login signed the browser in and the logout signed it out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import Served

pytestmark = pytest.mark.browser


@pytest.fixture(name="evil_site")
def fixture_evil_site(served: Served) -> Iterator[str]:
    """Another origin on 127.0.0.1 serving pages that auto-submit forms to the viewer."""
    pages = {
        "/login.html": f'<form id="f" method="post" action="{served.url}/login">'
        f'<input name="token" value="{served.token}"><input name="next" value="/"></form>',
        "/logout.html": f'<form id="f" method="post" action="{served.url}/logout"></form>',
    }

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            form = pages.get(self.path, "")
            body = f"<!doctype html><body>{form}<script>f.submit()</script></body>".encode()
            self.send_response(200 if form else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _signed_in(page: Page) -> bool:
    return any(cookie["name"] == "prefactor_token" for cookie in page.context.cookies())


def test_cross_site_login_is_refused(page: Page, served: Served, evil_site: str) -> None:
    with page.expect_response(f"{served.url}/login") as answer:
        page.goto(evil_site + "/login.html")
    assert answer.value.status == 403
    expect(page.locator("body")).to_contain_text("another site")
    assert not _signed_in(page)


def test_cross_site_logout_is_refused(page: Page, served: Served, evil_site: str) -> None:
    page.goto(served.url + "/login")
    page.fill("#token", served.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(served.url + "/")
    assert _signed_in(page)
    with page.expect_response(f"{served.url}/logout") as answer:
        page.goto(evil_site + "/logout.html")
    assert answer.value.status == 403
    assert _signed_in(page)
    page.goto(served.url + "/")
    expect(page).to_have_url(served.url + "/")  # still signed in: no redirect to /login
