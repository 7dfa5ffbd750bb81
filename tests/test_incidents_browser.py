"""The incident console in Debian's Chromium: the polled list keeps filters, checked boxes and
scroll while new incidents arrive, and bulk / per-row actions work in place without a reload."""

import threading

import pytest
from flask import request
from playwright.sync_api import expect

from openduty.extensions import db
from openduty.models import Incident
from tests import factories, factories_events

POLL_SECONDS = 0.3


@pytest.fixture
def console(app, live_server, page):
    """A logged-in browser on a short poll interval, with two services' incidents."""
    app.config["INCIDENTS_POLL_SECONDS"] = POLL_SECONDS
    user = factories.make_user(email="rita@example.com", name="Rita")
    web = factories_events.make_integration(factories_events.make_service(name="Web"))
    other = factories_events.make_integration(factories_events.make_service(name="Batch"))
    checkout = [factories_events.make_incident(web, summary=f"Checkout slow {n}") for n in range(12)]
    factories_events.make_incident(web, summary="Login errors")  # same service, other search
    factories_events.make_incident(other, summary="Checkout batch late")  # same search, other service
    page.set_viewport_size({"width": 1000, "height": 420})
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Welcome, Rita")
    return web, checkout


def _row(page, incident):
    return page.locator("#results tr", has=page.locator(f"#pick-{incident.id}"))


def test_polling_keeps_filters_checks_and_scroll_then_bulk_actions_in_place(page, live_server, console):
    web, checkout = console
    page.goto(f"{live_server.url}/incidents?service_id={web.service_id}&q=checkout")
    expect(page.locator("#results")).to_contain_text("12 incidents")
    expect(page.locator("#results")).not_to_contain_text("Login errors")
    expect(page.locator("#results")).not_to_contain_text("Checkout batch late")
    expect(page.locator("#open-count")).to_have_text("14")

    first, second = checkout[3], checkout[4]
    page.check(f"#pick-{first.id}")
    page.check(f"#pick-{second.id}")  # (Playwright scrolls them into view to click them)
    page.evaluate("window.scrollTo(0, 130)")  # the focused box is now out of view
    scrolled = page.evaluate("window.scrollY")
    assert scrolled == 130  # the list is taller than the window
    page.evaluate("window.__stillHere = true")

    # A new matching incident arrives server-side; the polled list picks it up by itself.
    factories_events.make_incident(web, summary="Checkout slow NEW")
    expect(page.locator("#results")).to_contain_text("Checkout slow NEW", timeout=10_000)
    expect(page.locator("#results")).to_contain_text("13 incidents")
    expect(page.locator("#open-count")).to_have_text("15", timeout=10_000)

    # Filters, checked boxes and scroll survived the swaps.
    assert f"service_id={web.service_id}" in page.url and "q=checkout" in page.url
    expect(page.locator("select[name=service_id]")).to_have_value(str(web.service_id))
    expect(page.locator("input[name=q]")).to_have_value("checkout")
    expect(page.locator("#results")).not_to_contain_text("Checkout batch late")
    expect(page.locator(f"#pick-{first.id}")).to_be_checked()
    expect(page.locator(f"#pick-{second.id}")).to_be_checked()
    assert page.locator("#results input[name=incident_ids]:checked").count() == 2
    assert abs(page.evaluate("window.scrollY") - scrolled) <= 5

    # Bulk acknowledge: the two rows change status in place, the notice says so.
    page.click(".bulk-actions button[value=acknowledge]")
    expect(page.locator("#console-notice")).to_have_text("Acknowledged 2 incidents.")
    expect(_row(page, first).locator(".badge-acknowledged")).to_be_visible()
    expect(_row(page, second).locator(".badge-acknowledged")).to_be_visible()
    expect(_row(page, checkout[5]).locator(".badge-triggered")).to_be_visible()

    # Bulk resolve the same two: they leave the open list and the nav count drops at once.
    page.click(".bulk-actions button[value=resolve]")
    expect(page.locator("#console-notice")).to_have_text("Resolved 2 incidents.")
    expect(page.locator("#open-count")).to_have_text("13")
    expect(page.locator(f"#pick-{first.id}")).to_have_count(0)
    expect(page.locator("#results")).to_contain_text("11 incidents")

    # Per-row acknowledge, also in place.
    _row(page, checkout[5]).locator("button", has_text="Ack").click()
    expect(page.locator("#console-notice")).to_have_text(f"Incident #{checkout[5].number} acknowledged.")
    expect(_row(page, checkout[5]).locator(".badge-acknowledged")).to_be_visible()
    expect(_row(page, checkout[5]).locator("button", has_text="Ack")).to_have_count(0)

    assert page.evaluate("window.__stillHere") is True  # never a full page load
    assert f"service_id={web.service_id}" in page.url and "q=checkout" in page.url
    db.session.expire_all()
    statuses = {i.id: i.status for i in db.session.scalars(db.select(Incident))}
    assert statuses[first.id] == statuses[second.id] == "resolved"
    assert statuses[checkout[5].id] == "acknowledged"
    assert list(statuses.values()).count("triggered") == 12


