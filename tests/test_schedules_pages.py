"""Schedules pages without JavaScript (plain POST + redirect) and their htmx fragments."""

import re
from datetime import UTC, datetime

import pytest
from flask import render_template_string

from openduty.extensions import db
from openduty.models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)
from tests.factories_schedules import make_layer, make_override, make_schedule

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def as_admin(client, auth, admin, clock):
    clock.set(NOW)
    auth.login(admin.email)
    return client


@pytest.fixture
def ops(app, team):
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, team[:2], datetime(2026, 3, 2, 9), 1, "weeks")
    make_layer(
        schedule,
        [team[2]],
        datetime(2026, 3, 2, 9),
        1,
        "weeks",
        restrictions=[{"days": ["sat"], "start": "10:00", "end": "12:00"}],
    )
    return schedule


def test_pages_need_login(client):
    assert client.get("/schedules").status_code == 302


def test_create_schedule_and_bad_zone(as_admin, auth):
    token = auth.csrf_token()
    bad = as_admin.post("/schedules", data={"name": "Ops", "time_zone": "Nowhere/Land", "csrf_token": token})
    assert bad.status_code == 422 and "Unknown time zone" in bad.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(Schedule.id))) == 0
    ok = as_admin.post("/schedules", data={"name": "Ops", "time_zone": "Europe/Budapest", "csrf_token": token})
    assert ok.status_code == 302
    page = as_admin.get(ok.headers["Location"]).get_data(as_text=True)
    assert "Nobody is on call in Ops" in page  # gap warning: no layers yet


def test_add_rotation_layer_by_form_and_refuse_bad_ones(as_admin, auth, team):
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    token = auth.csrf_token()
    form = {
        "csrf_token": token,
        "kind": "rotation",
        "name": "Primary",
        "start": "2026-03-02T09:00",
        "shift_length": "1",
        "shift_unit": "weeks",
        "participants": "alice@example.com\nbob@example.com\nalice@example.com",
        "restrictions": "mon-fri 09:00-17:00",
    }
    bad = as_admin.post(f"/schedules/{schedule.id}/layers", data={**form, "shift_length": "0", "participants": ""})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Shift length must be at least 1" in text and "at least one participant" in text
    assert db.session.scalar(db.select(db.func.count(ScheduleLayer.id))) == 0
    ok = as_admin.post(f"/schedules/{schedule.id}/layers", data=form)
    assert ok.status_code == 302
    layer = db.session.scalar(db.select(ScheduleLayer))
    assert [p.user.name for p in layer.participants] == ["Alice", "Bob", "Alice"]
    assert layer.restrictions == [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]
    page = as_admin.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert "RRULE:FREQ=WEEKLY;INTERVAL=3" in page


