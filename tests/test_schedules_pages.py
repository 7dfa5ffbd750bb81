"""Schedules pages without JavaScript (plain POST + redirect) and their htmx fragments."""

import re
from datetime import UTC, datetime

import pytest
from flask import render_template_string

from openduty import ical, oncall
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
    # Pages show times in the viewer's zone: this admin lives in the schedule's (test_times_shown.py
    # has viewers elsewhere).
    admin.time_zone = "Europe/Budapest"
    db.session.commit()
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

    macros = '{% from "schedules/_macros.html" import gap_warnings, my_shifts, calendar_links %}'
    with app.test_request_context("/users/me"):
        login_user(team[0])
        html = render_template_string(macros + "{{ gap_warnings(w) }}", w=oncall.policy_gap_warnings(policy))
        assert "Nobody is on call in Empty from now" in html
        assert render_template_string(macros + "{{ gap_warnings([w]) }}", w=oncall.gap_warnings(ops)).strip() == ""
        shifts = render_template_string(macros + "{{ my_shifts(s) }}", s=oncall.upcoming_shifts(team[0]))
        assert "Ops" in shifts and "on call now" in shifts
        links = render_template_string(macros + "{{ calendar_links(links) }}", links=ical.calendar_links(team[0]))
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


# --- Editing and reordering layers -------------------------------------------------------------


def _layer_state(schedule_id: int) -> list[tuple]:
    """Everything a layer edit or move could change, lowest layer first."""
    db.session.expire_all()
    layers = db.session.scalars(
        db.select(ScheduleLayer).where(ScheduleLayer.schedule_id == schedule_id).order_by(ScheduleLayer.position)
    )
    return [
        (
            layer.id, layer.position, layer.name, layer.start, layer.shift_length, layer.shift_unit,
            [p.user_id for p in layer.participants], layer.restrictions,
        )
        for layer in layers
    ]  # fmt: skip


def _on_call(schedule: Schedule) -> list[str]:
    db.session.expire_all()
    return [u.name for u in oncall.who_is_on_call(db.session.get(Schedule, schedule.id), NOW)]


def test_edit_layer_without_js(as_admin, auth, ops, team):
    bottom = ops.layers[0]
    assert _on_call(ops) == ["Alice"]  # week 1 of Alice, Bob
    page = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    # The edit form comes filled in with the layer as it is.
    assert 'value="2026-03-02T09:00"' in page
    assert "alice@example.com\nbob@example.com</textarea>" in page
    assert "sat 10:00-12:00</textarea>" in page
    form = {
        "csrf_token": auth.csrf_token(),
        "name": "Primary",
        "start": "2026-03-02T08:00",
        "shift_length": "1",
        "shift_unit": "days",
        "participants": "bob@example.com\nalice@example.com\ndave@example.com",
        "restrictions": "mon-fri 08:00-18:00",
    }
    response = as_admin.post(f"/schedules/{ops.id}/layers/{bottom.id}/edit", data=form)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/schedules/{ops.id}#layers"
    [edited, top] = _layer_state(ops.id)
    assert edited[1:] == (
        0, "Primary", datetime(2026, 3, 2, 8), 1, "days", [team[1].id, team[0].id, team[3].id],
        [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}],
    )  # fmt: skip
    assert top[2] == "Layer 2"  # the other layer is untouched
    assert _on_call(ops) == ["Dave"]  # Wed 4 March, 13:00 in Budapest: day 3 of Bob, Alice, Dave
    page = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    assert "Layer Primary saved." in page and "1. Primary" in page


