"""Maintenance windows through the browser and the API: lists, create, edit, end now, delete (each
destructive one confirmed first), "start now for N minutes" on the service page, validation that
names each field and changes nothing, and who may change a window (managers of every service in it)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from openduty.extensions import db
from openduty.models import MaintenanceWindow, Team, TeamMember
from tests import factories
from tests.factories_escalation import make_service, open_incident


def _local(dt, zone: str = "UTC") -> str:
    return dt.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def _windows() -> list[MaintenanceWindow]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(MaintenanceWindow).order_by(MaintenanceWindow.id)))


def test_a_window_from_creation_to_deletion_in_the_browser(client, auth, admin, clock):
    auth.login(admin.email)
    web, db_service = make_service(None, name="Web"), make_service(None, name="Database")
    token = auth.csrf_token()
    assert "Maintenance" in client.get("/").get_data(as_text=True)  # in the navigation
    form = client.get(f"/maintenance/new?service_id={web.id}").get_data(as_text=True)
    assert f'value="{web.id}" checked' in form and "Database" in form
    start = clock.now() + timedelta(hours=2)
    data = {"csrf_token": token, "start": _local(start), "end": _local(start + timedelta(hours=1)),
            "description": "Kernel upgrade", "service_ids": [str(web.id), str(db_service.id)]}  # fmt: skip
    assert client.post("/maintenance/new", data=data).status_code == 302
    [window] = _windows()
    assert window.service_ids == sorted([web.id, db_service.id]) and window.created_by_id == admin.id
    page = client.get("/maintenance").get_data(as_text=True)
    upcoming = page[page.index("<h2>Upcoming</h2>") : page.index("<h2>Past</h2>")]
    assert "Kernel upgrade" in upcoming and "Web" in upcoming and "Database" in upcoming
    assert f"/maintenance/{window.id}/end" not in page, "only a current window can end now"
    client.post(
        f"/maintenance/{window.id}/edit", data={**data, "service_ids": [str(web.id)], "start": _local(clock.now())}
    )
    assert _windows()[0].service_ids == [web.id] and _windows()[0].start <= clock.now()
    assert "In maintenance until" in client.get(f"/services/{web.id}").get_data(as_text=True)
    confirm = client.get(f"/maintenance/{window.id}/end")
    assert confirm.status_code == 200 and "start escalating" in confirm.get_data(as_text=True)
    assert _windows()[0].end > clock.now(), "asking changes nothing"
    assert client.post(f"/maintenance/{window.id}/end", data={"csrf_token": token}).status_code == 302
    assert _windows()[0].end <= clock.now()
    past = client.get("/maintenance").get_data(as_text=True)
    assert "Kernel upgrade" in past[past.index("<h2>Past</h2>") :]
    assert "Delete it" in client.get(f"/maintenance/{window.id}/delete").get_data(as_text=True)
    assert client.post(f"/maintenance/{window.id}/delete", data={"csrf_token": token}).status_code == 302
    assert _windows() == []


def test_start_now_for_n_minutes_on_the_service_page(client, auth, member, clock):
    team = Team(name="Ops", description="", members=[TeamMember(user=member, role="manager")])
    db.session.add(team)
    db.session.commit()
    service = make_service(None, name="Checkout", team_id=team.id)
    auth.login(member.email)
    token = auth.csrf_token()
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert 'name="minutes"' in page and "Not in maintenance" in page
    bad = client.post(f"/services/{service.id}/maintenance", data={"csrf_token": token, "minutes": "0"})
    assert bad.status_code == 422 and "at least 1" in bad.get_data(as_text=True) and _windows() == []
    done = client.post(f"/services/{service.id}/maintenance", data={"csrf_token": token, "minutes": "45"})
    assert done.status_code == 302
    [window] = _windows()
    assert window.end - window.start == timedelta(minutes=45) and window.service_ids == [service.id]
    shown = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert "badge-maintenance" in shown and f"/maintenance/{window.id}/end" in shown


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"end": -1}, "end", "End must be after start."),
        ({"end": 24 * 40}, "end", "at most 31 days"),
        ({"start": -2, "end": -1}, "start", "Start is in the past"),
        ({"service_ids": []}, "service_ids", "Choose at least one service."),
        ({"service_ids": [99999]}, "service_ids", "No service with id 99999."),
        ({"start": "soon"}, "start", "is not "),  # the form: "a date and time"; the API: "an ISO 8601 ..."
        ({"description": "x" * 1001}, "description", "1000"),
    ],
)
def test_bad_windows_are_refused_with_a_message_per_field(client, auth, api, admin, clock, change, field, message):
    service = make_service(None)
    now = clock.now()
    body = {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat(), "service_ids": [service.id]}
    for name in ("start", "end"):
        if isinstance(change.get(name), int):
            change = {**change, name: (now + timedelta(hours=change[name])).isoformat()}
    api.as_user(admin)
    response = api.post("/api/v1/maintenance-windows", json={**body, **change})
    assert response.status_code == 422
    assert message in response.json["error"]["fields"][field]
    auth.login(admin.email)
    form = {**body, **change}
    for name in ("start", "end"):
        if "T" in form[name]:
            form[name] = _local(datetime.fromisoformat(form[name]))
    page = client.post("/maintenance/new", data={"csrf_token": auth.csrf_token(), **form})
    assert page.status_code == 422 and message.split(" (")[0] in page.get_data(as_text=True).replace("&#39;", "'")
    assert _windows() == []


def test_the_api_lifecycle(api, admin, clock):
    api.as_user(admin)
    service, other = make_service(None), make_service(None)
    now = clock.now()
    body = {"start": (now + timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=2)).isoformat(),
            "description": "Network", "service_ids": [service.id, other.id]}  # fmt: skip
    created = api.post("/api/v1/maintenance-windows", json=body)
    assert created.status_code == 201 and created.json["state"] == "upcoming"
    location = created.headers["Location"]
    assert location == f"/api/v1/maintenance-windows/{created.json['id']}"
    assert api.get(location).json == created.json
    assert api.get("/api/v1/maintenance-windows?state=upcoming").json["maintenance_windows"] == [created.json]
    assert api.get("/api/v1/maintenance-windows?state=current").json["maintenance_windows"] == []
    assert api.get("/api/v1/maintenance-windows?state=someday").status_code == 422
    assert api.post(f"{location}/end").status_code == 422, "an upcoming window is deleted, not ended"
    changed = api.patch(location, json={"start": now.isoformat(), "service_ids": [other.id]})
    assert (
        changed.status_code == 200 and changed.json["state"] == "current" and changed.json["service_ids"] == [other.id]
    )
    refused = api.patch(location, json={"start": (now + timedelta(minutes=5)).isoformat()})
    assert refused.status_code == 422 and "has started" in refused.json["error"]["fields"]["start"]
    ended = api.post(f"{location}/end")
    assert ended.status_code == 200 and ended.json["state"] == "past"
    assert api.patch(location, json={"description": "late"}).status_code == 422
    assert [
        w["id"] for w in api.get(f"/api/v1/maintenance-windows?service_id={other.id}").json["maintenance_windows"]
    ] == [created.json["id"]]
    assert api.delete(location).status_code == 204 and api.get(location).status_code == 404


def test_managers_change_windows_of_their_teams_services_only(api, clock):
    manager = factories.make_user(email="m@example.com", name="M")
    ops, web = Team(name="Ops", description=""), Team(name="Web", description="")
    ops.members = [TeamMember(user=manager, role="manager")]
    db.session.add_all([ops, web])
    db.session.commit()
    ours, theirs = make_service(None, team_id=ops.id), make_service(None, team_id=web.id)
    admin = factories.make_user(email="root@example.com", name="Root", is_admin=True)
    now = clock.now()
    body = {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    api.as_user(manager)
    refused = api.post("/api/v1/maintenance-windows", json={**body, "service_ids": [ours.id, theirs.id]})
    assert (
        refused.status_code == 422 and f"not service id {theirs.id}" in refused.json["error"]["fields"]["service_ids"]
    )
    mine = api.post("/api/v1/maintenance-windows", json={**body, "service_ids": [ours.id]})
    assert mine.status_code == 201
    grown = api.patch(f"/api/v1/maintenance-windows/{mine.json['id']}", json={"service_ids": [ours.id, theirs.id]})
    assert grown.status_code == 422
    api.as_user(admin)
    shared = api.post("/api/v1/maintenance-windows", json={**body, "service_ids": [ours.id, theirs.id]}).json
    api.as_user(manager)
    assert api.patch(f"/api/v1/maintenance-windows/{shared['id']}", json={"description": "x"}).status_code == 403
    assert api.delete(f"/api/v1/maintenance-windows/{shared['id']}").status_code == 403
    assert api.post(f"/api/v1/maintenance-windows/{mine.json['id']}/end").status_code == 200


@pytest.mark.parametrize("path", ["/maintenance", "/services/{service}", "/maintenance/{window}/delete", "/incidents"])
def test_pages_query_nothing_while_rendering(client, auth, admin, clock, queries_while_rendering, path):
    service = make_service(None, name="Shop")
    auth.login(admin.email)
    client.post(f"/services/{service.id}/maintenance", data={"csrf_token": auth.csrf_token(), "minutes": "30"})
    open_incident(service)
    [window] = _windows()
    path = path.format(service=service.id, window=window.id)
    db.session.expunge_all()
    del queries_while_rendering[:]
    response = client.get(path)
    assert response.status_code == 200 and "Shop" in response.get_data(as_text=True)
    assert queries_while_rendering == []
