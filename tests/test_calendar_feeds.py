"""iCal feeds: RFC 5545 (checked with two parsers), tokens, stable UIDs, and agreement with the API."""

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import vobject

from openduty import ical, oncall
from openduty.extensions import db
from tests.factories import make_user
from tests.factories_schedules import make_layer, make_override, make_schedule

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def setup(app, team, clock):
    clock.set(NOW)
    alice, bob, carol, _ = team
    ops = make_schedule(name="Ops, Tier 1; Ünïcode", time_zone="Europe/Budapest")
    make_layer(ops, [alice, bob], datetime(2026, 1, 5, 9), 1, "weeks")
    make_layer(
        ops,
        [carol],
        datetime(2026, 1, 5, 9),
        1,
        "weeks",
        restrictions=[{"days": ["sat"], "start": "10:00", "end": "14:00"}],
    )
    make_override(ops, carol, NOW + timedelta(days=2), NOW + timedelta(days=2, hours=5))
    db_ = make_schedule(name="Databases", time_zone="America/New_York")
    make_layer(
        db_,
        [alice],
        datetime(2026, 1, 1, 9),
        1,
        "days",
        restrictions=[{"days": ["mon"], "start": "09:00", "end": "17:00"}],
    )
    alice.regenerate_calendar_token()
    db.session.commit()
    return {"ops": ops, "db": db_, "alice": alice, "bob": bob, "carol": carol}


def parse_both(body: bytes) -> tuple[set, set]:
    """(uid, start, end, summary) of every event, read by icalendar and by vobject."""
    cal = icalendar.Calendar.from_ical(body)
    with_icalendar = {(str(e["UID"]), e["DTSTART"].dt, e["DTEND"].dt, str(e["SUMMARY"])) for e in cal.walk("VEVENT")}
    parsed = vobject.readOne(body.decode())
    with_vobject = {
        (e.uid.value, e.dtstart.value, e.dtend.value, e.summary.value) for e in parsed.contents.get("vevent", [])
    }
    return with_icalendar, with_vobject


def test_schedule_feed_is_valid_and_matches_the_api(client, api, setup):
    ops, alice = setup["ops"], setup["alice"]
    response = client.get(f"/calendar/schedules/{ops.id}.ics?token={alice.calendar_token}")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    body = response.data
    assert body.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")
    assert all(len(line) <= 75 for line in body.split(b"\r\n")), "lines must be folded at 75 octets"
    with_icalendar, with_vobject = parse_both(body)
    assert with_icalendar == with_vobject and with_icalendar
    assert all(start.tzinfo is not None and start.utcoffset() == timedelta(0) for _, start, _, _ in with_icalendar)
    assert "DTSTART:2026" in body.decode() and "TZID" not in body.decode()  # UTC times only

    # The API for the same window gives the same shifts.
    since, until = NOW - timedelta(days=30), NOW + timedelta(days=180)
    api.as_user(alice)
    query = {"since": since.isoformat(), "until": until.isoformat()}
    shifts = api.get(f"/api/v1/schedules/{ops.id}/shifts", query_string=query).json["shifts"]
    from_api = {
        (datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]), f"On call: {u['name']} ({ops.name})")
        for s in shifts
        for u in s["users"]
    }
    assert {(s, e, summary) for _, s, e, summary in with_icalendar} == from_api
    assert len({uid for uid, *_ in with_icalendar}) == len(with_icalendar)  # UIDs unique
    assert any("Carol" in summary for *_, summary in with_icalendar)
    # The feed covers 30 days back and 180 ahead (whole shifts overlapping that window).
    assert min(s for _, s, _, _ in with_icalendar) <= since
    assert max(e for _, _, e, _ in with_icalendar) >= until - timedelta(days=7)


def test_uids_are_stable_between_fetches(client, setup, clock):
    ops, alice = setup["ops"], setup["alice"]
    url = f"/calendar/schedules/{ops.id}.ics?token={alice.calendar_token}"
    first, _ = parse_both(client.get(url).data)
    clock.set(NOW + timedelta(days=3))
    second, _ = parse_both(client.get(url).data)
    common = {uid for uid, *_ in first} & {uid for uid, *_ in second}
    assert len(common) > 20
    by_uid_first = {uid: rest for uid, *rest in first}
    by_uid_second = {uid: rest for uid, *rest in second}
    assert all(by_uid_first[uid] == by_uid_second[uid] for uid in common)


def test_user_feed_spans_every_schedule(client, api, setup):
    alice, ops = setup["alice"], setup["ops"]
    response = client.get(f"/calendar/users/{alice.id}.ics?token={alice.calendar_token}")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    with_icalendar, with_vobject = parse_both(response.data)
    assert with_icalendar == with_vobject
    summaries = {summary for *_, summary in with_icalendar}
    assert summaries == {f"On call: Alice ({ops.name})", "On call: Alice (Databases)"}
    expected = {
        (s.start, s.end)
        for schedule, s in oncall.user_shifts(alice, NOW - timedelta(days=30), NOW + timedelta(days=180))
    }
    assert {(s, e) for _, s, e, _ in with_icalendar} == expected


@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 200])
def test_feeds_without_a_valid_token_answer_404(client, setup, token):
    ops, alice = setup["ops"], setup["alice"]
    query = "" if token is None else f"?token={token}"
    for url in (f"/calendar/schedules/{ops.id}.ics{query}", f"/calendar/users/{alice.id}.ics{query}"):
        response = client.get(url)
        assert response.status_code == 404
        assert b"VCALENDAR" not in response.data and b"Alice" not in response.data


