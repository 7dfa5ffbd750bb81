"""iCal source layers: upload or URL, matching events to users, errors that name the event, refresh job."""

from datetime import UTC, datetime

import pytest

from openduty import ical, jobs, oncall, timers
from openduty.extensions import db, queue
from openduty.models import LayerEvent, ScheduleLayer
from tests.factories_schedules import make_layer, make_schedule

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ics(*events: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", *events, "END:VCALENDAR", ""])


def event(uid: str, summary: str, start: str, end: str, *extra: str) -> str:
    return "\r\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", f"SUMMARY:{summary}", f"DTSTART:{start}", f"DTEND:{end}", *extra, "END:VEVENT"]
    )


CALENDAR = ics(
    # Matched by attendee email, weekly on Mondays 09:00-17:00 Budapest time, across the DST change.
    event(
        "a1",
        "Primary",
        "TZID=Europe/Budapest:20260302T090000",
        "TZID=Europe/Budapest:20260302T170000",
        "RRULE:FREQ=WEEKLY;COUNT=6",
        "ATTENDEE;CN=Bob:mailto:BOB@example.com",
    )
    .replace("DTSTART:TZID=Europe/Budapest:", "DTSTART;TZID=Europe/Budapest:")
    .replace("DTEND:TZID=Europe/Budapest:", "DTEND;TZID=Europe/Budapest:"),
    # Matched by name in the summary.
    event("c1", "On call: Carol", "20260304T000000Z", "20260305T000000Z"),
    # Nobody by that name.
    event("x1", "Mallory", "20260306T000000Z", "20260307T000000Z"),
)


@pytest.fixture
def ops(app, team, clock):
    clock.set(NOW)
    schedule = make_schedule(name="Ops", time_zone="Europe/Budapest")
    make_layer(schedule, [team[0]], datetime(2026, 1, 1), 1, "weeks")
    return schedule


def test_uploaded_ics_layer_matches_users_and_wins_where_it_has_events(admin, api, ops, team):
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{ops.id}/layers", json={"name": "Imported", "ical_data": CALENDAR})
    assert response.status_code == 201, response.json
    assert response.json["imported"] == {"events": 7, "unmatched": ["Mallory"]}
    assert response.json["ical_unmatched"] == ["Mallory"]

    def who(at):
        return [u.name for u in oncall.who_is_on_call(ops, at)]

    assert who(utc(2026, 3, 2, 8, 30)) == ["Bob"]  # 09:30 CET
    assert who(utc(2026, 3, 2, 16, 30)) == ["Alice"]  # after the event: the rotation below
    assert who(utc(2026, 3, 30, 7, 30)) == ["Bob"]  # 09:30 CEST, after the DST change
    assert who(utc(2026, 3, 30, 15, 30)) == ["Alice"]
    assert who(utc(2026, 3, 4, 12)) == ["Carol"]
    assert who(utc(2026, 3, 6, 12)) == ["Alice"]  # unmatched events are ignored


@pytest.mark.parametrize(
    "data,message",
    [
        ("this is not a calendar", "not a valid iCalendar"),
        (
            ics(event("bad-1", "Weekly Bob", "20260302T090000Z", "20260302T170000Z", "RRULE:FREQ=SOMETIMES")),
            "'Weekly Bob' (UID bad-1)",
        ),
        (ics("BEGIN:VEVENT\r\nUID:nostart\r\nSUMMARY:Floating\r\nEND:VEVENT"), "'Floating' (UID nostart) has no start"),
    ],
)
def test_bad_ics_is_refused_naming_the_problem_and_nothing_is_saved(admin, api, ops, data, message):
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{ops.id}/layers", json={"name": "Imported", "ical_data": data})
    assert response.status_code == 422
    assert message in response.json["error"]["fields"]["ical_data"]
    assert db.session.scalar(db.select(db.func.count(ScheduleLayer.id))) == 1
    assert db.session.scalar(db.select(db.func.count(LayerEvent.id))) == 0


@pytest.mark.parametrize(
    "data,says,not_said",
    [
        ("this is not a calendar", "some line is not NAME:VALUE", ("Content line", "parsed into parts")),
        (
            ics(event("bad-1", "Weekly Bob", "20260302T090000Z", "20260302T170000Z", "RRULE:FREQ=SOMETIMES")),
            "FREQ=SOMETIMES; FREQ must be one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY.",
            ("UNTIL parameter", "vRecur", "broken property"),
        ),
        (
            ics(event("bad-2", "Bob", "garbage", "20260302T170000Z")),
            "has an unreadable DTSTART (e.g. DTSTART:20260301T090000Z",
            ("Cannot access", "vDDDTypes", "Expected time"),
        ),
    ],
)
def test_ics_errors_say_what_to_fix_without_the_parsers_words(admin, api, ops, data, says, not_said):
    """Issue 15, finding 7: FREQ=SOMETIMES was "UNTIL parameter is missing", and parser exceptions
    reached people as they were."""
    response = api.as_user(admin).post(f"/api/v1/schedules/{ops.id}/layers", json={"name": "I", "ical_data": data})
    message = response.json["error"]["fields"]["ical_data"]
    assert response.status_code == 422 and says in message, message
    assert not any(words in message for words in not_said), message


