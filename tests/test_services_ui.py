"""Services pages: list, create/edit with validation, integrations with keys and snippets."""

from openduty.extensions import db
from openduty.models import EscalationPolicy, Service
from tests import factories, factories_events


def test_admin_creates_service_with_policy_and_integration(client, auth, admin):
    auth.login(admin.email)
    policy = EscalationPolicy(name="Primary on-call")
    db.session.add(policy)
    db.session.commit()
    form = client.get("/services/new").get_data(as_text=True)
    assert "Primary on-call" in form
    token = auth.csrf_token()
    response = client.post(
        "/services/new",
        data={
            "csrf_token": token,
            "name": "Checkout",
            "escalation_policy_id": str(policy.id),
            "ack_timeout_minutes": "30",
        },
    )
    assert response.status_code == 302
    service = db.session.scalar(db.select(Service))
    assert (service.name, service.escalation_policy_id, service.ack_timeout_minutes) == ("Checkout", policy.id, 30)

    client.post(f"/services/{service.id}/integrations", data={"csrf_token": token, "kind": "alertmanager", "name": ""})
    db.session.expire_all()
    [integration] = service.integrations
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert f"/integrations/alertmanager/{integration.key}" in page
    assert "send_resolved: true" in page and 'data-copy="' in page
    old_key = integration.key
    client.post(f"/services/{service.id}/integrations/{integration.id}/regenerate", data={"csrf_token": token})
    db.session.expire_all()
    assert integration.key != old_key and len(integration.key) == 32


def test_service_form_errors_change_nothing(client, auth, admin):
    auth.login(admin.email)
    factories_events.make_service(name="Taken")
    token = auth.csrf_token()
    response = client.post(
        "/services/new",
        data={"csrf_token": token, "name": "taken", "ack_timeout_minutes": "-5"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Another service already has this name." in html
    assert "Ack timeout must be at least 1." in html
    assert db.session.query(Service).count() == 1


def test_maintenance_window_opens_incidents_without_paging(client, auth, admin):
    auth.login(admin.email)
    integration = factories_events.make_integration()
    token = auth.csrf_token()
    client.post(f"/services/{integration.service_id}/maintenance", data={"csrf_token": token, "minutes": "60"})
    event = {"routing_key": integration.key, "event_action": "trigger",
             "payload": {"summary": "During maintenance", "source": "x", "severity": "info"}}  # fmt: skip
    assert client.post("/v2/enqueue", json=event).status_code == 202
    incident = db.session.scalar(db.select(factories_events.Incident))
    assert "maintenance" in [e.kind for e in incident.log_entries]
    assert incident.status == "triggered" and incident.in_maintenance
    assert "in maintenance" in client.get("/incidents").get_data(as_text=True)


def test_non_admins_can_look_but_not_change(client, auth):
    user = factories.make_user()
    auth.login(user.email)
    service = factories_events.make_service(name="Visible")
    assert "Visible" in client.get("/services").get_data(as_text=True)
    assert client.get(f"/services/{service.id}").status_code == 200
    assert client.get("/services/new").status_code == 403
    assert client.post(f"/services/{service.id}/delete", data={"csrf_token": auth.csrf_token()}).status_code == 403


def test_a_new_service_starts_with_the_policy_most_services_use(client, auth, admin):
    """Issue 15, finding 8: the form defaulted to "no escalation policy" even when policies exist."""
    auth.login(admin.email)
    spare = EscalationPolicy(name="A spare policy")
    main = EscalationPolicy(name="Main on-call")
    db.session.add_all([spare, main])
    db.session.commit()
    form = client.get("/services/new").get_data(as_text=True)
    assert f'<option value="{spare.id}" selected>' in form  # none used yet: the first by name
    factories_events.make_service(name="Web", escalation_policy_id=main.id)
    form = client.get("/services/new").get_data(as_text=True)
    assert f'<option value="{main.id}" selected>' in form and f'<option value="{spare.id}" >' in form
