"""Schedules API: CRUD, layers, overrides, who is on call, shifts, /oncalls and the original shape."""

from datetime import UTC, datetime

import pytest

from openduty.extensions import db
from openduty.models import EscalationLevel, EscalationPolicy, EscalationTarget, Schedule, ScheduleOverride
from tests.factories import make_user
from tests.factories_schedules import make_layer, make_override, make_schedule


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def admin_api(api, admin):
    return api.as_user(admin)


def rotation(team, **fields):
    body = {
        "name": "Primary",
        "start": "2026-01-05T09:00:00",
        "shift_length": 1,
        "shift_unit": "weeks",
        "participants": [u.id for u in team],
        "restrictions": [],
    }
    return {**body, **fields}


def test_create_read_update_delete(admin_api, team, clock):
    clock.set(utc(2026, 1, 6, 12))
    body = {"name": "Ops", "time_zone": "Europe/Budapest", "description": "Ops team", "layers": [rotation(team[:2])]}
    created = admin_api.post("/api/v1/schedules", json=body)
    assert created.status_code == 201, created.json
    data = created.json
    assert created.headers["Location"] == f"/api/v1/schedules/{data['id']}"
    assert data["time_zone"] == "Europe/Budapest"
    assert data["layers"][0]["participants"] == [team[0].id, team[1].id]
    assert data["layers"][0]["rrules"][0].startswith("DTSTART;TZID=Europe/Budapest:20260105T090000")
    assert data["on_call_now"] == [{"id": team[0].id, "name": "Alice", "email": "alice@example.com"}]
    assert data["ical_url"].startswith(f"http://localhost/calendar/schedules/{data['id']}.ics?token=")

    listed = admin_api.get("/api/v1/schedules").json["schedules"]
    assert [s["name"] for s in listed] == ["Ops"]

    patched = admin_api.patch(f"/api/v1/schedules/{data['id']}", json={"description": "New", "layers": []})
    assert patched.status_code == 200 and patched.json["layers"] == [] and patched.json["description"] == "New"
    assert patched.json["gap_warning"].startswith("Nobody is on call in Ops from now")

    assert admin_api.delete(f"/api/v1/schedules/{data['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/schedules/{data['id']}").status_code == 404


