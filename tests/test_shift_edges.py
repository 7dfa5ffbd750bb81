"""A shift is one person's whole run, whatever window it is asked through (issue 14, defect 3): one
person's consecutive turns are one shift, a single participant's shift starts at the rotation's
start, and the iCal feed keeps the same UID and DTSTART for the same shift on every fetch."""

import itertools
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from openduty import oncall
from openduty.extensions import db
from tests.factories import make_user
from tests.factories_schedules import make_layer, make_override, make_schedule

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


_viewers = itertools.count()


def schedule_viewer():
    return make_user(name="Viewer", email=f"viewer{next(_viewers)}@example.com")


def _oncall(api, schedule, at: datetime) -> dict:
    response = api.as_user(schedule_viewer()).get(f"/api/v1/schedules/{schedule.id}/oncall?at={at.isoformat()}")
    assert response.status_code == 200, response.json
    return response.json


def test_consecutive_turns_of_one_person_are_one_shift(app, api, team):
    alice, bob = team[0], team[1]
    schedule = make_schedule()
    make_layer(schedule, [alice, alice, alice, bob], datetime(2026, 11, 29), 1, "days")
    for at in (AT, datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 12, 1, 23, 59, tzinfo=UTC)):
        found = _oncall(api, schedule, at)
        assert [u["id"] for u in found["users"]] == [alice.id]
        assert (found["start"], found["end"]) == ("2026-11-29T00:00:00+00:00", "2026-12-02T00:00:00+00:00"), at
    assert _oncall(api, schedule, datetime(2026, 12, 2, 5, tzinfo=UTC))["end"] == "2026-12-03T00:00:00+00:00"


def test_a_long_run_is_merged_back_to_its_start(app, team):
    """Ten weekly turns in a row: the shift asked for in its last week still starts in the first."""
    alice, bob = team[0], team[1]
    schedule = make_schedule()
    make_layer(schedule, [alice] * 10 + [bob], datetime(2026, 1, 5), 1, "weeks")
    shift = oncall.current_shift(schedule, datetime(2026, 3, 12, tzinfo=UTC))
    assert (shift.start, shift.end) == (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))


def test_a_single_participant_is_on_call_from_the_rotation_start(app, api, team, clock):
    clock.set(AT)
    schedule = make_schedule()
    make_layer(schedule, [team[0]], datetime(2026, 6, 1, 9), 1, "days")
    found = _oncall(api, schedule, AT)
    assert found["start"] == "2026-06-01T09:00:00+00:00"
    end = datetime.fromisoformat(found["end"])
    assert end >= AT + oncall.SHIFT_HORIZON  # no end in sight: shown until the horizon
    assert _oncall(api, schedule, AT + timedelta(hours=7))["end"] == found["end"]  # the same horizon


def test_an_override_still_cuts_a_merged_run(app, team):
    alice, bob, carol = team[0], team[1], team[2]
    schedule = make_schedule()
    make_layer(schedule, [alice, alice, alice, bob], datetime(2026, 11, 29), 1, "days")
    make_override(schedule, carol, datetime(2026, 11, 30, 6, tzinfo=UTC), datetime(2026, 11, 30, 8, tzinfo=UTC))
    shift = oncall.current_shift(schedule, AT)
    assert (shift.user_ids, shift.start, shift.end) == (
        (alice.id,),
        datetime(2026, 11, 30, 8, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )


@pytest.mark.parametrize("participants", [1, 4])
def test_feed_uids_and_starts_are_the_same_on_every_fetch(app, client, team, clock, participants):
    alice, bob = team[0], team[1]
    schedule = make_schedule()
    make_layer(schedule, [alice, alice, alice, bob][:participants], datetime(2026, 6, 1), 1, "days")
    alice.regenerate_calendar_token()
    db.session.commit()
    seen = []
    for hours in (0, 5, 13):
        clock.set(AT + timedelta(hours=hours))
        body = client.get(f"/calendar/schedules/{schedule.id}.ics?token={alice.calendar_token}").data
        events = icalendar.Calendar.from_ical(body).walk("VEVENT")
        seen.append({(str(e["UID"]), e["DTSTART"].dt) for e in events if "Alice" in str(e["SUMMARY"])})
    assert seen[0] and seen[0] == seen[1] == seen[2]


def test_a_deactivated_person_on_call_is_a_gap_and_shown_as_not_paged(app, client, auth, admin, team, clock):
    """Issue 14, defect 4: escalation never pages a deactivated user, so their shift is a gap."""
    clock.set(AT)
    alice, bob = team[0], team[1]
    schedule = make_schedule(name="Payments")
    make_layer(schedule, [alice, bob], datetime(2026, 11, 30), 1, "days")
    assert oncall.gap_warnings(schedule) is None
    bob.active = False
    db.session.commit()
    warning = oncall.gap_warnings(schedule)
    assert warning is not None and warning.first.start == datetime(2026, 12, 1, tzinfo=UTC)
    alice.active = False
    db.session.commit()
    assert "from now" in oncall.gap_warnings(schedule).message
    auth.login(admin.email)
    page = client.get(f"/schedules/{schedule.id}").get_data(as_text=True)
    assert 'Alice</strong> <span class="badge badge-critical"' in page and "deactivated, not paged" in page
    assert "Nobody is on call in Payments from now" in page
    assert "Alice (deactivated)" in page  # the calendar's cells
    listing = client.get("/schedules").get_data(as_text=True)
    assert "deactivated, not paged" in listing
