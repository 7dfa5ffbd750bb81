"""Issue 13 in Debian's Chromium: an event rule made and tested on its page, maintenance started from
the service page, and what events then do (a suppressed alert listed; an incident in maintenance)."""

import json

from playwright.sync_api import expect

from openduty.extensions import db
from openduty.models import Incident
from tests import factories
from tests.factories_escalation import make_policy, make_service
from tests.factories_events import make_integration


def test_event_rule_and_maintenance_through_the_browser(page, live_server, admin, client):
    service = make_service(make_policy([(5, [admin])]), name="Checkout")
    integration = make_integration(service)
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Log out")

    page.goto(f"{live_server.url}/services/{service.id}/event-rules")
    page.click("text=Add a rule")
    page.fill("input[name=field-0]", "severity")
    page.select_option("select[name=operator-0]", "equals")
    page.fill("input[name=value-0]", "info")
    page.select_option("select[name=action]", "suppress")
    page.click("button:has-text('Save')")
    expect(page.locator("table")).to_contain_text("severity")

    sample = {"summary": "Backup finished", "severity": "info", "source": "db1"}
    page.fill("#tester textarea[name=event]", json.dumps(sample))
    page.click("#tester button:has-text('Test')")
    expect(page.locator("#tester-result")).to_contain_text("suppress")

    def send(summary: str, severity: str) -> int:
        body = {"routing_key": integration.key, "event_action": "trigger",
                "payload": {"summary": summary, "severity": severity, "source": "db1"}}  # fmt: skip
        return client.post("/v2/enqueue", json=body).status_code

    assert send("Backup finished", "info") == 202
    page.goto(f"{live_server.url}/services/{service.id}")
    expect(page.locator("body")).to_contain_text("Backup finished")  # listed as a suppressed alert

    page.fill("#maintenance input[name=minutes]", "30")
    page.click("#maintenance button:has-text('Start now')")
    expect(page.locator("#maintenance")).to_contain_text("In maintenance until")
    assert send("Disk full", "critical") == 202
    db.session.expire_all()
    [incident] = db.session.scalars(db.select(Incident)).all()
    assert incident.summary == "Disk full" and incident.in_maintenance
    page.goto(f"{live_server.url}/incidents/{incident.id}")
    expect(page.locator("body")).to_contain_text("in maintenance")
