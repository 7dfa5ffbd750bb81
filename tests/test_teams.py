"""Teams and roles: a manager changes their team's services, policies and schedules (and only theirs),
members respond, observers read, integration keys show in full to admins and the team's managers;
teams and members through the pages and the API. Who may reach which route is tests/test_access.py."""

import pytest
from sqlalchemy import select

from openduty.extensions import db
from openduty.models import EscalationPolicy, Schedule, ScheduleOverride, Service, Team, TeamMember, User
from tests import factories, factories_escalation, factories_events, factories_schedules


@pytest.fixture
def org(app, admin):
    """Team Web (Mia manages, Sam is a member) owns the Shop service; team Data owns the Warehouse."""
    mia = factories.make_user(email="mia@example.com", name="Mia")
    sam = factories.make_user(email="sam@example.com", name="Sam")
    factories.make_user(email="olga@example.com", name="Olga", observer=True)
    web, data = Team(name="Web", description=""), Team(name="Data", description="")
    web.members = [TeamMember(user=mia, role="manager"), TeamMember(user=sam)]
    db.session.add_all([web, data])
    db.session.commit()
    shop = factories_escalation.make_service(None, name="Shop")
    warehouse = factories_escalation.make_service(None, name="Warehouse")
    shop.team_id, warehouse.team_id = web.id, data.id
    shop_key = factories_events.make_integration(shop, kind="generic")
    factories_events.make_integration(warehouse, kind="generic")
    db.session.commit()
    return {"web": web.id, "data": data.id, "shop": shop.id, "warehouse": warehouse.id, "key": shop_key.key}


def test_a_manager_changes_their_teams_service_and_not_another(client, auth, post_form, org):
    auth.login("mia@example.com")
    assert post_form(f"/services/{org['shop']}/edit", {"name": "Shop 2", "team_id": org["web"]}).status_code == 302
    assert db.session.get(Service, org["shop"]).name == "Shop 2"
    refused = post_form(f"/services/{org['warehouse']}/edit", {"name": "Mine now", "team_id": org["web"]})
    assert refused.status_code == 403 and "managers can change services" in refused.get_data(as_text=True)
    assert db.session.get(Service, org["warehouse"]).name == "Warehouse"


@pytest.mark.parametrize(
    ("team", "message"),
    [("", "Choose one of the teams you manage"), ("data", "only choose a team you manage"), ("999", "No team")],
)
def test_a_manager_keeps_what_they_make_in_their_teams(client, auth, post_form, org, team, message):
    auth.login("mia@example.com")
    team_id = org.get(team, team)
    created = post_form("/services/new", {"name": "Search", "team_id": team_id})
    assert created.status_code == 422 and message in created.get_data(as_text=True)
    moved = post_form(f"/services/{org['shop']}/edit", {"name": "Shop", "team_id": team_id})
    assert moved.status_code == 422
    db.session.expire_all()
    assert db.session.get(Service, org["shop"]).team_id == org["web"]
    assert db.session.scalar(select(Service).where(Service.name == "Search")) is None


def test_managers_create_policies_and_schedules_for_their_team(client, auth, post_form, org, api):
    auth.login("mia@example.com")
    assert post_form("/policies", {"name": "Web on-call", "team_id": org["web"]}).status_code == 303
    assert post_form("/schedules", {"name": "Web rota", "time_zone": "UTC", "team_id": org["web"]}).status_code == 302
    policy = db.session.scalar(select(EscalationPolicy).where(EscalationPolicy.name == "Web on-call"))
    schedule = db.session.scalar(select(Schedule).where(Schedule.name == "Web rota"))
    assert policy.team_id == schedule.team_id == org["web"]
    api.as_user(User.by_email("mia@example.com"))
    body = api.post("/api/v1/services", json={"name": "API made", "team_id": org["web"]}).get_json()
    assert body["team_id"] == org["web"]
    refused = api.post("/api/v1/services", json={"name": "No team"})
    assert refused.status_code == 422 and "team_id" in refused.get_json()["error"]["fields"]


