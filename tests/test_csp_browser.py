"""Every page works under the Content-Security-Policy in Debian's Chromium: no violations reported,
htmx swaps included (issue 8, finding 8)."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from openduty.ack_links import ack_token
from tests import factories_escalation, factories_events
from tests.factories import PASSWORD, make_contact_method
from tests.factories_schedules import make_layer, make_schedule

# Runs before any page script on every navigation; CSP does not apply to init scripts.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || ""));
});
"""


@pytest.mark.usefixtures("channels_configured")
def test_pages_work_under_the_csp(page, live_server, admin, team, clock):
    clock.set(datetime(2026, 3, 4, 12, tzinfo=UTC))
    schedule = make_schedule(name="Ops")
    make_layer(schedule, team[:2], datetime(2026, 3, 2, 9), 1, "weeks")
    policy = factories_escalation.make_policy([(5, [schedule])])
    service = factories_escalation.make_service(policy, name="API")
    integration = factories_events.make_integration(service)
    image = {"src": "https://grafana.example.com/1.png", "alt": "graph"}
    incident = factories_events.make_incident(integration, details={"images": [image]})
    make_contact_method(admin)

    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.add_init_script(RECORD_VIOLATIONS)
    violations = []

    def visit(path: str):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        violations.extend(f"{path}: {v}" for v in page.evaluate("window.__csp"))

    visit("/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Welcome")
    paths = [
        "/",
        "/incidents",
        f"/incidents/{incident.id}",
        "/services",
        f"/services/{service.id}",
        "/policies",
        f"/policies/{policy.id}",
        "/schedules",
        f"/schedules/{schedule.id}",
        "/users/",
        "/profile",
        f"/ack/{ack_token([incident.id], admin.id)}",
    ]
    for path in paths:
        visit(path)

    # htmx in action: month navigation swaps the calendar; the profile adds a contact method inline.
    visit(f"/schedules/{schedule.id}")
    page.click("a[rel=next]")
    expect(page.locator(".calendar-title")).to_have_text("April 2026")
    violations.extend(page.evaluate("window.__csp"))
    visit("/profile")
    form = page.locator("#contact-method-form")
    form.locator("select[name=kind]").select_option("sms")
    form.locator("input[name=address]").fill("+1 415 555 0100")
    form.locator("button[type=submit]").click()
    expect(page.locator("#contact-method-list")).to_contain_text("+14155550100")
    violations.extend(page.evaluate("window.__csp"))

    assert violations == []
    assert [m for m in console if "Content Security Policy" in m] == []
