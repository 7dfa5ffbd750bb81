"""The calendar in a real browser: htmx month navigation without a full reload, and adding an override."""

from datetime import UTC, datetime

from playwright.sync_api import expect

from openduty.extensions import db
from openduty.models import ScheduleOverride
from tests.factories import PASSWORD
from tests.factories_schedules import make_layer, make_schedule


def test_navigate_months_and_add_an_override(page, live_server, admin, team, clock):
    clock.set(datetime(2026, 3, 4, 12, tzinfo=UTC))
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, team[:2], datetime(2026, 3, 2, 9), 1, "weeks")

    page.goto(f"{live_server.url}/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    expect(page.locator(".calendar-title")).to_have_text("March 2026")
    expect(page.locator(".seg.now").first).to_contain_text("Alice")

    # htmx swaps the calendar only: a marker on the window survives, a full load would drop it.
    page.evaluate("window.__stillHere = true")
    page.click("a[rel=next]")
    expect(page.locator(".calendar-title")).to_have_text("April 2026")
    assert page.evaluate("window.__stillHere") is True
    assert "date=2026-04-01" in page.url
    page.click("a[rel=prev]")
    expect(page.locator(".calendar-title")).to_have_text("March 2026")

    # Click a day's "+": the override form comes pre-filled with that day: the viewer's day (the
    # admin's zone is UTC), written in the schedule's zone as the form takes it (01:00 in Budapest).
    page.click("[data-date='2026-03-10'] .add-override")
    expect(page.locator("#override-form input[name=start]")).to_have_value("2026-03-10T01:00")
    page.select_option("#override-form select[name=user_id]", label="Carol")
    page.click("#override-form button[type=submit]")
    expect(page.locator(".flash").first).to_contain_text("Carol is on call from")
    expect(page.locator("[data-date='2026-03-10'] .seg.override")).to_contain_text("Carol")
    assert db.session.scalar(db.select(db.func.count(ScheduleOverride.id))) == 1


def test_reorder_and_edit_layers_in_place(page, live_server, admin, team, clock):
    """htmx: moving and editing layers swaps the layers panel and refreshes the calendar, no reload."""
    clock.set(datetime(2026, 3, 4, 12, tzinfo=UTC))
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, team[:2], datetime(2026, 3, 2, 9), 1, "weeks", name="Primary")
    top = make_layer(schedule, [team[3]], datetime(2026, 3, 2, 9), 1, "weeks", name="Dave always")

    page.goto(f"{live_server.url}/login")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    expect(page.locator(".seg.now").first).to_contain_text("Dave")
    page.evaluate("window.__stillHere = true")

    page.click("button[aria-label='Move Dave always down']")
    expect(page.locator("#layers .flash")).to_have_text("Layer Dave always is now number 1 of 2.")
    expect(page.locator("#layers article h3")).to_have_text(["2. Primary", "1. Dave always"])
    expect(page.locator(".seg.now").first).to_contain_text("Alice")  # the calendar refreshed itself

    primary = page.locator("#layers article", has_text="2. Primary")
    primary.locator("summary", has_text="Edit this layer").click()
    primary.locator("input[name=shift_length]").fill("0")
    primary.locator("button", has_text="Save layer").click()
    expect(page.locator("#layers .field-error")).to_have_text("Shift length must be at least 1.")
    primary = page.locator("#layers article", has_text="2. Primary")
    expect(primary.locator("details.layer-edit")).to_have_attribute("open", "")
    primary.locator("input[name=shift_length]").fill("1")
    primary.locator("textarea[name=participants]").fill("bob@example.com\nalice@example.com")
    primary.locator("button", has_text="Save layer").click()
    expect(page.locator("#layers .flash")).to_have_text("Layer Primary saved.")
    expect(page.locator(".seg.now").first).to_contain_text("Bob")
    assert page.evaluate("window.__stillHere") is True
    db.session.expire_all()
    assert db.session.get(type(top), top.id).position == 0