def test_month_and_week_views_and_htmx_fragments(as_admin, ops):
    full = as_admin.get(f"/schedules/{ops.id}")
    html = full.get_data(as_text=True)
    assert full.status_code == 200 and "<html" in html and "March 2026" in html
    assert 'class="seg now"' in html or "seg now" in html  # current on-call highlighted
    assert "seg gap" in html  # before the rotation started (1 March): nobody
    assert "HX-Request" in full.headers.get("Vary", "")
    fragment = as_admin.get(f"/schedules/{ops.id}?view=month&date=2026-04-01", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'id="calendar"' in body and "April 2026" in body
    week = as_admin.get(f"/schedules/{ops.id}?view=week&date=2026-03-07", headers={"HX-Request": "true"})
    body = week.get_data(as_text=True)
    assert "Week of 02 Mar 2026" in body and "10:00–12:00 Carol" in body


def test_override_form_prefilled_then_added_in_local_time(as_admin, auth, ops, team):
    fragment = as_admin.get(
        f"/schedules/{ops.id}/overrides/new?start=2026-03-10T00:00&end=2026-03-11T00:00", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "<html" not in fragment and 'value="2026-03-10T00:00"' in fragment
    token = auth.csrf_token()
    data = {"csrf_token": token, "user_id": team[3].id, "start": "2026-03-10T00:00", "end": "2026-03-11T00:00"}
    response = as_admin.post(f"/schedules/{ops.id}/overrides", data=data, follow_redirects=True)
    assert "Dave is on call from" in response.get_data(as_text=True)
    override = db.session.scalar(db.select(ScheduleOverride))
    assert (override.start, override.end) == (utc(2026, 3, 9, 23), utc(2026, 3, 10, 23))  # Budapest is UTC+1
    # An overlapping, later override wins, and the page says so.
    data.update(user_id=team[2].id, start="2026-03-10T12:00", end="2026-03-10T18:00")
    response = as_admin.post(f"/schedules/{ops.id}/overrides", data=data, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "this one wins where they overlap (created later)" in text
    assert "is beaten by later override" in text
    # Bad range: nothing saved.
    data.update(start="2026-03-12T12:00", end="2026-03-12T11:00")
    bad = as_admin.post(f"/schedules/{ops.id}/overrides", data=data)
    assert bad.status_code == 422 and "End must be after start" in bad.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(ScheduleOverride.id))) == 2


def test_take_this_shift_and_cover_for_me(client, auth, ops, team, clock):
    clock.set(NOW)
    alice, bob, carol, _ = team
    auth.login(carol.email)
    panel = client.get(f"/schedules/{ops.id}/shift?at=2026-03-04T12:00:00%2B00:00", headers={"HX-Request": "true"})
    body = panel.get_data(as_text=True)
    assert "Take this shift" in body and "Alice" in body
    start, end = re.search(r'name="start" value="([^"]+)"', body)[1], re.search(r'name="end" value="([^"]+)"', body)[1]
    token = auth.csrf_token()
    take = client.post(
        f"/schedules/{ops.id}/overrides", data={"csrf_token": token, "user_id": carol.id, "start": start, "end": end}
    )
    assert take.status_code == 302
    assert db.session.scalar(db.select(ScheduleOverride)).user_id == carol.id
    # Carol is now on call: she can ask Bob to cover.
    body = client.get(f"/schedules/{ops.id}/shift?at=2026-03-04T12:00:00%2B00:00").get_data(as_text=True)
    assert "Cover for me" in body
    cover = client.post(
        f"/schedules/{ops.id}/overrides", data={"csrf_token": token, "user_id": bob.id, "start": start, "end": end}
    )
    assert cover.status_code == 302
    # But she cannot put Bob on someone else's shift.
    other = client.post(
        f"/schedules/{ops.id}/overrides",
        data={"csrf_token": token, "user_id": bob.id, "start": "2026-03-20T00:00", "end": "2026-03-20T06:00"},
    )
    assert other.status_code == 403


def test_home_panel_shows_schedules_and_policy_levels(as_admin, ops, team):
    policy = EscalationPolicy(
        name="Default",
        levels=[EscalationLevel(position=0, targets=[EscalationTarget(target_type="schedule", schedule_id=ops.id)])],
    )
    db.session.add(policy)
    db.session.commit()
    html = as_admin.get("/").get_data(as_text=True)
    assert "On call now" in html and "Ops" in html and "Default" in html
    assert "alice@example.com" in html  # contact


def test_partials_for_other_pages(app, ops, team, clock):
    clock.set(NOW)
    empty = make_schedule(name="Empty")
    policy = EscalationPolicy(
        name="P",
        levels=[EscalationLevel(position=0, targets=[EscalationTarget(target_type="schedule", schedule_id=empty.id)])],
    )
    db.session.add(policy)
    db.session.commit()
    make_override(ops, team[0], utc(2026, 3, 20), utc(2026, 3, 21))
    from flask_login import login_user

    with app.test_request_context("/users/me"):
        login_user(team[0])
        html = render_template_string(
            '{% with policy=policy %}{% include "schedules/_gap_warning.html" %}{% endwith %}', policy=policy
        )
        assert "Nobody is on call in Empty from now" in html
        assert (
            render_template_string(
                '{% with schedule=s %}{% include "schedules/_gap_warning.html" %}{% endwith %}', s=ops
            ).strip()
            == ""
        )
        shifts = render_template_string('{% include "schedules/_my_shifts.html" %}')
        assert "Ops" in shifts and "on call now" in shifts
        links = render_template_string('{% include "schedules/_calendar_links.html" %}')
        assert f"webcal://localhost/calendar/users/{team[0].id}.ics?token={team[0].calendar_token}" in links


def test_regenerate_calendar_token(client, auth, team):
    auth.login(team[0].email)
    team[0].regenerate_calendar_token()
    db.session.commit()
    old = team[0].calendar_token
    response = client.post("/schedules/calendar-token", data={"csrf_token": auth.csrf_token(), "next": "/schedules"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/schedules")
    db.session.refresh(team[0])
    assert team[0].calendar_token and team[0].calendar_token != old
