"""Before and after a shift: reminders N hours ahead, the handoff notice at the start, the weekly
summary; sent by a real worker through delivery to the local SMTP server, with the clock moved."""

from datetime import datetime

import pytest
from sqlalchemy import func, select

from openduty import shift_notices, timers
from openduty.extensions import db
from openduty.models import Notification, ShiftNotice
from tests import factories
from tests.factories_escalation import make_policy, make_service, open_incident
from tests.factories_schedules import make_layer, make_override, make_schedule

# The clock fixture starts on Monday 2 March 2026, 09:00 UTC.


@pytest.fixture
def step(clock, run_jobs, smtp_server):
    """Move the clock, run what is due, return the subjects received so far."""

    def advance(**delta) -> list[str]:
        db.session.commit()
        clock.advance(**delta)
        run_jobs()
        db.session.rollback()
        db.session.expire_all()
        return [str(m["Subject"]) for m in smtp_server.messages]

    return advance


def _body(smtp_server, subject_part: str) -> str:
    found = [m for m in smtp_server.messages if subject_part in str(m["Subject"])]
    assert len(found) == 1, [str(m["Subject"]) for m in smtp_server.messages]
    part = found[0].get_body(("plain",))
    return part.get_content()


def _weekly(users, start=datetime(2026, 3, 3, 9, 0), name="Payments"):
    """A weekly rotation of `users` and one more person (so a turn ends after a week)."""
    schedule = make_schedule(name)
    make_layer(schedule, [*users, factories.make_user(name="Next")], start, shift_length=1, shift_unit="weeks")
    return schedule


def test_reminder_goes_n_hours_before_in_the_users_zone_then_the_handoff(app, step, smtp_server):
    alice = factories.make_user(name="Alice", email="alice@example.com", time_zone="Europe/Budapest")
    _weekly([alice])
    assert step(seconds=1) == []
    # Shift Tue 3 Mar 09:00 UTC; 12 hours before: Mon 21:00 UTC.
    assert step(hours=11, minutes=58) == []
    assert step(minutes=3) == ["[Openduty] Reminder: on call for Payments"]
    assert smtp_server.envelopes[0][1] == ["alice@example.com"]
    assert "You are on call for Payments from Tue 3 Mar 10:00 to Tue 10 Mar 10:00 (Europe/Budapest)." in _body(
        smtp_server, "Reminder"
    )
    assert step(hours=11, minutes=58) == ["[Openduty] Reminder: on call for Payments"]
    subjects = step(minutes=2)
    assert subjects[-1] == "[Openduty] Handoff: on call for Payments"
    # Never twice: the timers fire again (reconcile, a re-plan) and nothing more is sent.
    timers.reconcile()
    shift_notices.fire(alice.id, datetime.now().astimezone())
    assert step(minutes=5) == subjects
    assert db.session.scalar(select(func.count()).select_from(ShiftNotice)) == 2


def test_reminders_off_send_none_but_the_handoff(app, step, client, auth):
    bob = factories.make_user(name="Bob")
    shift_notices.save_settings(bob, {"reminder_hours": 0})
    db.session.commit()
    _weekly([bob])
    assert step(hours=23, minutes=59) == []
    assert step(minutes=2) == ["[Openduty] Handoff: on call for Payments"]


def test_reminder_goes_to_the_chosen_contact_method(app, step, smtp_server):
    carol = factories.make_user(name="Carol")
    factories.make_contact_method(carol, "email", "carol.first@example.com")
    second = factories.make_contact_method(carol, "email", "carol.phone@example.com")
    shift_notices.save_settings(carol, {"reminder_hours": 2, "reminder_contact_method_id": second.id})
    db.session.commit()
    _weekly([carol])
    assert step(hours=21, minutes=59) == []
    assert step(minutes=2) == ["[Openduty] Reminder: on call for Payments"]
    assert smtp_server.envelopes[0][1] == ["carol.phone@example.com"]


