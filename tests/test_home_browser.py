"""The home dashboard in Debian's Chromium (issue 15): acknowledge an incident from home in place
with htmx (no reload, no console error), and the same with JavaScript off; at a phone's width and a
desktop's, with times in the person's own zone."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from openduty.extensions import db
from tests import factories, factories_escalation
from tests.browser import log_in

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def pager(app, clock):
    clock.set(NOW)
    nina = factories.make_user(email="nina@example.com", name="Nina", time_zone="America/New_York")
    service = factories_escalation.make_service(factories_escalation.make_policy([(5, [nina])]), name="Web")
    incidents = [factories_escalation.open_incident(service, summary=f"Checkout down {n}") for n in range(2)]
    for incident in incidents:
        incident.assigned_to_id = nina.id
        incident.created_at = NOW  # exactly (the test clock ticks)
    db.session.commit()
    return nina, incidents


def _acknowledge(page, incident):
    return page.locator(f"#my-incident-{incident.id}").get_by_role(
        "button", name=f"Acknowledge incident #{incident.number}"
    )


@pytest.mark.parametrize("width", [390, 1280])
def test_acknowledge_from_home_in_place(page, live_server, pager, width):
    nina, (first, second) = pager
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": width, "height": 844})
    log_in(page, live_server.url, nina.email, landed="text=Your open incidents")
    item = page.locator(f"#my-incident-{first.id}")
    expect(item.locator("time")).to_have_attribute("title", "Wed 04 Mar 2026 07:00:00 EST (America/New_York)")
    page.evaluate("window.notReloaded = true")
    _acknowledge(page, first).click()
    expect(page.locator("#home-notice")).to_have_text(f"Incident #{first.number} acknowledged.")
    expect(page.locator(f"#my-incident-{first.id} .badge-acknowledged")).to_be_visible(timeout=10_000)
    expect(page.locator(f"#my-incident-{first.id}").get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.locator(f"#my-incident-{second.id} .badge-triggered")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    button = page.locator(f"#my-incident-{second.id}").get_by_role(
        "button", name=f"Acknowledge incident #{second.number}"
    )
    box = button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= width  # reachable, not off-screen
    assert errors == []


def test_acknowledge_from_home_without_javascript(browser, live_server, pager):
    nina, (first, _) = pager
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        log_in(page, live_server.url, nina.email, landed="text=Your open incidents")
        page.locator(f"#my-incident-{first.id}").get_by_role(
            "button", name=f"Acknowledge incident #{first.number}"
        ).click()
        page.wait_for_url(live_server.url + "/")
        expect(page.locator(".flash")).to_contain_text(f"Incident #{first.number} acknowledged.")
        expect(page.locator(f"#my-incident-{first.id} .badge-acknowledged")).to_be_visible()
    finally:
        context.close()