def test_regenerated_token_revokes_the_old_one(client, setup):
    ops, alice = setup["ops"], setup["alice"]
    old = alice.calendar_token
    alice.regenerate_calendar_token()
    db.session.commit()
    assert client.get(f"/calendar/schedules/{ops.id}.ics?token={old}").status_code == 404
    assert client.get(f"/calendar/schedules/{ops.id}.ics?token={alice.calendar_token}").status_code == 200
    alice.active = False
    db.session.commit()
    assert client.get(f"/calendar/schedules/{ops.id}.ics?token={alice.calendar_token}").status_code == 404


def test_unknown_schedule_or_user_is_404_even_with_a_token(client, setup):
    alice = setup["alice"]
    assert client.get(f"/calendar/schedules/999.ics?token={alice.calendar_token}").status_code == 404
    assert client.get(f"/calendar/users/999.ics?token={alice.calendar_token}").status_code == 404


def test_window_is_configurable(app, client, setup):
    ops, alice = setup["ops"], setup["alice"]
    app.config["CALENDAR_FEED_DAYS_BACK"] = 0
    app.config["CALENDAR_FEED_DAYS_AHEAD"] = 10
    events, _ = parse_both(client.get(f"/calendar/schedules/{ops.id}.ics?token={alice.calendar_token}").data)
    assert max(e for _, _, e, _ in events) <= NOW + timedelta(days=17)
    assert min(e for _, _, e, _ in events) > NOW


def test_ical_urls_in_the_api_carry_the_callers_token(api, setup):
    bob, ops = setup["bob"], setup["ops"]
    assert bob.calendar_token  # made with the user: showing a link never writes
    api.as_user(bob)
    url = api.get(f"/api/v1/schedules/{ops.id}").json["ical_url"]
    assert url == f"http://localhost/calendar/schedules/{ops.id}.ics?token={bob.calendar_token}"
    assert ical.webcal(url).startswith("webcal://localhost/calendar/schedules/")
    # Someone else's personal feed is not offered; your own is, with your token.
    assert api.get(f"/api/v1/users/{setup['alice'].id}").json["ical_url"] is None
    own_url = api.get(f"/api/v1/users/{bob.id}").json["ical_url"]
    assert own_url == f"http://localhost/calendar/users/{bob.id}.ics?token={bob.calendar_token}"
    feed = api.get(own_url.removeprefix("http://localhost"))
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"


def test_a_calendar_token_opens_only_its_owners_personal_feed(client, setup):
    """Finding 12: any user's token used to open every other user's feed (with their email)."""
    alice, bob, ops = setup["alice"], setup["bob"], setup["ops"]
    bob_token = bob.calendar_token
    db.session.commit()
    assert client.get(f"/calendar/users/{bob.id}.ics?token={bob_token}").status_code == 200
    other = client.get(f"/calendar/users/{alice.id}.ics?token={bob_token}")
    assert other.status_code == 404 and alice.email.encode() not in other.data
    # Schedule feeds: everyone may see every schedule, so any valid token opens them.
    assert client.get(f"/calendar/schedules/{ops.id}.ics?token={bob_token}").status_code == 200
    for bad in ("", "nope", "x" * 65):
        assert client.get(f"/calendar/schedules/{ops.id}.ics?token={bad}").status_code == 404
    bob.active = False
    db.session.commit()
    assert client.get(f"/calendar/users/{bob.id}.ics?token={bob_token}").status_code == 404


def test_feed_escapes_text(app, client, setup):
    odd = make_user(name='Zoë "Ops", Lead; \\ back', email="zoe@example.com")
    schedule = make_schedule(name="Weird, name; with\\ chars " + "x" * 80)
    make_layer(schedule, [odd], datetime(2026, 3, 1), 1, "days")
    body = client.get(f"/calendar/schedules/{schedule.id}.ics?token={setup['alice'].calendar_token}").data
    with_icalendar, with_vobject = parse_both(body)
    assert with_icalendar == with_vobject
    assert {summary for *_, summary in with_icalendar} == {f"On call: {odd.name} ({schedule.name})"}


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Carriage\rReturn", "Carriage\nReturn"),  # the reported bug: a bare CR reached the feed
        ("Line\nFeed", "Line\nFeed"),
        ("Both\r\nEnds", "Both\nEnds"),
        ("Tab\tand\x07bell\x1b", "Tab\tandbell"),  # TEXT allows no other control characters
        ("Ünïcödé ✓ " * 12, "Ünïcödé ✓ " * 12),  # folded at 75 octets, never inside a character
    ],
)
def test_feed_escapes_line_breaks_and_controls(app, client, setup, name, shown):
    odd = make_user(name=name, email="odd@example.com")
    schedule = make_schedule(name="Plain")
    make_layer(schedule, [odd], datetime(2026, 3, 1), 1, "days")
    body = client.get(f"/calendar/schedules/{schedule.id}.ics?token={setup['alice'].calendar_token}").data
    lines = body.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert all(len(line) <= 75 for line in lines)
    assert [line.decode() for line in lines]  # each folded line is whole UTF-8 (decode raises if not)
    with_icalendar, with_vobject = parse_both(body)
    assert with_icalendar == with_vobject
    assert {summary for *_, summary in with_icalendar} == {f"On call: {shown} (Plain)"}