@pytest.mark.parametrize(
    "change,field",
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"name": ""}, "name"),
        ({"layers": [{"start": "2026-01-05T09:00", "shift_length": 0, "participants": [1]}]}, "layers[0].shift_length"),
        (
            {"layers": [{"start": "2026-01-05T09:00", "shift_length": -3, "participants": [1]}]},
            "layers[0].shift_length",
        ),
        ({"layers": [{"start": "2026-01-05T09:00", "shift_length": 1, "participants": []}]}, "layers[0].participants"),
        ({"layers": [{"start": "2026-01-05T09:00", "participants": [999]}]}, "layers[0].participants"),
        ({"layers": [{"start": "yesterday", "participants": [1]}]}, "layers[0].start"),
        (
            {"layers": [{"start": "2026-01-05T09:00", "participants": [1], "shift_unit": "months"}]},
            "layers[0].shift_unit",
        ),
        (
            {"layers": [{"start": "2026-01-05T09:00", "participants": [1], "restrictions": [{"days": ["xyz"]}]}]},
            "layers[0].restrictions",
        ),
        ({"layers": "nope"}, "layers"),
    ],
)
def test_bad_schedule_input_is_refused_and_nothing_saved(admin_api, admin, change, field):
    body = {"name": "Ops", "time_zone": "UTC", **change}
    response = admin_api.post("/api/v1/schedules", json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"], response.json
    assert db.session.scalar(db.select(db.func.count(Schedule.id))) == 0


def test_duplicate_name_and_permissions(api, admin, team):
    make_schedule(name="Ops")
    api.as_user(team[0])
    assert api.post("/api/v1/schedules", json={"name": "Other"}).status_code == 403
    assert api.get("/api/v1/schedules").status_code == 200
    api.as_user(admin)
    response = api.post("/api/v1/schedules", json={"name": "ops"})
    assert response.status_code == 422 and "already exists" in response.json["error"]["fields"]["name"]


def test_layers_add_reorder_delete(admin_api, team, clock):
    clock.set(utc(2026, 1, 6, 12))
    schedule = make_schedule()
    base = admin_api.post(f"/api/v1/schedules/{schedule.id}/layers", json=rotation(team[:1]))
    assert base.status_code == 201, base.json
    top = admin_api.post(f"/api/v1/schedules/{schedule.id}/layers", json=rotation(team[1:2], name="Top"))
    assert top.json["position"] == 1
    assert top.headers["Location"] == f"/api/v1/schedules/{schedule.id}/layers/{top.json['id']}"
    assert admin_api.get(top.headers["Location"]).json == top.json
    assert admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall").json["users"][0]["name"] == "Bob"
    moved = admin_api.patch(f"/api/v1/schedules/{schedule.id}/layers/{top.json['id']}", json={"position": 0})
    assert moved.status_code == 200 and moved.json["position"] == 0
    assert admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall").json["users"][0]["name"] == "Alice"
    changed = admin_api.patch(f"/api/v1/schedules/{schedule.id}/layers/{base.json['id']}", json={"shift_length": 0})
    assert changed.status_code == 422 and "shift_length" in changed.json["error"]["fields"]
    assert admin_api.delete(f"/api/v1/schedules/{schedule.id}/layers/{base.json['id']}").status_code == 204
    assert admin_api.get(f"/api/v1/schedules/{schedule.id}/layers/{base.json['id']}").status_code == 404
    assert admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall").json["users"][0]["name"] == "Bob"


def test_oncall_at_and_shifts(admin_api, team):
    schedule = make_schedule(time_zone="America/New_York")
    make_layer(schedule, team[:2], datetime(2026, 3, 7, 9), 1, "days")
    response = admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall?at=2026-03-08T12:00:00-04:00")
    assert response.json == {
        "users": [{"id": team[1].id, "name": "Bob", "email": "bob@example.com"}],
        "start": "2026-03-08T13:00:00+00:00",
        "end": "2026-03-09T13:00:00+00:00",
        "source": "layer",
    }
    # The 23-hour day: 09:00 EST on the 7th to 09:00 EDT on the 8th.
    shifts = admin_api.get(
        f"/api/v1/schedules/{schedule.id}/shifts?since=2026-03-07T14:00:00Z&until=2026-03-09T00:00:00Z"
    ).json["shifts"]
    assert [(s["start"], s["end"], s["users"][0]["name"]) for s in shifts] == [
        ("2026-03-07T14:00:00+00:00", "2026-03-08T13:00:00+00:00", "Alice"),
        ("2026-03-08T13:00:00+00:00", "2026-03-09T13:00:00+00:00", "Bob"),
    ]
    bad = admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall?at=2026-03-08T12:00:00")
    assert bad.status_code == 422 and "offset" in bad.json["error"]["fields"]["at"]
    bad = admin_api.get(f"/api/v1/schedules/{schedule.id}/shifts?since=2026-03-09T00:00:00Z&until=2026-03-08T00:00:00Z")
    assert bad.status_code == 422 and "until" in bad.json["error"]["fields"]


def test_overrides_validation_and_overlap(admin_api, admin, team):
    schedule = make_schedule()
    make_layer(schedule, team[:1], datetime(2026, 1, 1), 1, "weeks")
    url = f"/api/v1/schedules/{schedule.id}/overrides"
    bad = admin_api.post(
        url, json={"user_id": team[1].id, "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T09:00:00Z"}
    )
    assert bad.status_code == 422 and bad.json["error"]["fields"] == {"end": "End must be after start."}
    bad = admin_api.post(url, json={"user_id": 999, "start": "2026-01-05T10:00:00", "end": "x"})
    assert set(bad.json["error"]["fields"]) == {"user_id", "start", "end"}
    assert db.session.scalar(db.select(db.func.count(ScheduleOverride.id))) == 0

    first = admin_api.post(
        url, json={"user_id": team[1].id, "start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}
    )
    assert first.status_code == 201 and "overlap" not in first.json
    assert first.headers["Location"] == f"{url}/{first.json['id']}"
    assert admin_api.get(first.headers["Location"]).json == first.json
    second = admin_api.post(
        url, json={"user_id": team[2].id, "start": "2026-01-05T12:00:00+01:00", "end": "2026-01-07T00:00:00Z"}
    )
    assert second.status_code == 201
    assert "this one wins" in second.json["overlap"] and f"#{first.json['id']}" in second.json["overlap"]
    who = admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall?at=2026-01-05T11:30:00Z").json["users"]
    assert [u["name"] for u in who] == ["Carol"]
    listed = admin_api.get(f"{url}?since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z").json["overrides"]
    assert [o["user"]["name"] for o in listed] == ["Bob", "Carol"]
    assert admin_api.delete(f"{url}/{second.json['id']}").status_code == 204
    assert admin_api.get(f"{url}/{second.json['id']}").status_code == 404
    who = admin_api.get(f"/api/v1/schedules/{schedule.id}/oncall?at=2026-01-05T11:30:00Z").json["users"]
    assert [u["name"] for u in who] == ["Bob"]


def test_non_admins_take_shifts_and_get_cover_but_nothing_else(api, team):
    alice, bob, carol, _ = team
    schedule = make_schedule()
    make_layer(schedule, [alice], datetime(2026, 1, 1), 1, "weeks")
    url = f"/api/v1/schedules/{schedule.id}/overrides"
    api.as_user(bob)
    take = api.post(url, json={"user_id": bob.id, "start": "2026-01-05T00:00:00Z", "end": "2026-01-05T08:00:00Z"})
    assert take.status_code == 201
    # Bob cannot put Carol on a shift that is not his.
    other = api.post(url, json={"user_id": carol.id, "start": "2026-01-06T00:00:00Z", "end": "2026-01-06T08:00:00Z"})
    assert other.status_code == 403
    api.as_user(alice)  # Alice is on call: Carol covers for her.
    cover = api.post(url, json={"user_id": carol.id, "start": "2026-01-06T00:00:00Z", "end": "2026-01-06T08:00:00Z"})
    assert cover.status_code == 201
    api.as_user(carol)
    assert api.delete(f"{url}/{take.json['id']}").status_code == 403
    assert api.delete(f"{url}/{cover.json['id']}").status_code == 204


def test_deleting_a_schedule_used_by_a_policy_is_refused(admin_api, team):
    schedule = make_schedule(name="Ops")
    policy = EscalationPolicy(
        name="Default",
        levels=[
            EscalationLevel(position=0, targets=[EscalationTarget(target_type="schedule", schedule_id=schedule.id)])
        ],
    )
    db.session.add(policy)
    db.session.commit()
    response = admin_api.delete(f"/api/v1/schedules/{schedule.id}")
    assert response.status_code == 409 and "Default" in response.json["error"]["message"]
    assert db.session.get(Schedule, schedule.id) is not None


def test_oncalls_lists_every_policy_level(admin_api, team, clock):
    clock.set(utc(2026, 1, 6, 12))
    alice, bob, carol, dave = team
    ops = make_schedule(name="Ops")
    make_layer(ops, [alice, bob], datetime(2026, 1, 5, 9), 1, "weeks")
    empty = make_schedule(name="Empty")
    policy = EscalationPolicy(
        name="Default",
        levels=[
            EscalationLevel(position=0, targets=[EscalationTarget(target_type="schedule", schedule_id=ops.id)]),
            EscalationLevel(
                position=1,
                targets=[
                    EscalationTarget(target_type="user", user_id=dave.id),
                    EscalationTarget(target_type="schedule", schedule_id=empty.id),
                ],
            ),
        ],
    )
    db.session.add(policy)
    db.session.commit()
    body = admin_api.get("/api/v1/oncalls").json
    assert [
        (o["escalation_level"], o["user"] and o["user"]["name"], o["schedule"] and o["schedule"]["name"])
        for o in body["oncalls"]
    ] == [
        (1, "Alice", "Ops"),
        (2, "Dave", None),
        (2, None, "Empty"),
    ]
    assert body["oncalls"][0]["end"] == "2026-01-12T09:00:00+00:00"
    later = admin_api.get("/api/v1/oncalls?at=2026-01-13T00:00:00Z").json["oncalls"]
    assert later[0]["user"]["name"] == "Bob"


def test_original_openduty_oncall_shape(api, team):
    schedule = make_schedule(name="ops")
    make_layer(schedule, team[:2], datetime(2026, 1, 5), 1, "days")
    url = "/api/oncall/ops?since=2026-01-05T00:00:00Z&until=2026-01-07T00:00:00Z"
    assert api.get(url).status_code == 401
    api.as_user(make_user())
    assert api.get(url).json == [
        {
            "person": "Alice",
            "email": "alice@example.com",
            "start": "2026-01-05T00:00:00+00:00",
            "end": "2026-01-06T00:00:00+00:00",
        },
        {
            "person": "Bob",
            "email": "bob@example.com",
            "start": "2026-01-06T00:00:00+00:00",
            "end": "2026-01-07T00:00:00+00:00",
        },
    ]
    assert api.get(url.replace("/ops", f"/{schedule.id}")).status_code == 200
    assert api.get("/api/oncall/nope").status_code == 404


def test_override_factory_overlap_with_api_listing(admin_api, team):
    schedule = make_schedule()
    make_override(schedule, team[0], utc(2026, 1, 1), utc(2026, 1, 2))
    listed = admin_api.get(f"/api/v1/schedules/{schedule.id}/overrides?since=2026-01-01T00:00:00Z").json
    assert listed["overrides"][0]["user"]["name"] == "Alice"
