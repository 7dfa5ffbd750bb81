"""Incidents API: list and filter, detail, log, acknowledge / resolve / notes, escalation actions."""

from openduty.extensions import db
from tests import factories, factories_escalation, factories_events


def test_list_filter_search_paginate(api, admin):
    api.as_user(admin)
    web = factories_events.make_integration(factories_events.make_service(name="Web"))
    db_ = factories_events.make_integration(factories_events.make_service(name="DB"))
    for n in range(30):
        factories_events.make_incident(web, summary=f"Web problem {n}")
    factories_events.make_incident(db_, summary="Replication lag", dedup_key="lag")
    body = api.get("/api/v1/incidents?total=true").json
    assert body["total"] == 31 and len(body["incidents"]) == 25 and body["more"]
    assert body["incidents"][0]["summary"] == "Replication lag"  # newest first
    assert set(body["incidents"][0]) == {
        "id", "number", "status", "summary", "severity", "urgency", "service_id", "dedup_key", "alert_count",
        "created_at", "acknowledged_at", "resolved_at",
    }  # fmt: skip
    assert len(api.get("/api/v1/incidents?page=2").json["incidents"]) == 6
    assert len(api.get(body["next"]).json["incidents"]) == 6
    only_db = api.get(f"/api/v1/incidents?service_id={db_.service_id}").json["incidents"]
    assert [i["dedup_key"] for i in only_db] == ["lag"]
    assert api.get("/api/v1/incidents?q=replication&total=true").json["total"] == 1
    assert api.get("/api/v1/incidents?q=%2331").json["incidents"][0]["number"] == 31
    assert api.get("/api/v1/incidents?status=resolved").json["incidents"] == []
    bad = api.get("/api/v1/incidents?status=sleeping&page=0")
    assert bad.status_code == 422
    assert "status" in bad.json["error"]["fields"]


def test_detail_log_and_actions(api):
    user = factories.make_user(name="Rita Responder")
    api.as_user(user)
    incident = factories_events.make_incident(summary="Checkout errors", details={"custom_details": {"rate": 0.2}})
    detail = api.get(f"/api/v1/incidents/{incident.id}").json
    assert detail["id"] == incident.id  # a single object is answered flat
    assert detail["details"] == {"custom_details": {"rate": 0.2}}
    assert detail["service"]["name"]

    response = api.post(f"/api/v1/incidents/{incident.id}/acknowledge")
    assert response.status_code == 200
    assert response.json["status"] == "acknowledged" and response.json["changed"] is True
    assert response.json["acknowledged_by"]["name"] == "Rita Responder"
    assert set(response.json) == set(detail) | {"changed"}  # the detail, flat, plus `changed`
    assert api.post(f"/api/v1/incidents/{incident.id}/acknowledge").json["changed"] is False
    note = api.post(f"/api/v1/incidents/{incident.id}/notes", json={"note": "Rolling back deploy 42"})
    assert note.status_code == 201
    assert note.json["kind"] == "note" and note.json["message"] == "Rolling back deploy 42"
    assert note.headers["Location"] == f"/api/v1/incidents/{incident.id}/log/{note.json['id']}"
    assert api.get(note.headers["Location"]).json == note.json
    assert api.get(f"/api/v1/incidents/{incident.id}/log/999999").status_code == 404
    assert api.post(f"/api/v1/incidents/{incident.id}/notes", json={"note": " "}).status_code == 422
    assert api.post(f"/api/v1/incidents/{incident.id}/resolve").json["status"] == "resolved"
    conflict = api.post(f"/api/v1/incidents/{incident.id}/acknowledge")
    assert conflict.status_code == 409

    log = api.get(f"/api/v1/incidents/{incident.id}/log").json["log_entries"]
    kinds = [(e["kind"], e["channel"], (e["actor"] or {}).get("name")) for e in log]
    assert kinds[0] == ("trigger", "event", None)
    assert ("acknowledge", "api", "Rita Responder") in kinds
    assert ("note", "api", "Rita Responder") in kinds
    assert ("resolve", "api", "Rita Responder") in kinds
    assert api.get("/api/v1/incidents/999").status_code == 404
    db.session.expire_all()
    assert incident.epoch >= 2  # every state change bumps it (the escalation engine may too)


def test_assigned_to_me(api):
    me = factories.make_user()
    api.as_user(me)
    factories_events.make_incident(assigned_to_id=me.id)
    factories_events.make_incident()
    assert len(api.get("/api/v1/incidents?assigned_to=me").json["incidents"]) == 1


def test_escalation_actions_answer_the_incident_flat(api):
    alice = factories_escalation.make_pager("Alice")
    bob = factories_escalation.make_pager("Bob")
    api.as_user(alice)
    policy = factories_escalation.make_policy([(5, [alice]), (5, [bob])])
    incident = factories_escalation.open_incident(factories_escalation.make_service(policy))
    detail_keys = set(api.get(f"/api/v1/incidents/{incident.id}").json)

    escalated = api.post(f"/api/v1/incidents/{incident.id}/escalate")
    assert escalated.status_code == 200, escalated.json
    assert set(escalated.json) == detail_keys and escalated.json["id"] == incident.id
    snoozed = api.post(f"/api/v1/incidents/{incident.id}/snooze", json={"minutes": 30})
    assert snoozed.status_code == 200 and set(snoozed.json) == detail_keys
    assert snoozed.json["status"] == "acknowledged" and snoozed.json["snoozed_until"].endswith("+00:00")
    reassigned = api.post(f"/api/v1/incidents/{incident.id}/reassign", json={"user_id": bob.id})
    assert reassigned.status_code == 200 and set(reassigned.json) == detail_keys
    assert reassigned.json["assigned_to"] == {"id": bob.id, "name": "Bob", "email": bob.email}
    bad = api.post(f"/api/v1/incidents/{incident.id}/snooze", json={"minutes": 0})
    assert bad.status_code == 422 and "minutes" in bad.json["error"]["fields"]


def test_incidents_api_needs_a_token(client):
    assert client.get("/api/v1/incidents").status_code == 401
