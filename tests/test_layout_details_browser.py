"""Issue 15 in Debian's Chromium: no extra space above a card's heading and snooze / reassign beside
their buttons (finding 9); overrides hatched, long notes wrapped (4); the header's "On call now"
following a layer change (5)."""

from datetime import datetime, timedelta

from playwright.sync_api import expect

from tests import factories, factories_events, factories_schedules
from tests.browser import log_in


def test_card_headings_start_at_the_cards_padding(page, live_server, admin):
    service = factories_events.make_service(name="Web")
    log_in(page, live_server.url, admin.email)
    page.goto(f"{live_server.url}/services/{service.id}")
    gaps = page.evaluate(
        """[...document.querySelectorAll('.card > h2:first-child, .card > h1:first-child')].map(h => {
               const card = h.parentElement.getBoundingClientRect(), top = h.getBoundingClientRect().top;
               return top - card.top - parseFloat(getComputedStyle(h.parentElement).paddingTop); })"""
    )
    assert gaps and all(abs(gap) <= 2 for gap in gaps), gaps


def test_on_call_now_follows_a_layer_change_without_a_reload(page, live_server, admin):
    """Issue 15, finding 5: the header's "On call now" stayed stale after a layer edit until reload."""
    schedule = factories_schedules.make_schedule(name="Ops")
    factories_schedules.make_layer(schedule, [admin], datetime(2026, 1, 1), name="Primary")
    log_in(page, live_server.url, admin.email)
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    expect(page.locator("#on-call-now")).to_contain_text(admin.name)
    page.evaluate("window.notReloaded = true")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove layer").click()
    expect(page.locator("#on-call-now")).to_contain_text("Nobody")
    assert page.evaluate("window.notReloaded") is True


def test_overrides_are_hatched_in_both_views(page, live_server, admin, clock):
    """Issue 15, finding 4: an inline `background` reset the override's stripes."""
    now = clock.now()
    schedule = factories_schedules.make_schedule(name="Ops")
    factories_schedules.make_override(schedule, admin, now, now + timedelta(hours=5))
    log_in(page, live_server.url, admin.email)
    for view in ("month", "week"):
        page.goto(f"{live_server.url}/schedules/{schedule.id}?view={view}&date={now.date().isoformat()}")
        override = page.locator(".seg.override").first
        assert override.evaluate("el => getComputedStyle(el).backgroundImage").startswith("repeating-linear-gradient")


def test_a_long_override_note_wraps(page, live_server, admin, clock):
    now = clock.now()
    schedule = factories_schedules.make_schedule(name="Ops")
    factories_schedules.make_override(schedule, admin, now, now + timedelta(hours=5), note="n" * 500)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server.url, admin.email)
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_snooze_and_reassign_sit_beside_their_buttons(page, live_server, admin):
    """Issue 15, finding 9: the snooze duration floated above the buttons and the reassign select
    took a line of its own; each control now sits on one line with its own button, and a long name
    in the reassign list shrinks the select, not the page."""
    service = factories_events.make_service(name="Web")
    incident = factories_events.make_incident(factories_events.make_integration(service))
    factories.make_user(name="Maximiliane " + "Okonkwo-Vandersteen-" * 6 + "Smith")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        log_in(page, live_server.url, admin.email)
        page.goto(f"{live_server.url}/incidents/{incident.id}")
        for control, button in (("Snooze for", "Snooze"), ("Reassign to", "Reassign")):
            select = page.get_by_label(control).bounding_box()
            pressed = page.get_by_role("button", name=button, exact=True).bounding_box()
            middle = select["y"] + select["height"] / 2
            assert pressed["y"] <= middle <= pressed["y"] + pressed["height"], (width, control, select, pressed)
            assert select["x"] < pressed["x"], (width, control)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.context.clear_cookies()