def test_url_layer_is_fetched_now_and_refreshed_by_the_job(admin, api, ops, httpserver, run_jobs, team):
    httpserver.expect_request("/oncall.ics").respond_with_data(
        ics(event("b1", "Bob", "20260303T000000Z", "20260304T000000Z")), content_type="text/calendar"
    )
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{ops.id}/layers", json={"ical_url": httpserver.url_for("/oncall.ics")})
    assert response.status_code == 201, response.json
    assert [u.name for u in oncall.who_is_on_call(ops, utc(2026, 3, 3, 12))] == ["Bob"]

    httpserver.clear()
    httpserver.expect_request("/oncall.ics").respond_with_data(
        ics(event("d1", "dave@example.com", "20260303T000000Z", "20260304T000000Z")), content_type="text/calendar"
    )
    run_jobs()  # the re-plan of shift notices (openduty.shift_notices) the new layer asked for
    queue("low").enqueue(ical.refresh_ical_sources)
    assert run_jobs() == 3  # the refresh, the layer's fetch, and the re-plan its new events ask for
    db.session.expire_all()
    assert [u.name for u in oncall.who_is_on_call(ops, utc(2026, 3, 3, 12))] == ["Dave"]

    # The source breaks: the last good events stay, and the layer says what went wrong.
    httpserver.clear()
    httpserver.expect_request("/oncall.ics").respond_with_data("oops", status=500)
    queue("low").enqueue(ical.refresh_ical_sources)
    run_jobs()
    db.session.expire_all()
    layer = db.session.scalar(db.select(ScheduleLayer).where(ScheduleLayer.kind == "ical"))
    assert "500" in layer.ical_error
    assert [u.name for u in oncall.who_is_on_call(ops, utc(2026, 3, 3, 12))] == ["Dave"]


def test_unreachable_url_is_refused_when_adding(admin, api, ops):
    api.as_user(admin)
    response = api.post(f"/api/v1/schedules/{ops.id}/layers", json={"ical_url": "http://127.0.0.1:9/none.ics"})
    assert response.status_code == 422 and "Could not fetch" in response.json["error"]["fields"]["ical_url"]
    assert db.session.scalar(db.select(db.func.count(ScheduleLayer.id))) == 1


def test_all_day_and_floating_events_use_the_schedule_zone(app, ops, team):
    layer = ScheduleLayer(schedule=ops, position=1, kind="ical", name="Days")
    db.session.add(layer)
    data = ics(
        event("d", "Carol", "VALUE=DATE:20260310", "VALUE=DATE:20260311")
        .replace("DTSTART:VALUE", "DTSTART;VALUE")
        .replace("DTEND:VALUE", "DTEND;VALUE"),
        event("f", "Dave", "20260312T080000", "20260312T100000"),
    )
    result = ical.import_ical(layer, data)
    db.session.commit()
    assert result.unmatched == []
    assert [(e.start, e.end) for e in layer.events] == [
        (utc(2026, 3, 9, 23), utc(2026, 3, 10, 23)),
        (utc(2026, 3, 12, 7), utc(2026, 3, 12, 9)),
    ]


def test_ical_refresh_is_a_periodic_job_that_re_arms_itself(app, run_jobs):
    """The worker arms the iCal refresh with its other periodic jobs, and each run arms the next."""
    from rq.registry import ScheduledJobRegistry

    assert ("openduty.jobs.refresh_ical_sources", "ICAL_REFRESH_MINUTES") in timers.PERIODIC_JOBS
    timers.ensure_periodic()
    registry = ScheduledJobRegistry(queue=queue(timers.HOUSEKEEPING_QUEUE))
    armed = [job_id for job_id in registry.get_job_ids() if "refresh_ical_sources" in job_id]
    assert len(armed) == 1

    jobs.ical.refresh_ical_sources()
    again = [job_id for job_id in registry.get_job_ids() if "refresh_ical_sources" in job_id]
    assert len(again) == 1  # the same next slot: arming twice arms once
