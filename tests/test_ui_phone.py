"""The console and the base layout on a phone (390 x 844) and a laptop (1280 x 800) in Debian's
Chromium: cards with Acknowledge / Resolve in thumb reach, a Resolve button that a long summary never
clips, a skip link, a favicon, a quiet console while the list polls, severity that never looks like a
status, dark mode from the system setting, and the calendar as an agenda on a phone (issue 15,
findings 1, 9 and 10)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from openduty import incidents
from openduty.extensions import db
from tests import factories, factories_events
from tests.factories_schedules import make_layer, make_schedule

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
URL = "https://grafana.example.com/d/abcdef123456/production-overview?orgId=1&var-host=db-primary-01.eu-west-1.internal&from=now-6h&to=now&viewPanel=42"
AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()


@pytest.fixture
def console(app, live_server, browser):
    """Two open incidents (one with a URL for a summary, on a long-named service), and a function
    that opens a logged-in page at a viewport."""
    app.config["INCIDENTS_POLL_SECONDS"] = 60  # no swap under a measurement; the poll test shortens it
    user = factories.make_user(email="rita@example.com", name="Rita")
    service = factories_events.make_service(name="payments-api.eu-west-1.production.internal (checkout + refunds)")
    integration = factories_events.make_integration(service)
    url_incident = factories_events.make_incident(integration, summary=URL)
    acked = factories_events.make_incident(integration, summary="Disk usage above 95% " + "on db-replica-07 " * 12)
    incidents.acknowledge(acked, by=user)
    db.session.commit()
    contexts = []

    def open_page(viewport, **options):
        context = browser.new_context(viewport=viewport, **options)
        contexts.append(context)
        page = context.new_page()
        page.goto(live_server.url + "/login")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", factories.PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Welcome, Rita")
        return page

    yield open_page, url_incident, acked
    for context in contexts:
        context.close()


def _inside(inner: dict, outer: dict) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def test_console_is_a_list_of_cards_with_thumb_sized_actions_on_a_phone(live_server, console):
    open_page, url_incident, acked = console
    page = open_page(PHONE, is_mobile=True, has_touch=True)
    page.goto(live_server.url + "/incidents")
    card = page.locator("#results tr", has=page.locator(f"#pick-{url_incident.id}"))
    summary = card.locator("td.summary")
    expect(summary).to_contain_text(URL)
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    # The whole summary shows, wrapped; nothing of the card is cut off or off-screen.
    assert summary.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for name in ("Acknowledge", "Resolve"):
        button = card.get_by_role("button", name=f"{name} #{url_incident.number}")
        button_box = button.bounding_box()
        assert _inside(button_box, {"x": 0, "y": box["y"], "width": PHONE["width"], "height": box["height"]})
        assert button_box["height"] >= 44 and button_box["width"] >= 120, (name, button_box)
        assert button_box["y"] > summary.bounding_box()["y"]  # at the card's foot, under the summary
    # Without JavaScript the same buttons post and come back to the list.
    card.get_by_role("button", name=f"Acknowledge #{url_incident.number}").click()
    acked_card = page.locator("#results tr", has=page.locator(f"#pick-{url_incident.id}"))
    expect(acked_card.locator(".badge-acknowledged")).to_be_visible()


def test_a_long_summary_never_clips_the_resolve_button_on_a_laptop(live_server, console):
    open_page, url_incident, acked = console
    page = open_page(DESKTOP)
    page.goto(live_server.url + "/incidents")
    wrap = page.locator("#results .table-wrap")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), "the console scrolls sideways"
    for incident in (url_incident, acked):
        button = page.get_by_role("button", name=f"Resolve #{incident.number}")
        assert button.evaluate("el => el.scrollWidth <= el.clientWidth")
        assert _inside(button.bounding_box(), wrap.bounding_box())


def test_skip_link_is_the_first_tab_stop_and_moves_to_the_content(live_server, console):
    open_page, url_incident, _ = console
    page = open_page(PHONE)
    page.goto(live_server.url + f"/incidents/{url_incident.id}")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    expect(skip).to_have_text("Skip to content")
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")  # the next stop is in the page's content, past the navigation
    assert page.evaluate("document.activeElement.closest('main') !== null")


def test_the_polled_console_logs_nothing_and_the_page_has_a_favicon(app, live_server, console):
    open_page, url_incident, _ = console
    app.config["INCIDENTS_POLL_SECONDS"] = 0.3
    page = open_page(DESKTOP)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    with page.expect_request(lambda r: "/incidents" in r.url and r.headers.get("hx-request")) as first:
        page.goto(live_server.url + "/incidents")
    with page.expect_request(lambda r: "/incidents" in r.url and r.headers.get("hx-request")):
        pass  # a second poll, with nothing checked
    assert "incident_ids" not in first.value.url
    page.check(f"#pick-{url_incident.id}")
    with page.expect_request(lambda r: f"incident_ids={url_incident.id}" in r.url):
        pass  # a poll with a box checked sends it
    expect(page.locator(f"#pick-{url_incident.id}")).to_be_checked()
    assert errors == []
    icon = page.locator("link[rel=icon]").get_attribute("href")
    response = page.request.get(live_server.url + icon)
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg+xml")


def test_severity_never_looks_like_a_status(live_server, console):
    open_page, url_incident, _ = console
    page = open_page(DESKTOP)
    page.goto(live_server.url + f"/incidents/{url_incident.id}")
    status, severity = page.locator(".badge-triggered"), page.locator(".severity-critical")
    expect(status).to_have_text("triggered")
    expect(severity).to_contain_text("critical")
    style = "el => { const s = getComputedStyle(el); return [s.borderRadius, s.backgroundColor, s.borderStyle]; }"
    status_radius, status_bg, _ = status.evaluate(style)
    severity_radius, severity_bg, severity_border = severity.evaluate(style)
    assert severity_bg == "rgba(0, 0, 0, 0)" and status_bg != severity_bg  # outlined, not filled
    assert severity_border == "solid" and severity_radius != status_radius
    marker = severity.evaluate("el => getComputedStyle(el, '::before').content")
    assert marker not in ("none", "normal", '""')  # a shape per level, not colour alone


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colours_follow_the_system_setting_and_keep_their_contrast(live_server, console, scheme):
    open_page, url_incident, _ = console
    page = open_page(PHONE, color_scheme=scheme)
    for path in ("/incidents", f"/incidents/{url_incident.id}", "/profile"):
        page.goto(live_server.url + path)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        lightness = sum(int(c) for c in background[4:-1].split(",")) / 3
        assert (lightness < 60) if scheme == "dark" else (lightness > 200), (path, background)
        page.evaluate(AXE)
        result = page.evaluate("async () => (await axe.run(document, {runOnly: ['color-contrast']})).violations")
        assert result == [], (path, [n["target"] for v in result for n in v["nodes"]])


def test_calendar_is_an_agenda_with_whole_names_on_a_phone(app, live_server, console, clock):
    open_page, _, _ = console
    clock.set(datetime(2026, 3, 4, 12, tzinfo=UTC))
    long_name = "Maximiliana Throckmorton-Featherstonehaugh de la Vega"
    people = [factories.make_user(name=long_name), factories.make_user(name="Bob Member")]
    schedule = make_schedule(name="Database primary")
    make_layer(schedule, people, datetime(2026, 3, 2, 9), 1, "days")
    page = open_page(PHONE, is_mobile=True, has_touch=True)
    page.goto(live_server.url + f"/schedules/{schedule.id}?date=2026-03-04")
    expect(page.locator(".month-grid")).to_be_hidden()
    day = page.locator(".agenda-day[data-date='2026-03-04']")
    expect(day).to_be_visible()
    expect(day.locator(".agenda-date")).to_contain_text("Wed 04 Mar")
    shifts = day.locator(".agenda-shift")
    expect(shifts.first).to_contain_text("00:00–09:00 Bob Member")
    expect(shifts.nth(1)).to_contain_text(f"09:00–24:00 {long_name}")
    who = shifts.nth(1).locator(".agenda-who")
    assert who.evaluate("el => el.scrollWidth <= el.clientWidth")  # the whole name, not "… Ma…"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert shifts.first.bounding_box()["height"] >= 44
    # A shift opens its panel (take it, or ask for cover), in place with htmx.
    shifts.first.click()
    expect(page.locator("#shift-panel")).to_contain_text("Bob Member")

    laptop = open_page(DESKTOP)
    laptop.goto(live_server.url + f"/schedules/{schedule.id}?date=2026-03-04")
    expect(laptop.locator(".month-grid")).to_be_visible()
    expect(laptop.locator(".agenda")).to_be_hidden()


def test_the_agenda_works_without_javascript(live_server, console, clock):
    open_page, _, _ = console
    clock.set(datetime(2026, 3, 4, 12, tzinfo=UTC))
    schedule = make_schedule(name="Database primary")
    make_layer(schedule, [factories.make_user(name="Bob Member")], datetime(2026, 3, 2, 9), 1, "weeks")
    page = open_page(PHONE, java_script_enabled=False)
    page.goto(live_server.url + f"/schedules/{schedule.id}?view=week&date=2026-03-04")
    page.locator(".agenda-day[data-date='2026-03-05'] .agenda-shift").first.click()
    expect(page.locator("#shift-panel")).to_contain_text("Bob Member")
    assert "/shift?at=" in page.url


def test_tables_are_cards_of_named_lines_on_a_phone(live_server, console):
    open_page, _, _ = console
    page = open_page(PHONE, is_mobile=True)
    page.goto(live_server.url + "/services")
    row = page.locator(".table-wrap tbody tr", has_text="payments-api")
    count = row.locator("td").nth(4)  # its integrations: a bare "1" on a card without its column's name
    expect(count).to_have_attribute("data-label", "Integrations")
    style = "el => [getComputedStyle(el, '::before').content, getComputedStyle(el).borderBottomWidth]"
    assert count.evaluate(style) == ['"Integrations: "', "0px"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert row.bounding_box()["width"] <= PHONE["width"]
