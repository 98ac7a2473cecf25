"""The web viewer in a real headless Chromium: login, the run list, a run page, live runs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import Served

pytestmark = pytest.mark.browser


def _login(page: Page, served: Served, path: str = "/") -> None:
    page.goto(served.url + path)
    expect(page).to_have_url(f"{served.url}/login?next={path}")  # signed out: sent to login
    page.fill("#token", served.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(served.url + path)


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
    """The list shows the demo run with its agent, status, duration and span counts."""
    _login(page, served)
    row = page.locator(f"tr[data-run='{served.run.instance_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Research assistant (demo)")
    expect(row.locator(".badge")).to_have_text("✓ complete")
    expect(row).to_contain_text("16")
    expect(row).to_contain_text("1 failed")
    expect(row).to_contain_text("1 cancelled")
    expect(row.locator("td.num").first).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d\d s$"))
    page.screenshot(path=str(artifacts / "viewer-runs.png"), full_page=True)

    page.select_option("select[name=status]", "failed")
    expect(page).to_have_url(f"{served.url}/?agent=&status=failed")
    expect(page.locator(".empty")).to_contain_text("No runs match these filters")
    page.select_option("select[name=status]", "complete")
    expect(page.locator(f"tr[data-run='{served.run.instance_id}']")).to_be_visible()


def test_run_page(page: Page, served: Served, artifacts: Path) -> None:
    """The run page shows the span tree, the timeline, payloads and the failed span's error."""
    _login(page, served)
    page.click(f"a[href='/runs/{served.run.instance_id}']")
    expect(page).to_have_url(f"{served.url}/runs/{served.run.instance_id}")
    expect(page.locator("h1")).to_have_text("Research assistant (demo)")

    tree = page.locator("#tree .tree-row")
    expect(tree).to_have_count(16)
    expect(tree.first).to_contain_text("Plan")
    failed_row = page.locator("#tree .tree-row[data-status='failed']")
    expect(failed_row).to_have_count(1)
    expect(failed_row).to_have_attribute("style", "--depth: 2")
    expect(failed_row).to_contain_text("SimulatedToolError: web_search timed out")
    cancelled = page.locator("#tree .tree-row[data-status='cancelled']")
    expect(cancelled).to_contain_text("cancelled before it started")

    bars = page.locator("#timeline .wf-bar")
    expect(bars).to_have_count(16)
    plan_bar = bars.first.bounding_box()
    assert plan_bar is not None
    track = page.locator("#timeline .wf-track").first.bounding_box()
    assert track is not None
    assert plan_bar["width"] > track["width"] * 0.8  # the plan spans almost the whole run
    expect(page.locator("#timeline .wf-bar.status-bg-failed")).to_have_count(1)

    error_summary = page.locator("#errors")
    expect(error_summary).to_contain_text("1 failed span")
    failed_card = page.locator("details.status-card-failed")
    expect(failed_card).to_have_attribute("open", "")
    expect(failed_card.locator(".error-box")).to_contain_text(
        "SimulatedToolError: web_search timed out after 0.3 s (simulated)"
    )
    expect(failed_card.locator("pre.json").first).to_contain_text('"tool": "web_search"')
    expect(failed_card.locator("pre.json").first).to_contain_text('"attempt": 1')
    page.screenshot(path=str(artifacts / "viewer-run.png"), full_page=True)

    # Clicking a span in the tree opens its card with the params and result as JSON.
    calculator = page.locator("#tree .tree-row", has_text="calculator")
    calculator.locator("a").click()
    card = page.locator("details:target")
    card.locator("summary").click()
    expect(card.locator("pre.json").nth(1)).to_contain_text('"output": "420"')
    expect(page.locator("body")).not_to_have_attribute("data-refresh", "2")


def test_unknown_run_is_404(page: Page, served: Served) -> None:
    """An unknown run id shows a not-found page."""
    _login(page, served)
    response = page.goto(served.url + "/runs/no-such-run")
    assert response is not None
    assert response.status == 404
    expect(page.locator(".alert")).to_contain_text("No run with id no-such-run")


def _api(served: Served, method: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}
    ) as client:
        response = client.request(method, path, json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def test_active_run_refreshes_until_it_finishes(page: Page, served: Served) -> None:
    """A run that is still active refreshes itself and shows its new status when done."""
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
    _login(page, served, f"/runs/{instance_id}")
    expect(page.locator(".live")).to_contain_text("Live")
    expect(page.locator("h1 + .badge")).to_have_text("● active")

    _api(served, "POST", f"/api/v1/agent_instance/{instance_id}/finish", {"status": "complete"})
    # No sleep: wait for the page's own refresh to show the new status.
    expect(page.locator("h1 + .badge")).to_have_text("✓ complete", timeout=10_000)
    expect(page.locator(".live")).to_have_count(0)