def test_integration_keys_show_in_full_to_admins_and_the_teams_managers(client, auth, org):
    shown = {}
    for email in ("mia@example.com", "sam@example.com", "admin@example.com"):
        auth.login(email)
        shown[email] = org["key"] in client.get(f"/services/{org['shop']}").get_data(as_text=True)
        auth.logout()
    assert shown == {"mia@example.com": True, "sam@example.com": False, "admin@example.com": True}


def test_observers_read_but_do_not_act(client, auth, post_form, org):
    incident = factories_escalation.open_incident(db.session.get(Service, org["shop"]))
    auth.login("olga@example.com")
    assert client.get(f"/incidents/{incident.id}").status_code == 200
    refused = post_form(f"/incidents/{incident.id}/acknowledge")
    assert refused.status_code == 403 and "Observers cannot" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert incident.status == "triggered"


def test_a_manager_runs_their_team_and_a_member_cannot(client, auth, post_form, org, admin):
    auth.login("sam@example.com")
    assert post_form(f"/teams/{org['web']}/members", {"user_id": admin.id, "role": "manager"}).status_code == 403
    auth.logout()
    auth.login("mia@example.com")
    admin_id = admin.id
    sam = db.session.scalar(select(TeamMember).where(TeamMember.role == "member"))
    assert post_form(f"/teams/{org['web']}/members/{sam.user_id}", {"role": "manager"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(TeamMember, sam.id).role == "manager"
    bad = post_form(f"/teams/{org['web']}/members", {"user_id": admin_id, "role": "boss"})
    assert bad.status_code == 422 and "Use one of member, manager" in bad.get_data(as_text=True)
    assert post_form(f"/teams/{org['web']}/members/{sam.user_id}/delete").status_code == 302
    page = client.get(f"/teams/{org['web']}").get_data(as_text=True)
    assert ">Sam</a>" not in page and ">Mia</a>" in page and ">Shop</a>" in page


def test_teams_through_the_api(api, admin, org):
    api.as_user(admin)
    made = api.post("/api/v1/teams", json={"name": "Payments", "description": "Money"})
    assert made.status_code == 201
    team_id = made.get_json()["id"]
    assert api.post("/api/v1/teams", json={"name": "payments"}).status_code == 422  # names are unique
    assert api.post("/api/v1/teams", json={"name": "X", "colour": "red"}).status_code == 422
    sam = User.by_email("sam@example.com").id
    added = api.post(f"/api/v1/teams/{team_id}/members", json={"user_id": sam, "role": "manager"})
    assert added.status_code == 201 and added.get_json()["members"][0]["role"] == "manager"
    again = api.post(f"/api/v1/teams/{team_id}/members", json={"user_id": sam, "role": "member"})
    assert again.status_code == 200 and again.get_json()["members"][0]["role"] == "member"
    assert api.post(f"/api/v1/teams/{team_id}/members", json={"user_id": 9999}).status_code == 422
    assert api.delete(f"/api/v1/teams/{team_id}/members/9999").status_code == 404
    assert api.delete(f"/api/v1/teams/{team_id}/members/{sam}").status_code == 204
    assert api.patch(f"/api/v1/teams/{team_id}", json={"name": "Billing"}).get_json()["name"] == "Billing"
    assert api.delete(f"/api/v1/teams/{org['web']}").status_code == 204
    db.session.expire_all()
    assert db.session.get(Service, org["shop"]).team_id is None  # what it owned stays, with no team


def test_directory_teams_take_members_only_from_the_directory(api, admin, org):
    team = db.session.get(Team, org["data"])
    team.directory_dn = "cn=team-data,ou=groups,dc=example,dc=org"
    db.session.commit()
    api.as_user(admin)
    refused = api.post(f"/api/v1/teams/{team.id}/members", json={"user_id": admin.id})
    assert refused.status_code == 409 and "directory group" in refused.get_json()["error"]["message"]


def test_managers_handle_any_override_on_their_teams_schedule(client, auth, post_form, org, clock):
    schedule = factories_schedules.make_schedule(name="Web rota")
    schedule.team_id = org["web"]
    db.session.commit()
    sam = User.by_email("sam@example.com")
    auth.login("mia@example.com")  # puts Sam on call, though Mia is not on call then herself
    data = {"user_id": sam.id, "start": "2026-03-10T10:00", "end": "2026-03-10T12:00"}
    assert post_form(f"/schedules/{schedule.id}/overrides", data).status_code == 302
    override = db.session.scalar(select(ScheduleOverride).where(ScheduleOverride.schedule_id == schedule.id))
    assert override.user_id == sam.id
    assert post_form(f"/schedules/{schedule.id}/overrides/{override.id}/delete").status_code == 302
    assert db.session.scalar(select(ScheduleOverride).where(ScheduleOverride.schedule_id == schedule.id)) is None


def test_the_console_shows_my_teams_by_default_and_any_team_on_request(client, auth, api, org):
    shop = factories_escalation.open_incident(db.session.get(Service, org["shop"]), summary="Shop is down")
    factories_escalation.open_incident(db.session.get(Service, org["warehouse"]), summary="Warehouse is slow")
    auth.login("sam@example.com")
    mine = client.get("/incidents").get_data(as_text=True)
    assert "Shop is down" in mine and "Warehouse is slow" not in mine
    everything = client.get("/incidents?team_id=all").get_data(as_text=True)
    assert "Shop is down" in everything and "Warehouse is slow" in everything
    data = client.get(f"/incidents?team_id={org['data']}").get_data(as_text=True)
    assert "Shop is down" not in data and "Warehouse is slow" in data
    assert client.get("/incidents?team_id=nope").status_code == 400
    auth.logout()
    auth.login("admin@example.com")  # in no team: everything by default
    assert "Warehouse is slow" in client.get("/incidents").get_data(as_text=True)
    api.as_user(User.by_email("sam@example.com"))
    assert [i["id"] for i in api.get("/api/v1/incidents?team_id=mine").get_json()["incidents"]] == [shop.id]
    assert len(api.get("/api/v1/incidents").get_json()["incidents"]) == 2
    bad = api.get("/api/v1/incidents?team_id=0")
    assert bad.status_code == 422 and "team_id" in bad.get_json()["error"]["fields"]


def test_only_admins_make_observers(api, admin, client, auth, post_form, org):
    sam = User.by_email("sam@example.com")
    api.as_user(sam)
    refused = api.patch(f"/api/v1/users/{sam.id}", json={"observer": True})
    assert refused.status_code == 403 and "observer" in refused.get_json()["error"]["fields"]
    api.as_user(admin)
    made = api.patch(f"/api/v1/users/{sam.id}", json={"observer": True}).get_json()
    assert (made["observer"], made["role"]) == (True, "observer")
    auth.login(admin.email)
    form = {"name": "Sam", "email": sam.email, "time_zone": "UTC"}  # the box unticked: a member again
    assert post_form(f"/users/{sam.id}/edit", form).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, sam.id).role == "member"
    assert ">member<" in client.get("/users/").get_data(as_text=True)


def test_managers_read_their_teams_audit_entries_only(client, auth, post_form, api, org):
    auth.login("mia@example.com")
    post_form(f"/services/{org['shop']}/edit", {"name": "Shop 2", "team_id": org["web"]})
    post_form(f"/services/{org['shop']}/integrations", {"kind": "generic", "name": "hook"})
    auth.logout()
    auth.login("admin@example.com")
    post_form(f"/services/{org['warehouse']}/edit", {"name": "Warehouse 2", "team_id": org["data"]})
    auth.logout()
    auth.login("mia@example.com")
    page = client.get("/audit").get_data(as_text=True)
    assert "Shop 2" in page and "hook" in page and "Warehouse 2" not in page and "login" not in page
    api.as_user(User.by_email("mia@example.com"))
    entries = api.get("/api/v1/audit").get_json()["entries"]
    assert {e["object_label"] for e in entries} >= {"Shop 2", "hook"} and "Warehouse 2" not in str(entries)
    auth.logout()
    auth.login("sam@example.com")  # a member, not a manager
    assert client.get("/audit").status_code == 403
