"""Cover requests in a real browser: ask on the schedule page, accept as the other person through
the request's confirm page, see the override; and the "Before and after a shift" profile form."""

from datetime import UTC, datetime

from playwright.sync_api import expect

from openduty.extensions import db
from openduty.models import CoverRequest, ShiftNoticeSettings
from tests.browser import log_in
from tests.factories_schedules import make_layer, make_schedule


def test_ask_for_cover_accept_it_and_save_the_reminder_setting(page, live_server, team, clock, smtp_server, run_jobs):
    alice, bob = team[:2]
    schedule = make_schedule(name="Payments")
    make_layer(schedule, [alice, bob], datetime(2026, 3, 3, 0, 0), 1, "days")  # Alice: Tue 3 Mar

    log_in(page, live_server.url, alice.email)
    page.goto(f"{live_server.url}/schedules/{schedule.id}")
    form = page.locator("#cover-requests form")
    form.locator("input[name=start]").fill("2026-03-03T10:00")
    form.locator("input[name=end]").fill("2026-03-03T14:00")
    form.locator("input[name=note]").fill("Dentist")
    form.locator("button", has_text="Ask for cover").click()
    expect(page.locator(".flash").first).to_contain_text("Asked for cover: 1 person was notified.")
    expect(page.locator("#cover-requests")).to_contain_text("Dentist")

    # The profile's "Before and after a shift" form saves in place (htmx).
    page.goto(f"{live_server.url}/profile")
    notices = page.locator("#shift-notices")
    notices.locator("input[name=reminder_hours]").fill("6")
    notices.locator("button[type=submit]").click()
    expect(page.locator("#shift-notices .saved")).to_have_text("Saved.")
    assert db.session.get(ShiftNoticeSettings, alice.id).reminder_hours == 6
    page.click("text=Log out")

    cover = db.session.scalars(db.select(CoverRequest)).one()
    log_in(page, live_server.url, bob.email)
    page.goto(f"{live_server.url}/schedules/{schedule.id}/cover-requests/{cover.id}/accept")
    expect(page.locator("#cover-request")).to_contain_text("Alice asks for cover on Payments")
    page.click("text=Accept: I cover this")
    expect(page.locator(".flash").first).to_contain_text("You cover for Alice")
    expect(page.locator("[data-date='2026-03-03'] .seg.override")).to_contain_text("Bob")
    expect(page.locator("#cover-requests")).to_contain_text("covered by Bob")
    db.session.expire_all()
    assert db.session.get(CoverRequest, cover.id).status == "accepted"

    # The clock moves: the reminder set in the browser (6 h) and the handoff reach Alice by email.
    def mail_to(address: str) -> list[str]:
        subjects = [str(m["Subject"]) for m in smtp_server.messages if address in str(m["To"])]
        return [s for s in subjects if "Cover" not in s]  # the cover notices went out when it was asked

    clock.set(datetime(2026, 3, 2, 17, 50, tzinfo=UTC))
    run_jobs()
    assert mail_to(alice.email) == []
    clock.set(datetime(2026, 3, 2, 18, 1, tzinfo=UTC))  # 6 hours before Tue 00:00
    run_jobs()
    assert mail_to(alice.email) == ["[Openduty] Reminder: on call for Payments"]
    clock.set(datetime(2026, 3, 3, 0, 1, tzinfo=UTC))
    run_jobs()
    assert mail_to(alice.email)[-1] == "[Openduty] Handoff: on call for Payments"
    assert "[Openduty] Reminder: on call for Payments" in mail_to(bob.email)  # his cover, 12 h ahead
