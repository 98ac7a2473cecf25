"""The web viewer in a real headless Chromium: login, the run list, a run page, live runs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from .conftest import Served

pytestmark = pytest.mark.browser


def _login(page: Page, served: Served, path: str = "/") -> None:
    page.goto(served.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))  # signed out: sent to login
    page.fill("#token", served.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(served.url + path)


def _no_axe_violations(page: Page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def _api(served: Served, method: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}
    ) as client:
        response = client.request(method, path, json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def _rows(page: Page) -> Any:
    return page.locator("#rows .row:not([hidden])")


def _open_run(page: Page, served: Served, run_id: str, query: str = "") -> None:
    _login(page, served, f"/runs/{run_id}{query}")
    # The page marks itself complete once every span is loaded and its handlers can act
    # on them ("Loading spans…" in the status is there from the first paint).
    expect(page.locator("#run-view")).to_have_attribute("data-complete", "1")
    expect(page.locator("#tree-status")).to_contain_text("spans")


def test_login_rejects_a_bad_token(page: Page, served: Served, artifacts: Path) -> None:
    """A wrong token keeps the user on the login form with an error."""
    page.goto(served.url + "/")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.screenshot(path=str(artifacts / "viewer-login.png"))
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator(".alert")).to_contain_text("not valid")
    expect(page.locator("#token")).to_be_visible()


def test_run_list(page: Page, served: Served, artifacts: Path) -> None:
    """The list shows the demo run with its agent, status, counts, model, tokens and cost."""
    _login(page, served, f"/?q={served.run.instance_id}")
    row = page.locator(f"tr[data-run='{served.run.instance_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Research assistant (demo)")
    expect(row.locator(".badge")).to_have_text("✓ complete")
    expect(row).to_contain_text("16")
    expect(row).to_contain_text("1 failed")
    expect(row).to_contain_text("1 cancelled")
    expect(row.locator("td.num").first).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d\d s$"))
    _no_axe_violations(page)
    page.goto(served.url + "/")
    page.screenshot(path=str(artifacts / "viewer-runs.png"))

    page.select_option("select[name=status]", "cancelled")
    expect(page).to_have_url(re.compile(r"status=cancelled"))
    expect(page.locator(".empty")).to_contain_text("No runs match these filters")


def test_every_run_is_reachable_by_paging(page: Page, served: Served, many_runs: list[str]) -> None:
    """Next links walk all 130 runs of an agent once each; Previous walks back."""
    _login(page, served, "/?agent=synthetic-many")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen.extend(
            page.locator("tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")
        )
        following = page.locator("a[rel=next]")
        if following.count() == 0:
            break
        following.click()
    assert pages == 3
    assert seen == list(reversed(many_runs))  # newest first, none twice, none missing
    page.locator("a[rel=prev]").click()
    first = page.locator("tr[data-run]").first.get_attribute("data-run")
    assert first == many_runs[-51]

    # Sorted by errors: the failed runs (every seventh) come first.
    page.goto(served.url + "/?agent=synthetic-many&sort=errors")
    expect(page.locator("tr[data-run]").first.locator(".count.status-failed")).to_have_text(
        "1 failed"
    )
    # Search by run id.
    page.fill("input[name=q]", many_runs[17])
    page.press("input[name=q]", "Enter")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(page.locator("tr[data-run]")).to_contain_text("gpt-4o-mini")


def test_run_page_tree_and_detail(page: Page, served: Served, artifacts: Path) -> None:
    """The tree shows every span with status and a bar; selecting one loads its detail."""
    _open_run(page, served, served.run.instance_id)
    expect(page.locator("h1")).to_have_text("Research assistant (demo)")
    expect(_rows(page)).to_have_count(16)
    expect(_rows(page).first).to_contain_text("Plan")
    failed = page.locator("#rows .row[data-status='failed']")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("SimulatedToolError: web_search timed out")
    expect(page.locator("#rows .row[data-status='cancelled']")).to_contain_text(
        "cancelled before it started"
    )
    plan_bar = _rows(page).first.locator(".bar").bounding_box()
    track = _rows(page).first.locator(".col-time").bounding_box()
    assert plan_bar is not None
    assert track is not None
    assert plan_bar["width"] > track["width"] * 0.8  # the plan spans almost the whole run
    expect(page.locator("#axis .tick").first).to_have_text("0 ms")

    failed.click()
    expect(page).to_have_url(re.compile(r"\?span=" + str(failed.get_attribute("data-span"))))
    detail = page.locator("#detail")
    expect(detail.locator(".error-box")).to_contain_text(
        "SimulatedToolError: web_search timed out after 0.3 s (simulated)"
    )
    expect(detail).to_contain_text("web_search")
    _no_axe_violations(page)
    page.screenshot(path=str(artifacts / "viewer-run.png"))

    # The selected span is in the URL: a reload opens it again.
    page.reload()
    expect(page.locator("#rows .row.selected")).to_have_attribute("data-status", "failed")
    expect(detail.locator(".error-box")).to_be_visible()


def test_keyboard_collapse_search_and_failed_only(page: Page, served: Served) -> None:
    """Arrow keys move and fold, search filters by text, "failed only" keeps failures."""
    _open_run(page, served, served.run.instance_id)
    page.locator("#viewport").focus()
    page.keyboard.press("ArrowDown")  # selects the first row (the plan)
    expect(page.locator("#rows .row.selected")).to_contain_text("Plan")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#rows .row.selected")).to_have_attribute("aria-level", "2")
    task = page.locator("#rows .row[aria-level='2'][aria-expanded='true']").first
    task_id = task.get_attribute("data-span")
    task.click()
    page.locator("#viewport").focus()
    task = page.locator(f"#rows .row[data-span='{task_id}']")
    page.keyboard.press("ArrowLeft")  # a sub-task with children: collapses it
    expect(task).to_have_attribute("aria-expanded", "false")
    assert _rows(page).count() < 16
    page.keyboard.press("ArrowRight")
    expect(_rows(page)).to_have_count(16)
    page.keyboard.press("ArrowRight")  # expanded already: goes to its first child
    expect(page.locator("#rows .row.selected")).to_have_attribute("aria-level", "3")
    page.keyboard.press("ArrowLeft")  # a leaf: goes to the parent
    expect(task).to_have_class(re.compile("selected"))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # collapsed already: goes to the parent
    expect(page.locator("#rows .row.selected")).to_contain_text("Plan")
    page.keyboard.press("Enter")  # zoom to the plan's subtree
    expect(page.locator("#zoom-out")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#zoom-out")).to_be_hidden()

    page.fill("#tree-search", "calculator")
    expect(page.locator("#tree-status")).to_contain_text("matching span")
    expect(page.locator("#rows .row", has_text="calculator").first).to_be_visible()
    assert _rows(page).count() < 16
    page.fill("#tree-search", "")
    page.check("#failed-only")
    expect(page.locator("#tree-status")).to_have_text("1 matching span of 16")
    expect(page.locator("#rows .row[data-status='failed']")).to_have_count(1)
    # Payload text (not shown in the tree) is searched on the server.
    page.uncheck("#failed-only")
    page.fill("#tree-search", '"attempt"')
    expect(page.locator("#rows .row[data-status='failed']")).to_have_count(1)


def test_big_run_renders_only_visible_rows(
    page: Page, served: Served, big_run: str, artifacts: Path
) -> None:
    """3,000 spans: a few dozen rows in the DOM, every span reachable, deep spans by URL."""
    _open_run(page, served, big_run)
    expect(page.locator("#tree-status")).to_have_text("3,000 spans")
    assert _rows(page).count() < 120
    assert page.evaluate("document.getElementsByTagName('*').length") < 2000
    page.locator("#viewport").evaluate("v => { v.scrollTop = v.scrollHeight; }")
    expect(page.locator("#rows .row").last).to_be_attached()
    deep = f"{big_run}-s2999"
    page.goto(f"{served.url}/runs/{big_run}?span={deep}")
    expect(page.locator(f"#rows .row[data-span='{deep}']")).to_have_class(re.compile("selected"))
    expect(page.locator("#detail")).to_contain_text(deep)
    page.screenshot(path=str(artifacts / "viewer-big-run.png"))


def test_llm_span_shows_conversation_tokens_and_cost(
    page: Page, served: Served, big_run: str, artifacts: Path
) -> None:
    """An LLM span's messages read as a conversation; tokens and cost add up per run."""
    llm = f"{big_run}-s3"  # every fourth span of the synthetic run is an LLM call
    _open_run(page, served, big_run, f"?span={llm}")
    detail = page.locator("#detail")
    expect(detail.locator(".msg.role-system")).to_contain_text("careful research assistant")
    expect(detail.locator(".msg.role-user")).to_contain_text("Question 3?")
    expect(detail.locator(".msg.role-assistant")).to_contain_text("Answer 3:\nline two")
    expect(detail).to_contain_text("203 in · 23 out · 226 total")
    expect(detail).to_contain_text("gpt-4o-mini")
    expect(page.locator("#run-tokens")).not_to_have_text("–")
    expect(page.locator("#run-cost")).to_have_text(re.compile(r"^\$\d"))
    page.screenshot(path=str(artifacts / "viewer-llm-span.png"))


