"""Services and integrations API."""

from datetime import timedelta

from openduty.extensions import db
from openduty.models import EscalationPolicy, Service
from tests import factories


def test_create_read_update_delete_service(api, admin):
    api.as_user(admin)
    policy = EscalationPolicy(name="Ops")
    db.session.add(policy)
    db.session.commit()
    response = api.post("/api/v1/services", json={"name": "Payments", "description": "Card payments"})
    assert response.status_code == 201
    service = response.json
    assert response.headers["Location"] == f"/api/v1/services/{service['id']}"
    assert api.get(response.headers["Location"]).json == service
    assert service["escalation_policy_id"] is None
    assert service["integrations"] == []
    response = api.patch(
        f"/api/v1/services/{service['id']}",
        json={"escalation_policy_id": policy.id, "ack_timeout_minutes": 30},
    )
    assert response.status_code == 200
    assert response.json["escalation_policy_id"] == policy.id
    assert response.json["maintenance_until"] is None
    assert api.get("/api/v1/services").json["services"][0]["name"] == "Payments"
    assert api.delete(f"/api/v1/services/{service['id']}").status_code == 204
    assert api.get(f"/api/v1/services/{service['id']}").status_code == 404


def test_service_validation_names_each_field_and_changes_nothing(api, admin):
    api.as_user(admin)
    api.post("/api/v1/services", json={"name": "Payments"})
    response = api.post(
        "/api/v1/services",
        json={
            "name": "payments",
            "escalation_policy_id": 999,
            "ack_timeout_minutes": 0,
            "maintenance_until": "tomorrow",
            "disabled": "perhaps",
            "colour": "red",
        },
    )
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"colour"}
    del_colour = {
        "name": "payments",
        "escalation_policy_id": 999,
        "ack_timeout_minutes": 0,
        "maintenance_until": "tomorrow",
        "disabled": "perhaps",
    }
    fields = api.post("/api/v1/services", json=del_colour).json["error"]["fields"]
    assert set(fields) == {"name", "escalation_policy_id", "ack_timeout_minutes", "maintenance_until", "disabled"}
    assert "already has this name" in fields["name"]
    assert db.session.query(Service).count() == 1


def test_only_admins_change_services(api):
    api.as_user(factories.make_user())
    assert api.get("/api/v1/services").status_code == 200
    assert api.post("/api/v1/services", json={"name": "X"}).status_code == 403


def test_integrations_keys_and_urls(api, admin, app):
    api.as_user(admin)
    service_id = api.post("/api/v1/services", json={"name": "Web"}).json["id"]
    response = api.post(f"/api/v1/services/{service_id}/integrations", json={"kind": "events_v2", "name": "Nagios"})
    assert response.status_code == 201
    integration = response.json
    assert set(integration) >= {"id", "kind", "name", "key", "url"}  # flat, as the issue asks
    assert response.headers["Location"] == f"/api/v1/services/{service_id}/integrations/{integration['id']}"
    assert api.get(response.headers["Location"]).json == integration
    assert len(integration["key"]) == 32 and integration["key"].isalnum()
    assert integration["url"] == app.config["BASE_URL"] + "/v2/enqueue"
    am = api.post(f"/api/v1/services/{service_id}/integrations", json={"kind": "alertmanager"}).json
    assert am["url"].endswith(f"/integrations/alertmanager/{am['key']}")
    assert am["name"] == "Alertmanager"

    event = {
        "routing_key": integration["key"],
        "event_action": "trigger",
        "payload": {"summary": "x", "source": "y", "severity": "info"},
    }
    assert api.post("/v2/enqueue", json=event).status_code == 202
    regenerated = api.post(f"/api/v1/services/{service_id}/integrations/{integration['id']}/regenerate").json
    assert regenerated["key"] != integration["key"]
    assert api.post("/v2/enqueue", json=event).status_code == 400  # the old key stopped working
    assert api.post("/v2/enqueue", json={**event, "routing_key": regenerated["key"]}).status_code == 202

    bad = api.post(f"/api/v1/services/{service_id}/integrations", json={"kind": "smoke-signals"})
    assert bad.status_code == 422
    assert "kind" in bad.json["error"]["fields"]
    assert api.delete(f"/api/v1/services/{service_id}/integrations/{am['id']}").status_code == 204
    assert len(api.get(f"/api/v1/services/{service_id}/integrations").json["integrations"]) == 1
    assert api.get(f"/api/v1/services/{service_id}/integrations/{am['id']}").status_code == 404


def test_maintenance_until_is_read_only_and_derived_from_the_windows(api, admin, clock):
    api.as_user(admin)
    service_id = api.post("/api/v1/services", json={"name": "Payments"}).json["id"]
    refused = api.patch(f"/api/v1/services/{service_id}", json={"maintenance_until": "2030-01-01T10:00:00Z"})
    assert refused.status_code == 422
    assert "/api/v1/maintenance-windows" in refused.json["error"]["fields"]["maintenance_until"]
    now = clock.now()
    for hours in (1, 3):
        window = {"start": now.isoformat(), "end": (now + timedelta(hours=hours)).isoformat(),
                  "service_ids": [service_id]}  # fmt: skip
        assert api.post("/api/v1/maintenance-windows", json=window).status_code == 201
    until = (now + timedelta(hours=3)).isoformat()
    assert api.get(f"/api/v1/services/{service_id}").json["maintenance_until"] == until
    assert api.get("/api/v1/services").json["services"][0]["maintenance_until"] == until