def test_an_override_moves_the_reminder(app, step, smtp_server):
    alice = factories.make_user(name="Alice", email="alice@example.com")
    bob = factories.make_user(name="Bob", email="bob@example.com")
    schedule = _weekly([alice], start=datetime(2026, 3, 4, 9, 0))
    step(seconds=1)
    # Bob takes the first 12 hours of Alice's shift: his starts Wed 09:00, hers now Wed 21:00.
    make_override(schedule, bob, datetime.fromisoformat("2026-03-04T09:00+00:00"),
                  datetime.fromisoformat("2026-03-04T21:00+00:00"))  # fmt: skip
    step(seconds=1)
    assert step(hours=35, minutes=58) == []  # Tue 20:59
    assert step(minutes=3) == ["[Openduty] Reminder: on call for Payments"]
    assert smtp_server.envelopes[-1][1] == ["bob@example.com"]
    subjects = step(hours=12)  # Wed 09:01: Bob's handoff, Alice's reminder for Wed 21:00
    assert sorted(subjects[1:]) == [f"[Openduty] {what}: on call for Payments" for what in ("Handoff", "Reminder")]
    to_alice = [m for m in smtp_server.messages if m["To"] == "alice@example.com"]
    assert len(to_alice) == 1
    assert "from Wed 4 Mar 21:00 to Wed 11 Mar 09:00 (UTC)" in to_alice[0].get_body(("plain",)).get_content()


def test_handoff_lists_the_open_incidents_of_the_services_the_schedule_covers(app, step, smtp_server):
    alice = factories.make_user(name="Alice", email="alice@example.com")
    shift_notices.save_settings(alice, {"reminder_hours": 0})
    schedule = _weekly([alice])
    covered = make_service(make_policy([(5, [schedule])]), name="Checkout")
    other = make_service(make_policy([(5, [factories.make_user(name="Zed")])]), name="Elsewhere")
    open_incident(covered, "Disk full on db1")
    open_incident(other, "Not Alice's business")
    resolved = open_incident(covered, "Fixed already")
    resolved.status = "resolved"
    db.session.commit()
    step(hours=24, minutes=1)
    body = _body(smtp_server, "Handoff")
    assert "Open incidents (1):" in body and "Disk full on db1" in body and "Checkout" in body
    assert "/incidents/" in body and "Not Alice's business" not in body and "Fixed already" not in body


def test_weekly_summary_lists_next_weeks_shifts_and_last_weeks_pages(app, step, smtp_server):
    dora = factories.make_user(name="Dora", email="dora@example.com", time_zone="Europe/Budapest")
    shift_notices.save_settings(dora, {"reminder_hours": 0, "weekly_summary": True})
    db.session.commit()
    _weekly([dora], start=datetime(2026, 3, 10, 9, 0))
    incident = open_incident(make_service(make_policy([(5, [factories.make_user(name="Zed")])])), "Queue backlog")
    sent_at = datetime.fromisoformat("2026-03-03T10:00+00:00")
    page = Notification(user_id=dora.id, incident_id=incident.id, address=dora.email, status="sent", sent_at=sent_at)
    db.session.add(page)
    db.session.commit()
    # The next Monday 08:00 in Budapest is 9 March 07:00 UTC.
    assert timers.timer_due(shift_notices.SUMMARY_KIND, dora.id) == datetime.fromisoformat("2026-03-09T07:00+00:00")
    step(days=6, hours=22, minutes=1)
    body = _body(smtp_server, "Your week on call")
    assert "Payments: Tue 10 Mar 10:00 to Tue 17 Mar 10:00" in body
    assert "Pages sent to you last week: 1" in body and "Queue backlog" in body
    assert timers.timer_due(shift_notices.SUMMARY_KIND, dora.id) == datetime.fromisoformat("2026-03-16T07:00+00:00")


def test_no_summary_without_opting_in(app, step):
    erin = factories.make_user(name="Erin")
    shift_notices.save_settings(erin, {"reminder_hours": 0})
    db.session.commit()
    assert timers.timer_due(shift_notices.SUMMARY_KIND, erin.id) is None