def test_unknown_pages_are_html_404s(page: Page, served: Served) -> None:
    """An unknown run id and an unknown path both show the viewer's not-found page."""
    _login(page, served)
    response = page.goto(served.url + "/runs/no-such-run")
    assert response is not None
    assert response.status == 404
    expect(page.locator(".alert")).to_contain_text("No run with id no-such-run")
    response = page.goto(served.url + "/no/such/page")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")


def test_live_run_updates_without_reloading(page: Page, served: Served) -> None:
    """New spans and the final status of a live run appear in place, with no page reload."""
    registered = _api(
        served,
        "POST",
        "/api/v1/agent_instance/register",
        {
            "agent_id": "live-agent",
            "agent_version": {"name": "Live agent", "external_identifier": "v1"},
            "agent_schema_version": {"external_identifier": "s1", "span_type_schemas": []},
            "idempotency_key": str(uuid.uuid4()),
        },
    )
    instance_id = str(registered["details"]["id"])
    _api(served, "POST", f"/api/v1/agent_instance/{instance_id}/start", {})
    _open_run(page, served, instance_id)
    expect(page.locator("#live")).to_be_visible()
    expect(page.locator("#run-status .badge")).to_have_text("● active")
    page.evaluate("window.__samePage = true")

    _api(
        served,
        "POST",
        "/api/v1/agent_spans",
        {
            "details": {
                "agent_instance_id": instance_id,
                "schema_name": "agent:step",
                "status": "active",
                "payload": {"model": "gpt-4o"},
            },
            "idempotency_key": str(uuid.uuid4()),
        },
    )
    expect(page.locator("#rows .row[data-status='active']")).to_contain_text("agent:step")
    _api(served, "POST", f"/api/v1/agent_instance/{instance_id}/finish", {"status": "complete"})
    expect(page.locator("#run-status .badge")).to_have_text("✓ complete", timeout=10_000)
    assert page.evaluate("window.__samePage") is True  # updated in place


