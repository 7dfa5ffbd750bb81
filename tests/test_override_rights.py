"""Who may add which override (issue 8, finding 5): a member hands over only time in which they are on
call (all of the range), or takes time for themselves; anything else needs an admin. The page and
the API share one rule (overrides.can_add_override)."""

from datetime import UTC, datetime

import pytest

from openduty import oncall
from tests import factories
from tests.factories_schedules import make_layer, make_override, make_schedule


@pytest.fixture
def people(app):
    names = ("member", "bob", "carol")
    return {n: factories.make_user(email=f"{n}@example.com", name=n.title()) for n in names}


@pytest.fixture
def schedule(people, clock):
    """Carol's daily rotation; the member is on call for one hour on 3 March (an override)."""
    schedule = make_schedule(name="Ops")
    make_layer(schedule, [people["carol"]], datetime(2026, 3, 1), 1, "days")
    make_override(
        schedule, people["member"], datetime(2026, 3, 3, 10, tzinfo=UTC), datetime(2026, 3, 3, 11, tzinfo=UTC)
    )
    return schedule


CASES = [
    # (whom, start, end, allowed) for the member; times UTC on the schedule (zone UTC)
    ("bob", "2026-03-03T10:00", "2027-03-03T10:00", False),  # the reported bug: an hour gives away a year
    ("bob", "2026-03-03T10:00", "2026-03-03T11:01", False),  # one minute past their own time
    ("bob", "2026-03-03T09:59", "2026-03-03T11:00", False),
    ("bob", "2026-03-04T10:00", "2026-03-04T11:00", False),  # someone else's time (Carol's)
    ("bob", "2026-03-03T10:00", "2026-03-03T11:00", True),  # exactly their hour
    ("bob", "2026-03-03T10:15", "2026-03-03T10:45", True),  # part of it
    ("member", "2026-04-01T00:00", "2026-04-08T00:00", True),  # taking time for themselves
]


@pytest.mark.parametrize(("whom", "start", "end", "allowed"), CASES)
def test_api(api, people, schedule, whom, start, end, allowed):
    api.as_user(people["member"])
    body = {"user_id": people[whom].id, "start": start + ":00Z", "end": end + ":00Z"}
    response = api.post(f"/api/v1/schedules/{schedule.id}/overrides", json=body)
    assert response.status_code == (201 if allowed else 403), response.json
    if not allowed:
        assert "hand over time in which you are on call" in response.json["error"]["message"]


@pytest.mark.parametrize(("whom", "start", "end", "allowed"), CASES)
def test_page(client, auth, post_form, people, schedule, whom, start, end, allowed):
    auth.login("member@example.com")
    before = len(schedule.overrides)
    data = {"user_id": str(people[whom].id), "start": start, "end": end}
    response = post_form(f"/schedules/{schedule.id}/overrides", data)
    assert response.status_code == (302 if allowed else 403)
    assert len(schedule.overrides) == before + (1 if allowed else 0)


def test_admins_may_add_any_override(api, people, schedule, app):
    admin = factories.make_user(email="root@example.com", is_admin=True)
    api.as_user(admin)
    body = {"user_id": people["bob"].id, "start": "2026-03-03T10:00:00Z", "end": "2027-03-03T10:00:00Z"}
    assert api.post(f"/api/v1/schedules/{schedule.id}/overrides", json=body).status_code == 201


def test_handing_over_across_consecutive_own_shifts(api, people, clock):
    """Own time may span several final shifts (a layer's handoffs, an override next to a shift)."""
    schedule = make_schedule(name="Solo")
    make_layer(schedule, [people["member"]], datetime(2026, 3, 1), 1, "days")
    api.as_user(people["member"])
    body = {"user_id": people["bob"].id, "start": "2026-03-03T08:00:00Z", "end": "2026-03-06T08:00:00Z"}
    assert api.post(f"/api/v1/schedules/{schedule.id}/overrides", json=body).status_code == 201
    # Now Bob has that time; the member cannot hand it over again.
    body["user_id"] = people["carol"].id
    assert api.post(f"/api/v1/schedules/{schedule.id}/overrides", json=body).status_code == 403


def test_on_call_throughout(people, schedule):
    member = people["member"].id
    at = datetime(2026, 3, 3, 10, tzinfo=UTC)
    assert oncall.on_call_throughout(schedule, member, at, at.replace(hour=11))
    assert not oncall.on_call_throughout(schedule, member, at, at.replace(hour=12))
    assert not oncall.on_call_throughout(schedule, people["bob"].id, at, at.replace(hour=11))