def test_filter_change_by_htmx_updates_what_bulk_returns_to(page, live_server, console):
    """After filtering in place, the list polls (and bulk actions return to) the new filters."""
    web, checkout = console
    page.goto(f"{live_server.url}/incidents")
    expect(page.locator("#results")).to_contain_text("14 incidents")
    page.evaluate("window.__stillHere = true")
    page.fill("input[name=q]", "login")
    expect(page.locator("#results")).to_contain_text("1 incident")
    assert "q=login" in page.url
    expect(page.locator("#results input[name=next]")).to_have_value("/incidents?status=open&q=login")
    factories_events.make_incident(web, summary="Login slow")
    factories_events.make_incident(web, summary="Checkout slow again")
    expect(page.locator("#results")).to_contain_text("Login slow", timeout=10_000)
    expect(page.locator("#results")).not_to_contain_text("Checkout slow again")
    assert page.evaluate("window.__stillHere") is True


def test_a_poll_in_flight_does_not_undo_a_fresh_check(app, page, live_server, console):
    """A poll answered after the user checked a box must not uncheck it."""
    web, checkout = console
    started, release = threading.Event(), threading.Event()

    def hold_one_poll():
        if request.headers.get("HX-Request") and request.path == "/incidents" and not started.is_set():
            started.set()
            release.wait(10)

    app.before_request_funcs.setdefault(None, []).append(hold_one_poll)
    page.goto(f"{live_server.url}/incidents")
    assert started.wait(10)  # a poll is now in flight, its answer computed without the box below
    page.check(f"#pick-{checkout[0].id}")
    release.set()
    page.wait_for_timeout(int(POLL_SECONDS * 4000))  # several polls later
    expect(page.locator(f"#pick-{checkout[0].id}")).to_be_checked()


def test_the_incident_timeline_pages_older_entries_and_polls_in_new_ones(app, live_server, page):
    app.config["INCIDENTS_POLL_SECONDS"] = POLL_SECONDS
    user = factories.make_user(email="rita@example.com", name="Rita")
    incident = factories_events.make_incident(summary="Disk full on db1")
    for n in range(1, 80):
        incident.log("note", f"Entry {n}.", by=user)
    db.session.commit()
    total = len(incident.log_entries)  # the notes, the trigger and what escalation wrote
    page.goto(live_server.url + "/login")
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/incidents/{incident.id}")
    entries = page.locator("#timeline-entries li.entry")
    expect(entries).to_have_count(50)
    page.evaluate("window.notReloaded = true")
    page.click("text=Show older entries")
    expect(entries).to_have_count(total)  # in place, the oldest last
    expect(entries.last).to_contain_text("Triggered")
    incident.log("note", "Entry 80.", by=user)
    db.session.commit()
    expect(entries.first).to_contain_text("Entry 80.")  # the poll brought it to the top
    expect(entries).to_have_count(total + 1)
    assert page.evaluate("window.notReloaded") is True
