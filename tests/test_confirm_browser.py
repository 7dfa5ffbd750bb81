"""Destructive actions ask first, in Chromium (issue 15, finding 3): with JavaScript a dialog
(hx-confirm; dismissing it changes nothing), without JavaScript a confirmation page."""

from datetime import datetime

from playwright.sync_api import expect

from openduty.extensions import db
from openduty.models import Schedule, Service, User
from tests import factories, factories_events, factories_schedules
from tests.browser import log_in


def _exists(model, object_id: int) -> bool:
    db.session.expire_all()
    return db.session.get(model, object_id) is not None


def test_with_javascript_a_dialog_asks(page, live_server, admin):
    service = factories_events.make_service(name="Web")
    factories_events.make_incident(factories_events.make_integration(service))
    log_in(page, live_server.url, admin.email)
    page.goto(f"{live_server.url}/services/{service.id}")

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete service (with its incidents)").click()
    page.wait_for_timeout(500)
    assert asked and "Delete the service Web" in asked[0]
    assert _exists(Service, service.id)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete service (with its incidents)").click()
    page.wait_for_url(f"{live_server.url}/services")
    expect(page.locator(".flash").first).to_contain_text("Service Web deleted")
    assert not _exists(Service, service.id)


def test_with_javascript_an_in_place_removal_asks(page, live_server, admin):
    """The layer's button swaps the layers panel in place once the dialog is accepted."""
    bob = factories.make_user(name="Bob")
    schedule = factories_schedules.make_schedule(name="Ops")
    factories_schedules.make_layer(schedule, [bob], datetime(2026, 1, 1), name="Primary")
    log_in(page, live_server.url, admin.email)
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    page.evaluate("window.notReloaded = true")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove layer").click()
    expect(page.locator("#layers")).to_contain_text("Layer removed")
    assert page.evaluate("window.notReloaded") is True


def test_without_javascript_a_page_asks(browser, live_server, admin):
    bob = factories.make_user(name="Bob", email="bob@example.com")
    schedule = factories_schedules.make_schedule(name="Ops")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server.url, admin.email)

    page.goto(f"{live_server.url}/users/")
    page.get_by_role("button", name="Deactivate Bob").click()
    expect(page.locator("h1")).to_have_text("Deactivate Bob?")
    db.session.expire_all()
    assert db.session.get(User, bob.id).active
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"{live_server.url}/users/")
    page.get_by_role("button", name="Deactivate Bob").click()
    page.get_by_role("button", name="Deactivate").click()
    expect(page.locator(".flash").first).to_contain_text("Deactivated Bob")
    db.session.expire_all()
    assert not db.session.get(User, bob.id).active

    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    page.get_by_role("button", name="Delete schedule").click()
    expect(page.locator("h1")).to_have_text("Delete the schedule Ops?")
    assert _exists(Schedule, schedule.id)
    page.locator("#confirm button[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/schedules")
    assert not _exists(Schedule, schedule.id)
    context.close()