def test_dark_theme_follows_the_system(browser: Any, served: Served, artifacts: Path) -> None:
    """With a dark system setting the pages turn dark, and stay readable (axe)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    try:
        page = context.new_page()
        _open_run(page, served, served.run.instance_id)
        page.locator("#rows .row[data-status='failed']").click()
        expect(page.locator("#detail .error-box")).to_be_visible()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        _no_axe_violations(page)
        page.screenshot(path=str(artifacts / "viewer-run-dark.png"))
    finally:
        context.close()


def test_times_are_local_and_relative(page: Page, served: Served) -> None:
    """Start times show in the browser's zone, with how long ago on hover."""
    _login(page, served, f"/?q={served.run.instance_id}")
    when = page.locator(f"tr[data-run='{served.run.instance_id}'] time")
    expect(when).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    expect(when).to_have_attribute("title", re.compile(r"(ago|now) · \d{4}-"))


_STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def test_pages_work_under_a_strict_csp(page: Page, served: Served) -> None:
    """With script-src/style-src 'self' on every page the scripts run, styles set from
    JS apply (CSSOM), and nothing the scripts do is reported as a CSP violation."""

    def with_csp(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": _STRICT_CSP}
        )

    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.route(re.compile(r"^http://127\.0\.0\.1:\d+/(runs/|\?|login|$)"), with_csp)
    _open_run(page, served, served.run.instance_id)
    expect(_rows(page)).to_have_count(16)
    page.locator("#rows .row[data-status='failed']").click()
    expect(page.locator("#detail .error-box")).to_be_visible()
    bar = _rows(page).first.locator(".bar").bounding_box()
    assert bar is not None
    assert bar["width"] > 100  # widths set through the CSSOM, which the CSP allows
    assert page.evaluate("window.__csp") == []
    page.goto(served.url + "/")
    expect(page.locator("tr[data-run]").first).to_be_visible()
    assert page.evaluate("window.__csp") == []