def test_edit_layer_bad_input_names_fields_and_changes_nothing(as_admin, auth, ops):
    bottom = ops.layers[0]
    before = _layer_state(ops.id)
    form = {
        "csrf_token": auth.csrf_token(),
        "name": "x" * 201,
        "start": "next tuesday",
        "shift_length": "0",
        "shift_unit": "fortnights",
        "participants": "alice@example.com\nnobody@example.com",
        "restrictions": "funday 09:00-17:00",
    }
    response = as_admin.post(f"/schedules/{ops.id}/layers/{bottom.id}/edit", data=form)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    for message in (
        "Name is too long (201 characters; at most 200)",
        "Start is not a date and time: write the first handoff as e.g. 2026-01-05 09:00.",  # issue 15, finding 7
        "Shift length must be at least 1",
        "Shift unit must be one of hours, days, weeks",
        "No user with email nobody@example.com",
        "Restriction 1: unknown day &#39;funday&#39;",
    ):
        assert message in text, message
    # The failed form is open again with what was typed, so it can be fixed.
    assert '<details class="layer-edit" open>' in text
    assert "alice@example.com\nnobody@example.com</textarea>" in text
    assert _layer_state(ops.id) == before
    # A shift longer than the unit allows is refused too (the API's rule, not a copy of it).
    form.update(name="Ok", start="2026-03-02T09:00", shift_unit="weeks", shift_length="105", restrictions="")
    form["participants"] = "alice@example.com"
    response = as_admin.post(f"/schedules/{ops.id}/layers/{bottom.id}/edit", data=form)
    assert response.status_code == 422 and "Shift length must be at most 104 weeks" in response.get_data(as_text=True)
    assert _layer_state(ops.id) == before
    # With htmx: the layers panel alone, with the errors, and no refresh event.
    response = as_admin.post(
        f"/schedules/{ops.id}/layers/{bottom.id}/edit",
        data={**form, "participants": ""},
        headers={"HX-Request": "true"},
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and text.lstrip().startswith('<section class="card" id="layers">')
    assert "Nothing was saved" in text and "at least one participant" in text
    assert "HX-Trigger" not in response.headers
    assert _layer_state(ops.id) == before


def test_reorder_layers_without_js_and_with_htmx(as_admin, auth, ops, team):
    top = make_layer(ops, [team[3]], datetime(2026, 3, 2, 9), 1, "weeks", name="Dave always")
    [a, b, c] = [row[0] for row in _layer_state(ops.id)]
    assert _on_call(ops) == ["Dave"]
    token = auth.csrf_token()
    # Without JS: move Dave's layer to the bottom; the layers above now win.
    response = as_admin.post(f"/schedules/{ops.id}/layers/{top.id}/move", data={"csrf_token": token, "position": "0"})
    assert response.status_code == 302 and response.headers["Location"] == f"/schedules/{ops.id}#layers"
    assert [row[0] for row in _layer_state(ops.id)] == [c, a, b]
    assert [row[1] for row in _layer_state(ops.id)] == [0, 1, 2]
    assert _on_call(ops) == ["Alice"]
    page = as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)
    assert "Layer Dave always is now number 1 of 3." in page
    assert page.index("3. Layer 2") < page.index("2. Layer 1") < page.index("1. Dave always")  # top first
    # With htmx: the layers panel comes back, and the calendar is told to refresh itself.
    response = as_admin.post(
        f"/schedules/{ops.id}/layers/{a}/move",
        data={"position": "2"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and text.lstrip().startswith('<section class="card" id="layers">')
    assert response.headers["HX-Trigger"] == "schedule-changed"
    assert "Layer Layer 1 is now number 3 of 3." in text and "<html" not in text
    assert [row[0] for row in _layer_state(ops.id)] == [c, b, a]
    assert 'hx-trigger="schedule-changed from:body"' in page  # the calendar listens for it
    # Bad positions: a clear error, nothing moved.
    before = _layer_state(ops.id)
    for value, message in (
        ("3", "Position must be at most 2"),
        ("-1", "at least 0"),
        ("up", "whole number"),
        ("", "whole number"),
    ):
        response = as_admin.post(f"/schedules/{ops.id}/layers/{a}/move", data={"csrf_token": token, "position": value})
        assert response.status_code == 422 and message in response.get_data(as_text=True), value
        assert _layer_state(ops.id) == before
    # Someone else's layer, a missing CSRF token, a non-admin: refused.
    other = make_schedule(name="Other")
    stranger = make_layer(other, [team[0]], datetime(2026, 3, 2, 9))
    assert (
        as_admin.post(
            f"/schedules/{ops.id}/layers/{stranger.id}/move", data={"csrf_token": token, "position": "0"}
        ).status_code
        == 404
    )
    assert as_admin.post(f"/schedules/{ops.id}/layers/{a}/move", data={"position": "0"}).status_code == 400
    auth.logout()
    auth.login(team[0].email)
    token = auth.csrf_token()
    assert (
        as_admin.post(f"/schedules/{ops.id}/layers/{a}/move", data={"csrf_token": token, "position": "0"}).status_code
        == 403
    )
    assert (
        as_admin.post(f"/schedules/{ops.id}/layers/{a}/edit", data={"csrf_token": token, "name": "Mine"}).status_code
        == 403
    )
    assert _layer_state(ops.id) == before
    assert "Edit this layer" not in as_admin.get(f"/schedules/{ops.id}").get_data(as_text=True)


def test_remove_layer_with_htmx_renumbers(as_admin, auth, ops):
    [a, b] = [row[0] for row in _layer_state(ops.id)]
    response = as_admin.post(
        f"/schedules/{ops.id}/layers/{a}/delete", headers={"HX-Request": "true", "X-CSRFToken": auth.csrf_token()}
    )
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "schedule-changed"
    assert "Layer removed." in response.get_data(as_text=True)
    assert [row[:2] for row in _layer_state(ops.id)] == [(b, 0)]


def test_edit_uploaded_ical_layer_renames_and_replaces_the_file(as_admin, auth, ops, team):
    from io import BytesIO

    def ics(summary: str) -> bytes:
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "BEGIN:VEVENT", "UID:x-1",
                 f"SUMMARY:{summary}", "DTSTART:20260304T000000Z", "DTEND:20260305T000000Z", "END:VEVENT",
                 "END:VCALENDAR", ""]  # fmt: skip
        return "\r\n".join(lines).encode()

    token = auth.csrf_token()
    added = as_admin.post(
        f"/schedules/{ops.id}/layers",
        data={"csrf_token": token, "kind": "ical", "name": "Holidays", "ical_file": (BytesIO(ics("Carol")), "a.ics")},
    )
    assert added.status_code == 302
    layer = db.session.scalar(db.select(ScheduleLayer).where(ScheduleLayer.kind == "ical"))
    assert _on_call(ops) == ["Carol"]
    edit = f"/schedules/{ops.id}/layers/{layer.id}/edit"
    bad = as_admin.post(
        edit, data={"csrf_token": token, "name": "", "ical_file": (BytesIO(b"not a calendar"), "b.ics")}
    )
    assert bad.status_code == 422 and _on_call(ops) == ["Carol"]
    ok = as_admin.post(edit, data={"csrf_token": token, "name": "Cover", "ical_file": (BytesIO(ics("Dave")), "c.ics")})
    assert ok.status_code == 302
    db.session.expire_all()
    assert db.session.get(ScheduleLayer, layer.id).name == "Cover" and _on_call(ops) == ["Dave"]
    # Renaming alone keeps the uploaded calendar.
    as_admin.post(edit, data={"csrf_token": token, "name": "Cover 2"})
    assert _on_call(ops) == ["Dave"] and db.session.get(ScheduleLayer, layer.id).name == "Cover 2"
